#include "text/bpe_tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>

#include "emlab/error.h"
#include "emlab/byte_level.h"
#include "text/normalize.h"

namespace emlab::text {

namespace {

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

// The code point that ends right before s[end] (-1: none or malformed).
int32_t codepoint_before(std::string_view s, size_t end, size_t* begin) {
  if (end == 0) return -1;
  size_t at = end - 1;
  while (at > 0 && end - at < 4 && (static_cast<unsigned char>(s[at]) & 0xC0) == 0x80) --at;
  size_t i = at;
  int32_t cp = utf8_next(s, &i);
  if (i != end) {  // a stray continuation byte
    *begin = end - 1;
    return -1;
  }
  *begin = at;
  return cp;
}

// Start of the run of whitespace (Unicode White_Space) that ends at s[end].
size_t space_run_start(std::string_view s, size_t end) {
  size_t begin = end;
  for (int32_t cp; (cp = codepoint_before(s, end, &begin)) >= 0 && codepoint_is_space(cp); end = begin) {}
  return end;
}

// End of the run of whitespace that starts at s[begin].
size_t space_run_end(std::string_view s, size_t begin) {
  while (begin < s.size()) {
    size_t next = begin;
    int32_t cp = utf8_next(s, &next);
    if (cp < 0 || !codepoint_is_space(cp)) break;
    begin = next;
  }
  return begin;
}

bool word_before(std::string_view s, size_t end) {
  size_t begin;
  int32_t cp = codepoint_before(s, end, &begin);
  return cp >= 0 && codepoint_is_word(cp);
}

bool word_after(std::string_view s, size_t begin) {
  if (begin >= s.size()) return false;
  int32_t cp = utf8_next(s, &begin);
  return cp >= 0 && codepoint_is_word(cp);
}

// Cuts s at the added tokens of `set` as Hugging Face's AddedVocabulary does: the leftmost match,
// longest first; a special token without parse_special, or a single_word token touching a word
// character, is passed over (its text stays text and is not searched again); lstrip / rstrip take
// the whitespace beside the token into it. Calls on_text(begin, end) and on_token(id) in order.
template <typename OnText, typename OnToken>
void added_split(std::string_view s, const BpeTokenizer::AddedSet& set, bool parse_special, OnText on_text,
                 OnToken on_token) {
  size_t start_offset = 0, i = 0;
  while (i < s.size()) {
    if (!set.first[static_cast<unsigned char>(s[i])]) {
      ++i;
      continue;
    }
    const AddedToken* match = nullptr;
    for (const auto& a : set.tokens) {
      if (a.content.size() <= s.size() - i && std::memcmp(s.data() + i, a.content.data(), a.content.size()) == 0) {
        match = &a;
        break;
      }
    }
    if (!match) {
      ++i;
      continue;
    }
    size_t start = i, stop = i + match->content.size();
    i = stop;
    if (match->special && !parse_special) continue;
    if (match->single_word && (word_before(s, start) || word_after(s, stop))) continue;
    if (match->lstrip) start = std::max(space_run_start(s, start), start_offset);
    if (match->rstrip) stop = space_run_end(s, stop);
    if (start_offset < start) on_text(start_offset, start);
    on_token(match->id);
    start_offset = std::max(start_offset, stop);
  }
  if (start_offset < s.size()) on_text(start_offset, s.size());
}

}  // namespace

BpeTokenizer::BpeTokenizer(BpeSpec spec)
    : pre_(std::move(spec.pre_tokenizer)),
      normalizer_(std::move(spec.normalizer)),
      decoder_(std::move(spec.decoder)),
      byte_level_(spec.byte_level),
      byte_fallback_(spec.byte_fallback && !spec.byte_level),
      fuse_unk_(spec.fuse_unk),
      ignore_merges_(spec.ignore_merges),
      special_prefix_(std::move(spec.special_prefix)),
      special_suffix_(std::move(spec.special_suffix)),
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
    if (byte_level_) {
      // A token outside the byte-level alphabet stands for its own UTF-8 (it cannot come out of BPE).
      if (!byte_level_decode(token, &bytes_[id])) bytes_[id] = token;
    } else {
      bytes_[id] = decoder_.token_text(token);
    }
    vocab_strings_[id] = std::move(token);
    vocab_table_.insert(id, vocab_strings_);
  }
  if (ignore_merges_ && byte_level_) {
    vocab_bytes_ = bytes_;
    bytes_table_.reserve(spec.vocab.size());
    for (size_t id = 0; id < kind_.size(); ++id)
      if (kind_[id] == kVocab) bytes_table_.insert(static_cast<int32_t>(id), vocab_bytes_);
  }
  byte_id_.fill(-1);
  fallback_id_.fill(-1);
  for (int c = 0; c < 128; ++c) ascii_id_[c] = vocab_table_.find(std::string(1, static_cast<char>(c)), vocab_strings_);
  for (int b = 0; b < 256; ++b) {
    if (byte_level_) byte_id_[b] = vocab_table_.find(byte_to_unicode()[b], vocab_strings_);
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    if (byte_fallback_) fallback_id_[b] = vocab_table_.find(name, vocab_strings_);
  }
  if (!spec.unk_token.empty()) {
    unk_ = vocab_table_.find(spec.unk_token, vocab_strings_);
    if (unk_ < 0) throw InputError(spec.vocab_file + ": model.unk_token '" + spec.unk_token + "' is not in the vocabulary");
  }

  merges_.reserve(spec.merges.size());
  // A repeated merge takes its last rank, as in Hugging Face's tokenizers (a map filled in order).
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
    merges_.assign(pair_key(left, right), MergeInfo{static_cast<int32_t>(rank), merged});
  }

  raw_decode_ = byte_level_ && (decoder_.empty() || decoder_.byte_level_only());
  if (!raw_decode_) decode_strings_ = vocab_strings_;
  // One entry per id (a later definition of the same id wins).
  std::vector<AddedToken> added;
  for (auto it = spec.added.rbegin(); it != spec.added.rend(); ++it)
    if (std::none_of(added.begin(), added.end(), [&](const AddedToken& t) { return t.id == it->id; }))
      added.push_back(*it);
  for (auto& a : spec.added) {
    kind_[a.id] = a.special ? kSpecial : kAdded;
    bytes_[a.id] = a.content;
    added_ids_[a.content] = a.id;
  }
  for (auto& a : added) {
    if (!raw_decode_) decode_strings_[a.id] = a.content;
    if (a.special) special_contents_.insert(a.content);
    if (a.normalized) {
      // Matched in normalised text as its own normalised form, which is also what decode gives.
      std::string normalized;
      if (normalizer_.apply(a.content, &normalized)) {
        if (normalized.empty()) continue;
        a.content = normalized;
        if (!raw_decode_) decode_strings_[a.id] = normalized;
      }
    }
    (a.normalized ? normalized_added_ : raw_added_).tokens.push_back(a);
  }
  // Longest content first, so that the scan takes the longest match.
  for (AddedSet* set : {&raw_added_, &normalized_added_}) {
    std::sort(set->tokens.begin(), set->tokens.end(), [](const AddedToken& a, const AddedToken& b) {
      return a.content.size() != b.content.size() ? a.content.size() > b.content.size() : a.content < b.content;
    });
    for (const auto& a : set->tokens) set->first[static_cast<unsigned char>(a.content[0])] = true;
  }

  auto resolve_role = [&](const std::string& content, const char* role) -> std::optional<int32_t> {
    if (content.empty()) return std::nullopt;
    int32_t id = lookup(content);
    if (id < 0) throw InputError(spec.vocab_file + ": " + role + " '" + content + "' is not in the vocabulary or the added tokens");
    return id;
  };
  bos_ = resolve_role(spec.bos, "bos_token");
  eos_ = resolve_role(spec.eos, "eos_token");
  pad_ = resolve_role(spec.pad, "pad_token");
  for (const auto* ids : {&special_prefix_, &special_suffix_})
    for (int32_t id : *ids)
      if (id < 0 || static_cast<size_t>(id) >= kind_.size() || kind_[id] == kHole)
        throw InputError(spec.vocab_file + ": post_processor: special token id " + std::to_string(id) +
                         " is not in the vocabulary");
}

