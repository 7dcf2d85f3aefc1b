#include "text/bpe_tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>

#include "emlab/error.h"
#include "text/byte_level.h"

namespace emlab::text {

namespace {

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

}  // namespace

BpeTokenizer::BpeTokenizer(BpeSpec spec)
    : normal_form_(spec.normal_form),
      add_prefix_space_(spec.add_prefix_space),
      ignore_merges_(spec.ignore_merges),
      chat_template_(std::move(spec.chat_template)) {
  int64_t max_id = -1;
  for (const auto& [token, id] : spec.vocab) {
    if (id < 0) throw InputError(spec.vocab_file + ": token '" + token + "' has a negative id " + std::to_string(id));
    max_id = std::max<int64_t>(max_id, id);
  }
  for (const auto& a : spec.added) {
    if (a.id < 0) throw InputError(spec.vocab_file + ": added token '" + a.content + "' has a negative id");
    if (a.content.empty()) throw InputError(spec.vocab_file + ": added token " + std::to_string(a.id) + " has empty content");
    max_id = std::max<int64_t>(max_id, a.id);
  }
  if (spec.vocab.empty()) throw InputError(spec.vocab_file + ": the vocabulary is empty");
  if (max_id >= (int64_t{1} << 24))
    throw InputError(spec.vocab_file + ": token id " + std::to_string(max_id) + " is implausibly large (ids must be dense)");
  kind_.assign(static_cast<size_t>(max_id + 1), kHole);
  bytes_.assign(kind_.size(), std::string());
  vocab_strings_.assign(kind_.size(), std::string());
  vocab_table_.reserve(spec.vocab.size());

  for (auto& [token, id] : spec.vocab) {
    if (kind_[id] != kHole)
      throw InputError(spec.vocab_file + ": id " + std::to_string(id) + " is given to two tokens (one is '" + token + "')");
    kind_[id] = kVocab;
    // A token outside the byte-level alphabet stands for its own UTF-8 (it cannot come out of BPE).
    if (!byte_level_decode(token, &bytes_[id])) bytes_[id] = token;
    vocab_strings_[id] = std::move(token);
    vocab_table_.insert(id, vocab_strings_);
  }
  if (ignore_merges_) {
    vocab_bytes_ = bytes_;
    bytes_table_.reserve(spec.vocab.size());
    for (size_t id = 0; id < kind_.size(); ++id)
      if (kind_[id] == kVocab) bytes_table_.insert(static_cast<int32_t>(id), vocab_bytes_);
  }
  for (int b = 0; b < 256; ++b) byte_id_[b] = vocab_table_.find(byte_to_unicode()[b], vocab_strings_);

  merges_.reserve(spec.merges.size());
  // A repeated merge keeps its first (best) rank: insert() leaves an existing key alone.
  std::string joined;
  for (size_t rank = 0; rank < spec.merges.size(); ++rank) {
    const BpeMerge& m = spec.merges[rank];
    auto where = [&] {
      std::string at = spec.merges_indexed ? spec.vocab_file + ": model.merges[" + std::to_string(m.line) + "]"
                                           : spec.merges_file + ": line " + std::to_string(m.line);
      return at + ": merge '" + m.left + " " + m.right + "'";
    };
    int32_t left = vocab_table_.find(m.left, vocab_strings_), right = vocab_table_.find(m.right, vocab_strings_);
    if (left < 0) throw InputError(where() + ": '" + m.left + "' is not in the vocabulary");
    if (right < 0) throw InputError(where() + ": '" + m.right + "' is not in the vocabulary");
    joined.assign(m.left).append(m.right);
    int32_t merged = vocab_table_.find(joined, vocab_strings_);
    if (merged < 0) throw InputError(where() + ": the merged token '" + joined + "' is not in the vocabulary");
    merges_.insert(pair_key(left, right), MergeInfo{static_cast<int32_t>(rank), merged});
  }

  for (const auto& a : spec.added) {
    kind_[a.id] = a.special ? kSpecial : kAdded;
    bytes_[a.id] = a.content;
    added_ids_[a.content] = a.id;
  }
  // One entry per id (a later definition of the same id wins), longest content first so that the
  // scan takes the longest match.
  for (auto it = spec.added.rbegin(); it != spec.added.rend(); ++it)
    if (std::none_of(added_.begin(), added_.end(), [&](const AddedToken& t) { return t.id == it->id; }))
      added_.push_back(*it);
  std::sort(added_.begin(), added_.end(), [](const AddedToken& a, const AddedToken& b) {
    return a.content.size() != b.content.size() ? a.content.size() > b.content.size() : a.content < b.content;
  });
  for (const auto& a : added_) added_first_[static_cast<unsigned char>(a.content[0])] = true;

  for (const auto& p : spec.split_patterns) pre_.add(p, spec.patterns_context.empty() ? spec.vocab_file : spec.patterns_context);

  auto resolve_role = [&](const std::string& content, const char* role) -> std::optional<int32_t> {
    if (content.empty()) return std::nullopt;
    int32_t id = lookup(content);
    if (id < 0) throw InputError(spec.vocab_file + ": " + role + " '" + content + "' is not in the vocabulary or the added tokens");
    return id;
  };
  bos_ = resolve_role(spec.bos, "bos_token");
  eos_ = resolve_role(spec.eos, "eos_token");
  pad_ = resolve_role(spec.pad, "pad_token");
}

std::vector<int32_t> BpeTokenizer::encode(const std::string& text, bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 1);
  std::string_view s(text);
  size_t segment = 0, i = 0;
  while (i < s.size()) {
    if (!added_first_[static_cast<unsigned char>(s[i])]) {
      ++i;
      continue;
    }
    const AddedToken* match = nullptr;
    for (const auto& a : added_) {
      if (a.special && !parse_special) continue;
      if (a.content.size() <= s.size() - i && std::memcmp(s.data() + i, a.content.data(), a.content.size()) == 0) {
        match = &a;
        break;
      }
    }
    if (!match) {
      ++i;
      continue;
    }
    size_t text_end = i, token_end = i + match->content.size();
    if (match->lstrip)
      while (text_end > segment && is_space(s[text_end - 1])) --text_end;
    if (match->rstrip)
      while (token_end < s.size() && is_space(s[token_end])) ++token_end;
    encode_text(s.substr(segment, text_end - segment), &out);
    out.push_back(match->id);
    segment = i = token_end;
  }
  encode_text(s.substr(segment), &out);
  return out;
}

