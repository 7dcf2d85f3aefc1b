// The normalizer steps of tokenizer.json: Unicode forms, Prepend, Replace, in order.
#include <gtest/gtest.h>

#include "text/normalize.h"

namespace emlab {
namespace {

using text::NormalizerStep;

NormalizerStep step(NormalizerStep::Kind kind, std::string pattern, std::string content = "") {
  NormalizerStep s;
  s.kind = kind;
  s.pattern = std::move(pattern);
  s.content = std::move(content);
  return s;
}

std::string apply(const text::Normalizer& n, const std::string& s) {
  std::string out;
  return n.apply(s, &out) ? out : s;
}

TEST(TokenizerNormalizer, PrependAndReplaceInOrder) {
  const std::string m = "\xE2\x96\x81";  // ▁
  text::Normalizer llama2;
  llama2.add(step(NormalizerStep::Kind::Prepend, m));
  llama2.add(step(NormalizerStep::Kind::Replace, " ", m));
  EXPECT_EQ(apply(llama2, "a b  c"), m + "a" + m + "b" + m + m + "c");
  EXPECT_EQ(apply(llama2, " "), m + m);
  std::string out = "untouched";
  EXPECT_FALSE(llama2.apply("", &out));  // Prepend leaves empty text alone
  EXPECT_EQ(out, "untouched");
  // Replace is left to right without overlaps: "aaa" holds one "aa".
  text::Normalizer pairs;
  pairs.add(step(NormalizerStep::Kind::Replace, "aa", "b"));
  EXPECT_EQ(apply(pairs, "aaaaa"), "bba");
  EXPECT_FALSE(pairs.apply("xyz", &out));
}

TEST(TokenizerNormalizer, UnicodeFormAndOption) {
  text::Normalizer n;
  n.add(step(NormalizerStep::Kind::Replace, "e\xCC\x81", "E"));
  EXPECT_EQ(apply(n, "caf" "e\xCC\x81"), "cafE");
  // The load option puts NFC first (before Replace): the combining accent is gone before it runs.
  n.set_unicode_form(text::NormalForm::NFC);
  ASSERT_EQ(n.steps().size(), 2u);
  EXPECT_EQ(apply(n, "caf" "e\xCC\x81"), "caf\xC3\xA9");
  n.set_unicode_form(text::NormalForm::None);
  EXPECT_EQ(n.steps().size(), 1u);
}

TEST(TokenizerNormalizer, UnicodeClasses) {
  // White_Space (Rust's char::is_whitespace) and regex \w, for added tokens' lstrip/single_word.
  for (char32_t c : {U' ', U'\t', U'\n', U'\u00A0', U'\u3000', U'\u2028', U'\u0085'}) EXPECT_TRUE(text::codepoint_is_space(c)) << c;
  for (char32_t c : {U'a', U'_', U'\u200B', U'\u2581'}) EXPECT_FALSE(text::codepoint_is_space(c)) << c;
  for (char32_t c : {U'a', U'Z', U'7', U'_', U'\u00E9', U'\u4E2D', U'\u0301', U'\u0663', U'\u200D'})
    EXPECT_TRUE(text::codepoint_is_word(c)) << c;
  for (char32_t c : {U' ', U'-', U'.', U'\u2581', U'\u00BD', U'\U0001F600'}) EXPECT_FALSE(text::codepoint_is_word(c)) << c;
}

}  // namespace
}  // namespace emlab
