// GPT-2's byte-to-unicode table: every byte maps to one printable code point, so a byte-level
// BPE vocabulary is a set of ordinary strings ("Ġthe" = " the"). Also what tests and benchmarks
// use to write byte-level tokenizer files, and the UTF-8 helpers of src/text.
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace emlab::text {

// UTF-8 of the code point standing for each byte.
const std::array<std::string, 256>& byte_to_unicode();
// Code point standing for each byte.
const std::array<char32_t, 256>& byte_to_codepoint();

// Raw bytes -> byte-level string.
std::string byte_level_encode(std::string_view bytes);
// Byte-level string -> raw bytes. Returns false (out partly filled) when a code point is not in
// the table or the UTF-8 is malformed.
bool byte_level_decode(std::string_view token, std::string* out);

// Appends the UTF-8 encoding of a code point.
void utf8_append(char32_t cp, std::string* out);
// Decodes one code point at s[i] and advances i; returns -1 (advancing one byte) if malformed.
int32_t utf8_next(std::string_view s, size_t* i);
// True when s is well-formed UTF-8.
bool utf8_valid(std::string_view s);

}  // namespace emlab::text
