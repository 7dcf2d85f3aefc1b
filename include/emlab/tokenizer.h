// Byte-level BPE tokenizer (GPT-2, Qwen2, Llama 3 families), loaded from Hugging Face files.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace emlab {

// How to read a tokenizer folder; the defaults follow what the files say.
struct TokenizerLoadOptions {
  // Pre-tokenizer split: "" = tokenizer.json's, else guessed from the vocabulary (Qwen2, Llama 3,
  // GPT-2); or "gpt2", "qwen2", "llama3", or a PCRE2 regex of your own.
  std::string pre_tokenizer;
  // Unicode normalisation before splitting: "" = as the files say (Qwen2: NFC), "none", "nfc".
  std::string normalizer;
};

class Tokenizer {
 public:
  // Loads from a folder holding tokenizer.json, or vocab.json + merges.txt, or GPT-2's
  // encoder.json + vocab.bpe; tokenizer_config.json (if present) adds added/special tokens, the
  // chat template and bos/eos/pad. Throws InputError naming the file and what was expected.
  static std::shared_ptr<Tokenizer> load(const std::string& dir);
  static std::shared_ptr<Tokenizer> load(const std::string& dir, const TokenizerLoadOptions& options);

  virtual ~Tokenizer() = default;

  // Text -> ids. With parse_special, special tokens written in the text ("<|im_end|>") become
  // their ids; otherwise they are encoded as ordinary text. Added tokens that are not special
  // ("<tool_call>") are always matched, as Hugging Face and llama.cpp do. Never adds BOS.
  virtual std::vector<int32_t> encode(const std::string& text, bool parse_special = true) const = 0;
  // Ids -> text, exact inverse of encode for ordinary text. skip_special drops special tokens.
  virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const = 0;
  // Bytes of one token (may be an incomplete UTF-8 sequence).
  virtual std::string token_bytes(int32_t id) const = 0;
  // Id of a token given by its vocabulary string or added-token content; nullopt if absent.
  virtual std::optional<int32_t> token_id(const std::string& token) const = 0;
  virtual bool is_special(int32_t id) const = 0;
  // Number of ids (max id + 1), including added tokens.
  virtual int64_t vocab_size() const = 0;

  virtual std::optional<int32_t> bos_id() const = 0;
  virtual std::optional<int32_t> eos_id() const = 0;
  virtual std::optional<int32_t> pad_id() const = 0;
  // tokenizer_config.json "chat_template" (empty when absent).
  virtual const std::string& chat_template_source() const = 0;
  // The pre-tokenizer regexes applied in turn (diagnostics, tests); empty when not regex-based.
  virtual std::vector<std::string> pre_tokenizer_patterns() const { return {}; }
};

}  // namespace emlab
