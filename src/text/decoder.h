// tokenizer.json's decoder: turns the token strings of ids back into text as Hugging Face's
// `tokenizers` does (Tokenizer.decode). Internal to src/text.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "text/pretokenizer.h"

namespace emlab::text {

// One decoder of tokenizer.json (a Sequence is flattened into its steps).
struct DecoderStep {
  enum class Kind { ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip };
  Kind kind = Kind::Fuse;
  std::string pattern;  // Replace: the literal text replaced; Metaspace: the replacement; Strip: the character
  std::string content;  // Replace: what replaces each occurrence
  PrependScheme scheme = PrependScheme::Always;  // Metaspace: Never keeps the first token's replacement as a space
  size_t start = 0, stop = 0;                    // Strip: at most this many characters off each end of a token
};

class TokenDecoder {
 public:
  void add(DecoderStep step) { steps_.push_back(std::move(step)); }
  bool empty() const { return steps_.empty(); }
  // Exactly one ByteLevel step (the byte-level families, decoded from raw bytes instead).
  bool byte_level_only() const { return steps_.size() == 1 && steps_[0].kind == DecoderStep::Kind::ByteLevel; }
  bool has(DecoderStep::Kind kind) const;

  // The steps on the token strings in turn, then joined; with no steps, the tokens joined with
  // spaces (as `tokenizers` does without a decoder). Not for ByteLevel steps (see byte_level_only).
  std::string decode(std::vector<std::string> tokens) const;
  // One token on its own, leaving out what depends on its neighbours (Fuse, Strip, the first-token
  // rule of Metaspace): "▁the" -> " the", "<0x0A>" -> "\n" (one raw byte, even if not UTF-8 alone).
  std::string token_text(const std::string& token) const;

 private:
  std::vector<DecoderStep> steps_;
};

// "<0x0A>" -> 0x0A as tokenizers' ByteFallback reads it; -1 for any other token.
int byte_fallback_value(const std::string& token);

}  // namespace emlab::text
