// Seeded subsamples (private to src/interp): the same choice on every platform.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "emlab/hash.h"

namespace emlab::interp_detail {

// k of the n indices (all when k >= n), chosen by a seeded Fisher-Yates shuffle, in increasing order.
inline std::vector<size_t> subsample_indices(size_t n, size_t k, uint64_t seed) {
  std::vector<size_t> idx(n);
  for (size_t i = 0; i < n; ++i) idx[i] = i;
  if (k >= n) return idx;
  uint64_t state = seed;
  for (size_t i = n; i > 1; --i) std::swap(idx[i - 1], idx[splitmix64_next(state) % i]);
  idx.resize(k);
  std::sort(idx.begin(), idx.end());
  return idx;
}

// The elements of v at subsample_indices(v.size(), k, seed).
template <typename T>
std::vector<T> subsample(std::vector<T> v, size_t k, uint64_t seed) {
  std::vector<T> out;
  for (size_t i : subsample_indices(v.size(), k, seed)) out.push_back(std::move(v[i]));
  return out;
}

}  // namespace emlab::interp_detail
