// Deterministic 64-bit hashing and mixing, the same on every platform and standard library (the
// std:: hashes and distributions are not): every seed emlab derives (per chunk, per example, per
// bootstrap group, the toy world's streams) goes through these.
#pragma once

#include <cstdint>
#include <string_view>

namespace emlab {

// splitmix64's output function (Steele, Lea & Flood 2014; Vigna's splitmix64.c): a bijective
// avalanche of 64 bits.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// The golden-ratio increment of splitmix64.
inline constexpr uint64_t kSplitmixGamma = 0x9e3779b97f4a7c15ULL;

// One splitmix64 draw from `x` as the state: decorrelates seeds derived from a user's seed.
inline uint64_t splitmix64(uint64_t x) { return mix64(x + kSplitmixGamma); }

// The splitmix64 generator: advances *state and returns the next draw.
inline uint64_t splitmix64_next(uint64_t& state) {
  state += kSplitmixGamma;
  return mix64(state);
}

// 64-bit FNV-1a of a byte string: stable names for sub-streams and seeds, content digests.
inline uint64_t fnv1a64(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

}  // namespace emlab