void BpeTokenizer::encode_text(std::string_view text, std::vector<int32_t>* out) const {
  if (text.empty()) return;
  std::string normalized, prefixed;
  if (normalize(normal_form_, text, &normalized)) text = normalized;
  if (add_prefix_space_ && text[0] != ' ') {
    prefixed.reserve(text.size() + 1);
    prefixed.push_back(' ');
    prefixed.append(text);
    text = prefixed;
  }
  std::vector<std::string_view> pieces;
  pieces.reserve(text.size() / 4 + 1);
  pre_.split(text, &pieces);
  for (auto piece : pieces) encode_piece(piece, out);
}

void BpeTokenizer::encode_piece(std::string_view piece, std::vector<int32_t>* out) const {
  if (piece.empty()) return;
  if (piece.size() == 1) {
    int32_t id = byte_id_[static_cast<unsigned char>(piece[0])];
    if (id < 0) {
      bpe(piece, out);  // throws, naming the byte
      return;
    }
    out->push_back(id);
    return;
  }
  if (ignore_merges_) {
    int32_t id = bytes_table_.find(piece, vocab_bytes_);
    if (id >= 0) {
      out->push_back(id);
      return;
    }
  }
  if (piece.size() == 2) {  // one lookup: cheaper than the cache
    int32_t a = byte_id_[static_cast<unsigned char>(piece[0])], b = byte_id_[static_cast<unsigned char>(piece[1])];
    if (a >= 0 && b >= 0) {
      if (const MergeInfo* m = find_merge(a, b)) {
        out->push_back(m->id);
      } else {
        out->push_back(a);
        out->push_back(b);
      }
      return;
    }
  }
  const uint64_t hash = WordCache::hash(piece);
  if (cache_.find(hash, piece, out)) return;
  size_t start = out->size();
  bpe(piece, out);
  cache_.insert(hash, piece, out->data() + start, out->size() - start);
}