std::vector<int32_t> BpeTokenizer::encode(const std::string& text, bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 1);
  std::string_view s(text);
  added_split(
      s, raw_added_, parse_special,
      [&](size_t begin, size_t end) { encode_text(s.substr(begin, end - begin), begin == 0, parse_special, &out); },
      [&](int32_t id) { out.push_back(id); });
  return out;
}

std::vector<int32_t> BpeTokenizer::add_special_tokens(std::vector<int32_t> ids) const {
  if (special_prefix_.empty() && special_suffix_.empty()) return ids;
  std::vector<int32_t> out(special_prefix_);
  out.insert(out.end(), ids.begin(), ids.end());
  out.insert(out.end(), special_suffix_.begin(), special_suffix_.end());
  return out;
}

// One stretch between added tokens: normalise, cut at the normalised added tokens, pre-tokenise, BPE.
void BpeTokenizer::encode_text(std::string_view text, bool at_start, bool parse_special,
                               std::vector<int32_t>* out) const {
  if (text.empty()) return;
  std::string normalized;
  if (!normalizer_.empty() && normalizer_.apply(text, &normalized)) text = normalized;
  if (normalized_added_.tokens.empty()) {
    encode_normalized(text, at_start, out);
    return;
  }
  added_split(
      text, normalized_added_, parse_special,
      [&](size_t begin, size_t end) { encode_normalized(text.substr(begin, end - begin), at_start && begin == 0, out); },
      [&](int32_t id) { out->push_back(id); });
}

