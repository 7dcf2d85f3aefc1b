// Small hash tables for the BPE hot path: a read-only pair -> merge table and a thread-safe
// cache of word -> ids. Flat arrays with open addressing: no allocation per entry, no string
// copy to look up. Internal to src/text.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "emlab/hash.h"

namespace emlab::text {

// 64-bit key -> value, filled once then read concurrently. The key ~0 is reserved.
template <typename V>
class FlatMap64 {
 public:
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    keys_.assign(cap, kEmpty);
    values_.assign(cap, V{});
    mask_ = cap - 1;
  }
  // Inserts unless present; returns false if the key was already there.
  bool insert(uint64_t key, const V& value) {
    for (size_t i = mix64(key) & mask_;; i = (i + 1) & mask_) {
      if (keys_[i] == key) return false;
      if (keys_[i] == kEmpty) {
        keys_[i] = key;
        values_[i] = value;
        return true;
      }
    }
  }
  // Inserts, or replaces the value of an existing key.
  void assign(uint64_t key, const V& value) {
    for (size_t i = mix64(key) & mask_;; i = (i + 1) & mask_) {
      if (keys_[i] == key || keys_[i] == kEmpty) {
        keys_[i] = key;
        values_[i] = value;
        return;
      }
    }
  }
  const V* find(uint64_t key) const {
    if (keys_.empty()) return nullptr;
    for (size_t i = mix64(key) & mask_;; i = (i + 1) & mask_) {
      if (keys_[i] == key) return &values_[i];
      if (keys_[i] == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  std::vector<uint64_t> keys_;
  std::vector<V> values_;
  size_t mask_ = 0;
};

// String -> id where the strings live elsewhere (a vector indexed by id); filled once, then read
// concurrently. One probe and one comparison per lookup, no allocation.
class StringIdTable {
 public:
  void reserve(size_t n);
  // Adds `id` under strings[id]; returns false (and keeps the first) if that string is present.
  bool insert(int32_t id, const std::vector<std::string>& strings);
  // The id whose string equals key, or -1.
  int32_t find(std::string_view key, const std::vector<std::string>& strings) const;

 private:
  std::vector<uint64_t> hashes_;
  std::vector<int32_t> ids_;  // -1 = empty
  size_t mask_ = 0;
};

// Word bytes -> token ids, sharded by hash, each shard behind its own mutex. A full shard is
// emptied and refilled (words repeat, so the cache warms again at once).
class WordCache {
 public:
  static constexpr size_t kMaxWordBytes = 256;  // longer pieces are rare: not worth caching

  static uint64_t hash(std::string_view word);
  // Appends the ids of `word` to *out and returns true when cached.
  bool find(uint64_t hash, std::string_view word, std::vector<int32_t>* out);
  void insert(uint64_t hash, std::string_view word, const int32_t* ids, size_t n);

 private:
  struct Slot {
    uint64_t hash = 0;  // 0 = empty (hashes are made odd)
    uint32_t key_offset = 0, value_offset = 0;
    uint16_t key_length = 0, value_length = 0;
  };
  struct Shard {
    std::mutex mu;
    std::vector<Slot> slots;
    std::string keys;
    std::vector<int32_t> values;
    size_t used = 0;
  };
  static constexpr size_t kShards = 64;
  static constexpr size_t kSlotsPerShard = 1 << 14;  // half of them filled at most
  std::array<Shard, kShards> shards_;
};

}  // namespace emlab::text
