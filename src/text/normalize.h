// Normalisation for tokenizers whose tokenizer.json asks for it: Unicode forms (ICU; Qwen2: NFC)
// and SentencePiece-style Prepend / Replace steps (Llama 2, Mistral, Gemma). Internal to src/text.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace emlab::text {

enum class NormalForm { None, NFC, NFD, NFKC, NFKD };

// "NFC" / "nfc" ... -> form; throws InputError mentioning `context` for anything else.
NormalForm normal_form_from_name(const std::string& name, const std::string& context);
const char* normal_form_name(NormalForm form);

// Normalises `text` into *out and returns true, or returns false (out untouched) when the text is
// already normalised (the common case, checked cheaply). Ill-formed UTF-8 stays byte for byte:
// only the well-formed stretches around it are normalised.
bool normalize(NormalForm form, std::string_view text, std::string* out);

// One normalizer of tokenizer.json (a Sequence is flattened into its steps).
struct NormalizerStep {
  enum class Kind { Unicode, Prepend, Replace };
  Kind kind = Kind::Unicode;
  NormalForm form = NormalForm::None;  // Unicode: the form
  std::string pattern;                 // Prepend: the prefix; Replace: the literal text replaced
  std::string content;                 // Replace: what replaces each occurrence
};

// tokenizer.json's normalizer as Hugging Face's `tokenizers` applies it to the text between added
// tokens: each step in turn. Prepend adds its prefix to non-empty text; Replace replaces every
// occurrence, left to right, without overlaps.
class Normalizer {
 public:
  void add(NormalizerStep step) { steps_.push_back(std::move(step)); }
  // Drops the Unicode steps and, unless form is None, puts `form` first (the load option).
  void set_unicode_form(NormalForm form);
  bool empty() const { return steps_.empty(); }
  const std::vector<NormalizerStep>& steps() const { return steps_; }
  // Normalises text into *out and returns true, or returns false (out untouched) when no step
  // changes it.
  bool apply(std::string_view text, std::string* out) const;

 private:
  std::vector<NormalizerStep> steps_;
};

// Unicode White_Space (Rust's char::is_whitespace, regex \s).
bool codepoint_is_space(char32_t c);
// Rust regex's Unicode \w: Alphabetic, marks, decimal digits, connector punctuation, join controls.
bool codepoint_is_word(char32_t c);

}  // namespace emlab::text
