// BPE tokenizers as Hugging Face's `tokenizers` library reads them: byte-level (GPT-2, Qwen2/3,
// Llama 3) and SentencePiece-style with byte fallback (Llama 2, Mistral, Gemma), loaded from
// Hugging Face files. encode/decode give the ids and text of `tokenizers` (checked against it in
// tests/text/tokenizer_reference_test.cpp); what emlab cannot reproduce is refused at load.
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
  // Unicode normalisation before splitting: "" = as the files say (Qwen2: NFC), "none", "nfc"
  // (replaces only the Unicode step; SentencePiece-style Prepend / Replace steps stay).
  std::string normalizer;
};

class Tokenizer {
 public:
  // Loads from a folder holding tokenizer.json, or vocab.json + merges.txt, or GPT-2's
  // encoder.json + vocab.bpe; tokenizer_config.json (if present) adds added/special tokens, the
  // chat template and bos/eos/pad. tokenizer.json may use: model BPE (byte_fallback, unk_token,
  // fuse_unk, ignore_merges); normalizers NFC/NFD/NFKC/NFKD, Prepend, Replace (string pattern),
  // Sequence; pre-tokenizers ByteLevel (last), Split (any behaviour), Digits, Metaspace, Sequence;
  // post-processors TemplateProcessing, ByteLevel, Sequence; decoders ByteLevel, Metaspace,
  // Replace, ByteFallback, Fuse, Strip, Sequence; added tokens with lstrip / rstrip / single_word /
  // normalized / special. Anything else (a Unigram or WordPiece model, a Whitespace
  // pre-tokenizer, ...) throws InputError naming the file and the component.
  static std::shared_ptr<Tokenizer> load(const std::string& dir);
  static std::shared_ptr<Tokenizer> load(const std::string& dir, const TokenizerLoadOptions& options);

  virtual ~Tokenizer() = default;

  // Text -> ids. With parse_special, special tokens written in the text ("<|im_end|>") become
  // their ids; otherwise they are encoded as ordinary text (Hugging Face's encode_special_tokens).
  // Added tokens that are not special ("<tool_call>") are always matched, as Hugging Face and
  // llama.cpp do. Never adds BOS/EOS: this is Hugging Face's encode(text, add_special_tokens=False).
  virtual std::vector<int32_t> encode(const std::string& text, bool parse_special = true) const = 0;
  // Hugging Face's encode(text, add_special_tokens=True): encode(), then the special tokens that
  // tokenizer.json's post_processor (TemplateProcessing, single sequence) puts around it, e.g.
  // "<s>" first for Llama 2 / Mistral, "<bos>" for Gemma; GPT-2 and Qwen add nothing.
  std::vector<int32_t> encode_with_special_tokens(const std::string& text, bool parse_special = true) const {
    return add_special_tokens(encode(text, parse_special));
  }
  // The post-processor's special tokens around the ids of one sequence (none by default).
  virtual std::vector<int32_t> add_special_tokens(std::vector<int32_t> ids) const { return ids; }
  // Ids -> text as Hugging Face's decode gives it. Byte-level tokenizers return the raw bytes, the
  // exact inverse of encode (`tokenizers` would turn invalid UTF-8 into U+FFFD); SentencePiece-style
  // ones run tokenizer.json's decoder (Mistral: "▁" -> " ", "<0x0A>" -> "\n", the first space
  // stripped), which need not give the input back ("<s>hi" -> "<s> hi", as in `tokenizers`).
  // skip_special drops special tokens.
  virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const = 0;
  // Text of one token on its own (may be an incomplete UTF-8 sequence): its bytes for byte-level
  // vocabularies; for SentencePiece-style ones "▁the" -> " the" and "<0x0A>" -> "\n", without
  // the decoder's steps that depend on neighbours (Strip of the first space).
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

// Copies the tokenizer's files of a model folder (tokenizer*.json, vocab.json, merges.txt,
// special_tokens_map.json, added_tokens.json, chat_template.jinja, generation_config.json) into
// `to`, so that a model written there (merged, finetuned, orthogonalized) loads on its own.
// Does nothing when `from` is not a folder.
void tokenizer_files_copy(const std::string& from, const std::string& to);

}  // namespace emlab
