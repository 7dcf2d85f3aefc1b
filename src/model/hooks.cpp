#include "emlab/hooks.h"

#include <algorithm>

#include "emlab/error.h"

namespace emlab {

void ResidualHooks::add(HookSite site, int64_t layer, torch::Tensor v, double scale) {
  adds_[{site, layer}].push_back({std::move(v), scale});
}

void ResidualHooks::ablate(torch::Tensor v, std::optional<int64_t> layer) {
  torch::Tensor u = v / v.norm();  // unit direction; the norm of v carries no meaning here
  ablations_.emplace_back(u, layer);
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
    for (const Add& a : it->second) h = h + (a.v * a.scale).to(h.dtype());
  if (site == HookSite::LayerOutput) {
    for (const auto& [u, at] : ablations_) {
      if (at && *at != layer) continue;
      torch::Tensor uu = u.to(h.dtype());
      h = h - torch::matmul(h, uu).unsqueeze(-1) * uu;  // (B, T, 1) * (C)
    }
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
