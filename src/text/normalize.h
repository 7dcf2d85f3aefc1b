// Unicode normalisation (ICU) for tokenizers whose tokenizer.json asks for it (Qwen2: NFC).
// Internal to src/text.
#pragma once

#include <string>
#include <string_view>

namespace emlab::text {

enum class NormalForm { None, NFC, NFD, NFKC, NFKD };

// "NFC" / "nfc" ... -> form; throws InputError mentioning `context` for anything else.
NormalForm normal_form_from_name(const std::string& name, const std::string& context);
const char* normal_form_name(NormalForm form);

// Normalises `text` into *out and returns true, or returns false (out untouched) when the text is
// already normalised (the common case, checked cheaply). Ill-formed UTF-8 stays byte for byte:
// only the well-formed stretches around it are normalised.
bool normalize(NormalForm form, std::string_view text, std::string* out);

}  // namespace emlab::text
