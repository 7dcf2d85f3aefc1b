// Padded micro-batches (see emlab/batch.h).
#include "emlab/batch.h"

#include <algorithm>

namespace emlab {

int64_t count_targets(const SftDataset& data, const std::vector<int64_t>& rows) {
  int64_t n = 0;
  for (int64_t r : rows) {
    const auto& m = data.examples[r].mask;
    for (size_t t = 1; t < m.size(); ++t) n += m[t];
  }
  return n;
}

Batch collate(const SftDataset& data, const std::vector<int64_t>& rows, const torch::Device& device) {
  Batch b;
  if (rows.empty()) return b;
  int64_t T = 0;
  for (int64_t r : rows) T = std::max<int64_t>(T, static_cast<int64_t>(data.examples[r].ids.size()));
  const int64_t B = static_cast<int64_t>(rows.size());
  torch::Tensor ids = torch::zeros({B, T}, torch::kInt64);
  torch::Tensor mask = torch::zeros({B, T}, torch::kFloat32);
  auto ia = ids.accessor<int64_t, 2>();
  auto ma = mask.accessor<float, 2>();
  for (int64_t i = 0; i < B; ++i) {
    const SftExample& e = data.examples[rows[i]];
    for (size_t t = 0; t < e.ids.size(); ++t) {
      ia[i][t] = e.ids[t];
      ma[i][t] = t > 0 && e.mask[t] ? 1.0f : 0.0f;
    }
    b.lengths.push_back(static_cast<int64_t>(e.ids.size()));
    b.tokens += static_cast<int64_t>(e.ids.size());
  }
  b.targets = count_targets(data, rows);
  b.ids = ids.to(device);
  b.mask = mask.to(device);
  return b;
}

}  // namespace emlab
