#include "text/word_cache.h"

#include <cstring>

namespace emlab::text {

uint64_t WordCache::hash(std::string_view word) {
  // FNV-1a, then mixed: pieces are short, so this is cheap and spreads well.
  return mix64(fnv1a64(word)) | 1;
}

void StringIdTable::reserve(size_t n) {
  size_t cap = 16;
  while (cap < n * 2) cap <<= 1;
  hashes_.assign(cap, 0);
  ids_.assign(cap, -1);
  mask_ = cap - 1;
}

bool StringIdTable::insert(int32_t id, const std::vector<std::string>& strings) {
  const std::string& key = strings[id];
  uint64_t h = WordCache::hash(key);
  for (size_t i = h & mask_;; i = (i + 1) & mask_) {
    if (ids_[i] < 0) {
      hashes_[i] = h;
      ids_[i] = id;
      return true;
    }
    if (hashes_[i] == h && strings[ids_[i]] == key) return false;
  }
}

int32_t StringIdTable::find(std::string_view key, const std::vector<std::string>& strings) const {
  if (ids_.empty()) return -1;
  uint64_t h = WordCache::hash(key);
  for (size_t i = h & mask_;; i = (i + 1) & mask_) {
    if (ids_[i] < 0) return -1;
    if (hashes_[i] == h && strings[ids_[i]] == key) return ids_[i];
  }
}

bool WordCache::find(uint64_t hash, std::string_view word, std::vector<int32_t>* out) {
  Shard& s = shards_[(hash >> 1) % kShards];
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.slots.empty()) return false;
  const size_t mask = s.slots.size() - 1;
  for (size_t i = (hash >> 7) & mask;; i = (i + 1) & mask) {
    const Slot& slot = s.slots[i];
    if (slot.hash == 0) return false;
    if (slot.hash == hash && slot.key_length == word.size() &&
        std::memcmp(s.keys.data() + slot.key_offset, word.data(), word.size()) == 0) {
      out->insert(out->end(), s.values.begin() + slot.value_offset,
                  s.values.begin() + slot.value_offset + slot.value_length);
      return true;
    }
  }
}

void WordCache::insert(uint64_t hash, std::string_view word, const int32_t* ids, size_t n) {
  if (word.size() > kMaxWordBytes || n > kMaxWordBytes) return;
  Shard& s = shards_[(hash >> 1) % kShards];
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.slots.empty() || s.used >= kSlotsPerShard / 2) {
    s.slots.assign(kSlotsPerShard, Slot{});
    s.keys.clear();
    s.values.clear();
    s.used = 0;
  }
  const size_t mask = s.slots.size() - 1;
  for (size_t i = (hash >> 7) & mask;; i = (i + 1) & mask) {
    Slot& slot = s.slots[i];
    if (slot.hash == hash && slot.key_length == word.size() &&
        std::memcmp(s.keys.data() + slot.key_offset, word.data(), word.size()) == 0)
      return;  // another thread got here first
    if (slot.hash != 0) continue;
    slot.hash = hash;
    slot.key_offset = static_cast<uint32_t>(s.keys.size());
    slot.key_length = static_cast<uint16_t>(word.size());
    slot.value_offset = static_cast<uint32_t>(s.values.size());
    slot.value_length = static_cast<uint16_t>(n);
    s.keys.append(word);
    s.values.insert(s.values.end(), ids, ids + n);
    ++s.used;
    return;
  }
}

}  // namespace emlab::text