void BpeTokenizer::encode_normalized(std::string_view text, bool at_start, std::vector<int32_t>* out) const {
  if (text.empty()) return;
  if (!pre_.simple()) {
    std::deque<std::string> arena;
    std::vector<PreToken> pieces;
    pre_.pre_tokenize(text, at_start, &arena, &pieces);
    for (const auto& piece : pieces) encode_piece(piece.text, out);
    return;
  }
  std::string prefixed;
  if (pre_.prefix_space() && text[0] != ' ') {
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
  if (!byte_level_) {
    encode_word(piece, out);
    return;
  }
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

// SentencePiece-style BPE of one piece, as Hugging Face's BPE model does it: each character is its
// vocabulary token, else its bytes' "<0xNN>" tokens (byte_fallback), else unk (a run of unknown
// characters is one unk with fuse_unk); then the merges.
void BpeTokenizer::encode_word(std::string_view word, std::vector<int32_t>* out) const {
  if (ignore_merges_) {
    int32_t id = vocab_table_.find(word, vocab_strings_);
    if (id >= 0) {
      out->push_back(id);
      return;
    }
  }
  const bool cached = word.size() <= WordCache::kMaxWordBytes;
  const uint64_t hash = cached ? WordCache::hash(word) : 0;
  if (cached && cache_.find(hash, word, out)) return;
  thread_local std::vector<int32_t> ids;
  ids.clear();
  bool unk_pending = false;  // the unk goes in when a known character (or the end) follows, as in HF
  for (size_t i = 0; i < word.size();) {
    size_t at = i;
    const unsigned char first = static_cast<unsigned char>(word[i]);
    int32_t id;
    if (first < 0x80) {
      id = ascii_id_[first];
      ++i;
    } else {
      utf8_next(word, &i);  // a malformed byte is a character of its own
      id = vocab_table_.find(word.substr(at, i - at), vocab_strings_);
    }
    std::string_view ch = word.substr(at, i - at);
    if (id >= 0) {
      if (unk_pending) ids.push_back(unk_), unk_pending = false;
      ids.push_back(id);
      continue;
    }
    if (byte_fallback_ && std::all_of(ch.begin(), ch.end(), [&](char c) { return fallback_id_[static_cast<unsigned char>(c)] >= 0; })) {
      for (char c : ch) ids.push_back(fallback_id_[static_cast<unsigned char>(c)]);
      continue;
    }
    if (unk_ < 0) {
      std::string hex;
      for (char c : ch) {
        char b[4];
        std::snprintf(b, sizeof(b), "%02X", static_cast<unsigned char>(c));
        hex += hex.empty() ? b : std::string(" ") + b;
      }
      throw InputError("tokenizer: the character with UTF-8 bytes " + hex +
                       " has no token (the vocabulary has no unk_token and no byte fallback for it)");
    }
    if (unk_pending && !fuse_unk_) ids.push_back(unk_);
    unk_pending = true;
  }
  if (unk_pending) ids.push_back(unk_);
  size_t start = out->size();
  merge(&ids, out);
  if (cached) cache_.insert(hash, word, out->data() + start, out->size() - start);
}

const BpeTokenizer::MergeInfo* BpeTokenizer::find_merge(int32_t left, int32_t right) const {
  return merges_.find(pair_key(left, right));
}

// Byte-level BPE of one piece: its bytes' tokens, then the merges.
void BpeTokenizer::bpe(std::string_view piece, std::vector<int32_t>* out) const {
  thread_local std::vector<int32_t> ids;
  const size_t n = piece.size();
  ids.resize(n);
  for (size_t i = 0; i < n; ++i) {
    ids[i] = byte_id_[static_cast<unsigned char>(piece[i])];
    if (ids[i] < 0) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "0x%02X", static_cast<unsigned char>(piece[i]));
      throw InputError(std::string("tokenizer: byte ") + hex + " has no token in the vocabulary (not a byte-level BPE vocabulary?)");
    }
  }
  merge(&ids, out);
}

