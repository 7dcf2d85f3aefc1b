// Hook points of the decoder (DESIGN.md §2): every decoder layer ends with
// h = hooks.apply(HookSite::LayerOutput, layer, h), and every write into the residual stream
// (embedding, attention output, MLP output) passes through its site before it is added. A hook can capture (sum over masked
// positions), add scale·v, or project out a unit direction. Tensors may require grad (a trainable
// steering vector is just an added vector with requires_grad).
#pragma once

#include <torch/torch.h>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace emlab {

// Every write into the residual stream has a site: the embedding, then per layer what the
// attention and the MLP add, then the stream itself after the layer.
enum class HookSite {
  LayerOutput,  // output of decoder layer l (the residual stream after the layer), (B, T, C)
  MlpOutput,    // what the MLP of layer l adds to the residual stream: mlp.down_proj's output
                // (Gemma: after post_feedforward_layernorm), (B, T, C)
  AttnOutput,   // what the attention of layer l adds: self_attn.o_proj's output (Gemma: after
                // post_attention_layernorm), (B, T, C)
  Embedding,    // the (scaled) token embeddings entering layer 0 (layer index 0), (B, T, C)
};

// Where an added vector goes.
enum class HookPositions {
  All,       // every position of every forward call
  Prompt,    // the prompt's positions: forward calls that are not decoding steps
  Response,  // the newest position of each forward call (persona_vectors' "response"): the last
             // prompt position at prefill, then every generated token
};
const char* hook_positions_name(HookPositions p);  // "all", "prompt", "response"
// "all", "prompt", "response"; InputError naming `context` otherwise.
HookPositions hook_positions_from_name(const std::string& name, const std::string& context);

// What the model calls at every hook point (ForwardArgs::hooks): returns the new h, (B, T, C).
class Hooks {
 public:
  virtual ~Hooks() = default;
  virtual torch::Tensor apply(HookSite site, int64_t layer, torch::Tensor h) = 0;
  // The generator says whether the next forward calls are decoding steps (one new token per row
  // after the prompt) or not (prefill, training, a full recompute).
  virtual void set_decoding(bool decoding) { (void)decoding; }
};

class ResidualHooks : public Hooks {
 public:
  // h <- h + scale * v at the chosen positions, v: (C).
  void add(HookSite site, int64_t layer, torch::Tensor v, double scale = 1.0,
           HookPositions positions = HookPositions::All);
  // h <- h - (h·u) u with u = v/|v| at every position, at `site` of every layer (layer = nullopt)
  // or of one layer.
  void ablate(torch::Tensor v, std::optional<int64_t> layer = std::nullopt, HookSite site = HookSite::LayerOutput);
  void set_decoding(bool decoding) override { decoding_ = decoding; }
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
    HookPositions positions;
  };
  struct Ablation {
    torch::Tensor u;                // unit (C)
    std::optional<int64_t> layer;   // none = every layer
    HookSite site;
  };
  std::map<std::pair<HookSite, int64_t>, std::vector<Add>> adds_;
  std::vector<Ablation> ablations_;
  bool decoding_ = false;
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
  void set_decoding(bool decoding) override;
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
