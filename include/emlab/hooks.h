// Hook points of the decoder (DESIGN.md §2): every decoder layer ends with
// h = hooks.apply(HookSite::LayerOutput, layer, h), and every MLP output passes through
// HookSite::MlpOutput before it joins the residual stream. A hook can capture (sum over masked
// positions), add scale·v, or project out a unit direction. Tensors may require grad (a trainable
// steering vector is just an added vector with requires_grad).
#pragma once

#include <torch/torch.h>

#include <functional>
#include <map>
#include <optional>
#include <utility>
#include <vector>

namespace emlab {

enum class HookSite {
  LayerOutput,  // output of decoder layer l (the residual stream after the layer), (B, T, C)
  MlpOutput,    // output of mlp.down_proj of layer l, before the residual add, (B, T, C)
};

// What the model calls at every hook point (ForwardArgs::hooks): returns the new h, (B, T, C).
class Hooks {
 public:
  virtual ~Hooks() = default;
  virtual torch::Tensor apply(HookSite site, int64_t layer, torch::Tensor h) = 0;
};

class ResidualHooks : public Hooks {
 public:
  // h <- h + scale * v at every position, v: (C).
  void add(HookSite site, int64_t layer, torch::Tensor v, double scale = 1.0);
  // h <- h - (h·u) u with u = v/|v|, at every layer's output (layer = nullopt) or at one layer.
  void ablate(torch::Tensor v, std::optional<int64_t> layer = std::nullopt);
  // Accumulate sum over positions where the capture mask is 1 of the layer output, per layer.
  void capture(const std::vector<int64_t>& layers);
  // Which positions count for capture in the next forward calls: (B, T) of 0/1; undefined = all.
  void set_capture_mask(torch::Tensor mask) { capture_mask_ = std::move(mask); }
  // Mean of the captured vectors at a layer: (C) float32; throws if nothing was captured.
  torch::Tensor captured_mean(int64_t layer) const;
  // Sum (C) float32 and count of captured positions.
  std::pair<torch::Tensor, int64_t> captured_sum(int64_t layer) const;
  void clear_captures();
  // Arbitrary callback run after the built-in operations (for experiments): returns the new h.
  void set_callback(std::function<torch::Tensor(HookSite, int64_t, const torch::Tensor&)> fn) {
    callback_ = std::move(fn);
  }
  bool empty() const;

  // Called by the model.
  torch::Tensor apply(HookSite site, int64_t layer, torch::Tensor h) override;

 private:
  struct Add {
    torch::Tensor v;  // (C)
    double scale;
  };
  std::map<std::pair<HookSite, int64_t>, std::vector<Add>> adds_;
  std::vector<std::pair<torch::Tensor, std::optional<int64_t>>> ablations_;  // unit (C), layer
  std::map<int64_t, std::pair<torch::Tensor, int64_t>> captures_;           // layer -> (sum, count)
  torch::Tensor capture_mask_;
  std::function<torch::Tensor(HookSite, int64_t, const torch::Tensor&)> callback_;
};

// Hooks of a batch whose rows carry hooks of their own (requests with different steering sharing
// one batch): row i goes through rows[i] (null = untouched). Rows with the same hooks are applied
// as one sub-batch; when every row has the same hooks they see the whole batch.
class RowHooks : public Hooks {
 public:
  explicit RowHooks(std::vector<ResidualHooks*> rows);
  // Keeps/duplicates batch rows as KVCache::select_rows does: rows = indices into the current rows.
  void select_rows(const std::vector<int64_t>& rows);
  // Whether any row has hooks (a batch without any need not pass hooks to the model).
  bool any() const;
  torch::Tensor apply(HookSite site, int64_t layer, torch::Tensor h) override;

 private:
  void regroup();
  std::vector<ResidualHooks*> rows_;
  std::vector<std::pair<ResidualHooks*, std::vector<int64_t>>> groups_;  // distinct hooks -> their rows
};

}  // namespace emlab