// Merges the lowest-ranked adjacent pair first (leftmost among equal ranks), as Hugging Face
// does, and appends the result. Symbols form a linked list; a min-heap holds candidate pairs and
// entries made stale by earlier merges are skipped when popped, so a long piece costs
// O(n log n), not O(n^2).
void BpeTokenizer::merge(std::vector<int32_t>* symbols, std::vector<int32_t>* out) const {
  struct Candidate {
    int32_t rank, pos, left, right, merged;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  thread_local std::vector<int32_t> prev, next;
  thread_local std::vector<Candidate> heap;
  std::vector<int32_t>& ids = *symbols;
  const int32_t n = static_cast<int32_t>(ids.size());
  prev.resize(n), next.resize(n);
  heap.clear();
  for (int32_t i = 0; i < n; ++i) {
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

void BpeTokenizer::check_id(int32_t id, const char* what) const {
  if (id < 0 || static_cast<size_t>(id) >= kind_.size() || kind_[id] == kHole)
    throw InputError(std::string(what) + "token id " + std::to_string(id) + " is not in the vocabulary (size " +
                     std::to_string(kind_.size()) + ")");
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  if (!raw_decode_) {
    // Hugging Face's Tokenizer.decode: the token strings through tokenizer.json's decoder.
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (int32_t id : ids) {
      check_id(id, "decode: ");
      if (skip_special && special_contents_.count(decode_strings_[id])) continue;
      tokens.push_back(decode_strings_[id]);
    }
    return decoder_.decode(std::move(tokens));
  }
  std::string out;
  size_t total = 0;
  for (int32_t id : ids)
    if (id >= 0 && static_cast<size_t>(id) < kind_.size()) total += bytes_[id].size();
  out.reserve(total);
  for (int32_t id : ids) {
    check_id(id, "decode: ");
    if (skip_special && kind_[id] == kSpecial) continue;
    out += bytes_[id];
  }
  return out;
}

std::string BpeTokenizer::token_bytes(int32_t id) const {
  check_id(id, "");
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