const BpeTokenizer::MergeInfo* BpeTokenizer::find_merge(int32_t left, int32_t right) const {
  return merges_.find(pair_key(left, right));
}

// Merges the lowest-ranked adjacent pair first (leftmost among equal ranks), as Hugging Face
// does. Symbols form a linked list over the piece's bytes; a min-heap holds candidate pairs and
// entries made stale by earlier merges are skipped when popped, so a long piece costs
// O(n log n), not O(n^2).
void BpeTokenizer::bpe(std::string_view piece, std::vector<int32_t>* out) const {
  struct Candidate {
    int32_t rank, pos, left, right, merged;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  thread_local std::vector<int32_t> ids, prev, next;
  thread_local std::vector<Candidate> heap;
  const int32_t n = static_cast<int32_t>(piece.size());
  ids.resize(n), prev.resize(n), next.resize(n);
  heap.clear();
  for (int32_t i = 0; i < n; ++i) {
    ids[i] = byte_id_[static_cast<unsigned char>(piece[i])];
    if (ids[i] < 0) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "0x%02X", static_cast<unsigned char>(piece[i]));
      throw InputError(std::string("tokenizer: byte ") + hex + " has no token in the vocabulary (not a byte-level BPE vocabulary?)");
    }
    prev[i] = i - 1;
    next[i] = i + 1;
  }
  auto push = [&](int32_t pos) {
    if (pos < 0 || next[pos] >= n) return;
    int32_t r = next[pos];
    if (const MergeInfo* m = find_merge(ids[pos], ids[r])) {
      heap.push_back({m->rank, pos, ids[pos], ids[r], m->id});
      std::push_heap(heap.begin(), heap.end(), std::greater<Candidate>());
    }
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<Candidate>());
    Candidate c = heap.back();
    heap.pop_back();
    int32_t r = next[c.pos];
    if (ids[c.pos] != c.left || r >= n || ids[r] != c.right) continue;  // stale
    ids[c.pos] = c.merged;
    ids[r] = -1;
    next[c.pos] = next[r];
    if (next[r] < n) prev[next[r]] = c.pos;
    if (prev[c.pos] >= 0) push(prev[c.pos]);
    push(c.pos);
  }
  for (int32_t i = 0; i < n; i = next[i]) out->push_back(ids[i]);
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string out;
  size_t total = 0;
  for (int32_t id : ids)
    if (id >= 0 && static_cast<size_t>(id) < kind_.size()) total += bytes_[id].size();
  out.reserve(total);
  for (int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= kind_.size() || kind_[id] == kHole)
      throw InputError("decode: token id " + std::to_string(id) + " is not in the vocabulary (size " +
                       std::to_string(kind_.size()) + ")");
    if (skip_special && kind_[id] == kSpecial) continue;
    out += bytes_[id];
  }
  return out;
}

std::string BpeTokenizer::token_bytes(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= kind_.size() || kind_[id] == kHole)
    throw InputError("token id " + std::to_string(id) + " is not in the vocabulary (size " +
                     std::to_string(kind_.size()) + ")");
  return bytes_[id];
}

std::optional<int32_t> BpeTokenizer::token_id(const std::string& token) const {
  int32_t id = lookup(token);
  if (id < 0) return std::nullopt;
  return id;
}

int32_t BpeTokenizer::lookup(std::string_view token) const {
  auto it = added_ids_.find(std::string(token));
  if (it != added_ids_.end()) return it->second;
  return vocab_table_.find(token, vocab_strings_);
}

bool BpeTokenizer::is_special(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < kind_.size() && kind_[id] == kSpecial;
}

}  // namespace emlab::text
