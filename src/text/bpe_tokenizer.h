// The BPE tokenizer behind Tokenizer::load, built from a description that the loaders
// (tokenizer.json, vocab.json + merges.txt, encoder.json + vocab.bpe) and the BPE trainer fill in.
// Two alphabets: byte-level (GPT-2, Qwen2, Llama 3: BPE over the bytes of each piece) and
// SentencePiece-style (Llama 2, Mistral, Gemma: BPE over the characters, "<0xNN>" byte fallback,
// unk). The pipeline is Hugging Face's: added tokens, normalizer, pre-tokenizer, model, and
// post-processor / decoder. Internal to src/text.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "emlab/tokenizer.h"
#include "text/decoder.h"
#include "text/normalize.h"
#include "text/pretokenizer.h"
#include "text/word_cache.h"

namespace emlab::text {

struct AddedToken {
  int32_t id = 0;
  std::string content;       // matched literally (in the raw text, or the normalised one if normalized)
  bool special = false;      // special tokens are matched only with parse_special; skip_special drops them
  bool lstrip = false;       // swallows whitespace on its left
  bool rstrip = false;       // swallows whitespace on its right
  bool single_word = false;  // matched only without a word character (\w) right before or after it
  bool normalized = false;   // matched in the normalised text, its content normalised the same way
};

struct BpeMerge {
  std::string left, right;  // vocabulary strings
  int64_t line = 0;         // where it was read (line of merges.txt, index in tokenizer.json)
};

// Everything a BPE tokenizer is made of.
struct BpeSpec {
  std::string vocab_file;                                // for error messages
  std::vector<std::pair<std::string, int32_t>> vocab;   // token string -> id
  std::string merges_file;                               // for error messages
  bool merges_indexed = false;                           // merges come from tokenizer.json (index, not line)
  std::vector<BpeMerge> merges;                          // in rank order
  std::vector<AddedToken> added;                         // added/special tokens
  bool byte_level = true;                                // vocabulary in GPT-2's byte alphabet ("Ġthe")
  bool byte_fallback = false;                            // unknown characters -> "<0xNN>" tokens (not byte_level)
  std::string unk_token;                                 // for unknown characters ("" = none)
  bool fuse_unk = false;                                 // a run of unknown characters is one unk
  bool ignore_merges = false;                            // a whole piece in the vocab is one token (Llama 3)
  Normalizer normalizer;                                 // applied to text between added tokens
  PreTokenizer pre_tokenizer;                            // splits normalised text into pieces
  TokenDecoder decoder;                                  // empty with byte_level: raw bytes
  std::vector<int32_t> special_prefix, special_suffix;   // post-processor ids around one sequence
  std::string bos, eos, pad;                             // token contents ("" = none)
  std::string chat_template;                             // Jinja source
};

class BpeTokenizer : public Tokenizer {
 public:
  // Validates the spec (merges refer to vocab tokens, ids unique); throws InputError naming the file.
  explicit BpeTokenizer(BpeSpec spec);

  std::vector<int32_t> encode(const std::string& text, bool parse_special = true) const override;
  std::vector<int32_t> add_special_tokens(std::vector<int32_t> ids) const override;
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

  // Added tokens matched in one stage (raw text, or normalised text), longest first.
  struct AddedSet {
    std::vector<AddedToken> tokens;
    std::array<bool, 256> first{};  // bytes that start one of them
  };

 private:
  enum Kind : uint8_t { kHole = 0, kVocab = 1, kAdded = 2, kSpecial = 3 };
  struct MergeInfo {
    int32_t rank = 0;
    int32_t id = 0;
  };

  void encode_text(std::string_view text, bool at_start, bool parse_special, std::vector<int32_t>* out) const;
  void encode_normalized(std::string_view text, bool at_start, std::vector<int32_t>* out) const;
  void encode_word(std::string_view word, std::vector<int32_t>* out) const;  // not byte_level
  void bpe(std::string_view piece, std::vector<int32_t>* out) const;
  void merge(std::vector<int32_t>* ids, std::vector<int32_t>* out) const;
  const MergeInfo* find_merge(int32_t left, int32_t right) const;
  int32_t lookup(std::string_view token) const;  // added content or vocab string -> id, or -1
  void check_id(int32_t id, const char* what) const;

  std::vector<uint8_t> kind_;                          // per id
  std::vector<std::string> bytes_;                     // per id: raw bytes (added: content)
  std::vector<std::string> vocab_strings_;             // per id: vocab string ("" if none)
  StringIdTable vocab_table_;                          // vocab string -> id
  std::vector<std::string> vocab_bytes_;               // per id: raw bytes, for ignore_merges
  StringIdTable bytes_table_;                          // raw bytes -> vocab id (ignore_merges only)
  std::unordered_map<std::string, int32_t> added_ids_; // added-token content -> id
  std::array<int32_t, 256> byte_id_{};                 // single-byte tokens (-1 = missing)
  std::array<int32_t, 256> fallback_id_{};             // "<0xNN>" tokens (-1 = missing)
  std::array<int32_t, 128> ascii_id_{};                // vocab token of each ASCII character (-1 = none)
  FlatMap64<MergeInfo> merges_;                        // (left id, right id) -> rank, merged id
  AddedSet raw_added_, normalized_added_;
  PreTokenizer pre_;
  Normalizer normalizer_;
  TokenDecoder decoder_;
  bool raw_decode_ = true;                             // decode = concatenated bytes_ (byte-level)
  std::vector<std::string> decode_strings_;            // per id: what the decoder gets (!raw_decode_)
  std::unordered_set<std::string> special_contents_;   // skip_special drops these strings (!raw_decode_)
  bool byte_level_ = true, byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;
  int32_t unk_ = -1;
  std::vector<int32_t> special_prefix_, special_suffix_;
  std::optional<int32_t> bos_, eos_, pad_;
  std::string chat_template_;
  mutable WordCache cache_;
};

}  // namespace emlab::text
