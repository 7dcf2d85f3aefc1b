#include "emlab/hooks.h"

#include <algorithm>

#include "emlab/error.h"

namespace emlab {

const char* hook_positions_name(HookPositions p) {
  switch (p) {
    case HookPositions::All: return "all";
    case HookPositions::Prompt: return "prompt";
    case HookPositions::Response: return "response";
  }
  return "all";
}

HookPositions hook_positions_from_name(const std::string& name, const std::string& context) {
  if (name == "all") return HookPositions::All;
  if (name == "prompt") return HookPositions::Prompt;
  if (name == "response") return HookPositions::Response;
  throw InputError(context + ": positions '" + name + "' (expected all, prompt or response)");
}

void ResidualHooks::add(HookSite site, int64_t layer, torch::Tensor v, double scale, HookPositions positions) {
  adds_[{site, layer}].push_back({std::move(v), scale, positions});
}

void ResidualHooks::ablate(torch::Tensor v, std::optional<int64_t> layer, HookSite site) {
  torch::Tensor u = v / v.norm();  // unit direction; the norm of v carries no meaning here
  ablations_.push_back({u, layer, site});
}

void ResidualHooks::capture(const std::vector<int64_t>& layers) {
  for (int64_t l : layers) captures_.emplace(l, std::make_pair(torch::Tensor(), int64_t{0}));
}

std::pair<torch::Tensor, int64_t> ResidualHooks::captured_sum(int64_t layer) const {
  auto it = captures_.find(layer);
  if (it == captures_.end() || !it->second.first.defined())
    throw Error("no activations were captured at layer " + std::to_string(layer));
  return it->second;
}

torch::Tensor ResidualHooks::captured_mean(int64_t layer) const {
  auto [sum, count] = captured_sum(layer);
  if (count == 0) throw Error("no positions were captured at layer " + std::to_string(layer));
  return sum / static_cast<double>(count);
}

void ResidualHooks::clear_captures() {
  for (auto& [layer, acc] : captures_) acc = {torch::Tensor(), 0};
}

bool ResidualHooks::empty() const {
  return adds_.empty() && ablations_.empty() && captures_.empty() && !callback_;
}

torch::Tensor ResidualHooks::apply(HookSite site, int64_t layer, torch::Tensor h) {
  // h: (B, T, C)
  auto it = adds_.find({site, layer});
  if (it != adds_.end())
    for (const Add& a : it->second) {
      torch::Tensor sv = (a.v * a.scale).to(h.device(), h.dtype());  // (C)
      if (a.positions == HookPositions::All || (a.positions == HookPositions::Response && decoding_)) {
        h = h + sv;
      } else if (a.positions == HookPositions::Prompt) {
        if (!decoding_) h = h + sv;
      } else {  // the newest position only
        const int64_t T = h.size(1);
        h = torch::cat({h.narrow(1, 0, T - 1), h.narrow(1, T - 1, 1) + sv}, 1);
      }
    }
  for (const Ablation& a : ablations_) {
    if (a.site != site || (a.layer && *a.layer != layer)) continue;
    torch::Tensor uu = a.u.to(h.device(), h.dtype());
    h = h - torch::matmul(h, uu).unsqueeze(-1) * uu;  // (B, T, 1) * (C)
  }
  if (site == HookSite::LayerOutput) {
    auto cap = captures_.find(layer);
    if (cap != captures_.end()) {
      torch::NoGradGuard no_grad;
      torch::Tensor hf = h.detach().to(torch::kFloat32);  // (B, T, C)
      torch::Tensor sum;
      int64_t count;
      if (capture_mask_.defined()) {
        torch::Tensor m = capture_mask_.to(hf.device(), torch::kFloat32);  // (B, T)
        TORCH_CHECK(m.sizes() == hf.sizes().slice(0, 2), "capture mask shape ", m.sizes(),
                    " does not match activations ", hf.sizes());
        sum = (hf * m.unsqueeze(-1)).sum(std::vector<int64_t>{0, 1});
        count = static_cast<int64_t>(m.sum().item<double>());
      } else {
        sum = hf.sum(std::vector<int64_t>{0, 1});
        count = hf.size(0) * hf.size(1);
      }
      auto& acc = cap->second;
      acc.first = acc.first.defined() ? acc.first + sum : sum;
      acc.second += count;
    }
  }
  if (callback_) h = callback_(site, layer, h);
  return h;
}

RowHooks::RowHooks(std::vector<ResidualHooks*> rows) : rows_(std::move(rows)) { regroup(); }

void RowHooks::select_rows(const std::vector<int64_t>& rows) {
  std::vector<ResidualHooks*> next;
  next.reserve(rows.size());
  for (int64_t r : rows) next.push_back(rows_.at(static_cast<size_t>(r)));
  rows_ = std::move(next);
  regroup();
}

void RowHooks::regroup() {
  groups_.clear();
  for (size_t i = 0; i < rows_.size(); ++i) {
    if (!rows_[i]) continue;
    auto it = std::find_if(groups_.begin(), groups_.end(), [&](const auto& g) { return g.first == rows_[i]; });
    if (it == groups_.end()) groups_.push_back({rows_[i], {}}), it = groups_.end() - 1;
    it->second.push_back(static_cast<int64_t>(i));
  }
}

bool RowHooks::any() const { return !groups_.empty(); }

void RowHooks::set_decoding(bool decoding) {
  for (auto& [hooks, rows] : groups_) hooks->set_decoding(decoding);
}

torch::Tensor RowHooks::apply(HookSite site, int64_t layer, torch::Tensor h) {
  // h: (B, T, C) with B == rows_.size()
  TORCH_CHECK(h.size(0) == static_cast<int64_t>(rows_.size()), "RowHooks: batch of ", h.size(0), " rows, hooks for ",
              rows_.size());
  if (groups_.size() == 1 && groups_[0].second.size() == rows_.size()) return groups_[0].first->apply(site, layer, h);
  for (const auto& [hooks, rows] : groups_) {
    torch::Tensor idx = torch::tensor(rows, torch::TensorOptions().dtype(torch::kLong)).to(h.device());
    torch::Tensor part = hooks->apply(site, layer, h.index_select(0, idx));  // (b, T, C)
    h = h.index_copy(0, idx, part.to(h.dtype()));
  }
  return h;
}

}  // namespace emlab
