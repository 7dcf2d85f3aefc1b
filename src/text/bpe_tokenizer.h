// The byte-level BPE tokenizer behind Tokenizer::load, built from a description that the loaders
// (tokenizer.json, vocab.json + merges.txt, encoder.json + vocab.bpe) and the BPE trainer fill in.
// Internal to src/text.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "emlab/tokenizer.h"
#include "text/normalize.h"
#include "text/pretokenizer.h"
#include "text/word_cache.h"

namespace emlab::text {

struct AddedToken {
  int32_t id = 0;
  std::string content;   // matched literally in the raw text
  bool special = false;  // special tokens are matched only with parse_special; skip_special drops them
  bool lstrip = false;   // swallows whitespace on its left
  bool rstrip = false;   // swallows whitespace on its right
};

struct BpeMerge {
  std::string left, right;  // byte-level strings
  int64_t line = 0;         // where it was read (line of merges.txt, index in tokenizer.json)
};

// Everything a byte-level BPE tokenizer is made of.
struct BpeSpec {
  std::string vocab_file;                                // for error messages
  std::vector<std::pair<std::string, int32_t>> vocab;   // byte-level token string -> id
  std::string merges_file;                               // for error messages
  bool merges_indexed = false;                           // merges come from tokenizer.json (index, not line)
  std::vector<BpeMerge> merges;                          // in rank order
  std::vector<AddedToken> added;                         // added/special tokens
  std::vector<std::string> split_patterns;               // pre-tokenizer regexes, applied in turn
  std::string patterns_context;                          // file naming the patterns
  NormalForm normal_form = NormalForm::None;             // applied to text between added tokens
  bool add_prefix_space = false;                         // ByteLevel(add_prefix_space=true)
  bool ignore_merges = false;                            // a whole piece in the vocab is one token (Llama 3)
  std::string bos, eos, pad;                             // token contents ("" = none)
  std::string chat_template;                             // Jinja source
};

class BpeTokenizer : public Tokenizer {
 public:
  // Validates the spec (merges refer to vocab tokens, ids unique); throws InputError naming the file.
  explicit BpeTokenizer(BpeSpec spec);

  std::vector<int32_t> encode(const std::string& text, bool parse_special = true) const override;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const override;
  std::string token_bytes(int32_t id) const override;
  std::optional<int32_t> token_id(const std::string& token) const override;
  bool is_special(int32_t id) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(kind_.size()); }
  std::optional<int32_t> bos_id() const override { return bos_; }
  std::optional<int32_t> eos_id() const override { return eos_; }
  std::optional<int32_t> pad_id() const override { return pad_; }
  const std::string& chat_template_source() const override { return chat_template_; }
  std::vector<std::string> pre_tokenizer_patterns() const override { return pre_.patterns(); }

  // BPE of one pre-tokenised piece (raw bytes), appended to *out.
  void encode_piece(std::string_view piece, std::vector<int32_t>* out) const;

 private:
  enum Kind : uint8_t { kHole = 0, kVocab = 1, kAdded = 2, kSpecial = 3 };
  struct MergeInfo {
    int32_t rank = 0;
    int32_t id = 0;
  };

  void encode_text(std::string_view text, std::vector<int32_t>* out) const;
  void bpe(std::string_view piece, std::vector<int32_t>* out) const;
  const MergeInfo* find_merge(int32_t left, int32_t right) const;
  int32_t lookup(std::string_view token) const;  // added content or vocab string -> id, or -1

  std::vector<uint8_t> kind_;                          // per id
  std::vector<std::string> bytes_;                     // per id: raw bytes (added: content)
  std::vector<std::string> vocab_strings_;             // per id: byte-level vocab string ("" if none)
  StringIdTable vocab_table_;                          // vocab string -> id
  std::vector<std::string> vocab_bytes_;               // per id: raw bytes, for ignore_merges
  StringIdTable bytes_table_;                          // raw bytes -> vocab id (ignore_merges only)
  std::unordered_map<std::string, int32_t> added_ids_; // added-token content -> id
  std::array<int32_t, 256> byte_id_{};                 // single-byte tokens (-1 = missing)
  FlatMap64<MergeInfo> merges_;                        // (left id, right id) -> rank, merged id
  std::vector<AddedToken> added_;                      // sorted by content length, longest first
  std::array<bool, 256> added_first_{};                // bytes that start an added token
  PreTokenizer pre_;
  NormalForm normal_form_ = NormalForm::None;
  bool add_prefix_space_ = false, ignore_merges_ = false;
  std::optional<int32_t> bos_, eos_, pad_;
  std::string chat_template_;
  mutable WordCache cache_;
};

}  // namespace emlab::text
