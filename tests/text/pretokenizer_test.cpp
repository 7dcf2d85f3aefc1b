// The hand-written splitters for the GPT-2, Qwen2 and Llama 3 regexes against PCRE2 running the
// regexes themselves, on random text full of the cases that matter (contractions, digits, mixed
// whitespace and newlines, non-ASCII letters and numbers, malformed UTF-8).
#include <gtest/gtest.h>

#include <random>

#include "text/pretokenizer.h"
#include "text/pretokenizer_fast.h"

namespace emlab {
namespace {

using text::FastSplit;

std::vector<std::string> split(const text::SplitRegex& re, const std::string& s) {
  std::vector<std::string_view> pieces;
  re.split(s, &pieces);
  return {pieces.begin(), pieces.end()};
}

std::string random_text(std::mt19937& rng) {
  static const std::vector<std::string> atoms = {
      " ", " ", "  ", "\t", "\n", "\r\n", "\n\n", "a", "Z", "hello", "World", "'", "'s", "'S", "'ll", "'LL", "'Re",
      "'ve", "'m", "'d", "'t", "'x", "\xC5\xBF" /* ſ */, "1", "23", "4567", "\xC2\xBD" /* ½ */,
      "\xD9\xA3" /* Arabic-Indic 3 */, "\xE2\x85\xA0" /* Roman numeral I */, "!", "?!", ".", "$", "_", "-", "(",
      "\xC3\xA9" /* é */, "\xC3\x9F" /* ß */, "\xE4\xB8\xAD" /* 中 */, "\xF0\x9F\xA6\x99" /* 🦙 */,
      "\xE3\x80\x80" /* ideographic space */, "\xC2\xA0" /* nbsp */, "\xC2\x85" /* NEL */, "\xE2\x80\xA8",
      "\xCC\x81" /* combining acute (Mn) */, "\xFF", "\xE2\x82" /* truncated */, "\x80", std::string(1, '\0'), "\x0B"};
  std::string s;
  int n = rng() % 24;
  for (int i = 0; i < n; ++i) s += atoms[rng() % atoms.size()];
  return s;
}

void compare(const std::string& name) {
  std::string pattern = text::pretokenizer_pattern(name);
  ASSERT_NE(text::fast_split_for(pattern), FastSplit::None);
  text::SplitRegex fast(pattern, "test", true), pcre(pattern, "test", false);
  std::mt19937 rng(42);
  for (int n = 0; n < 20000; ++n) {
    std::string s = random_text(rng);
    ASSERT_EQ(split(fast, s), split(pcre, s)) << name << " on '" << s << "'";
  }
}

TEST(PreTokenizerFast, Gpt2MatchesPcre2) { compare("gpt2"); }
TEST(PreTokenizerFast, Qwen2MatchesPcre2) { compare("qwen2"); }
TEST(PreTokenizerFast, Llama3MatchesPcre2) { compare("llama3"); }

TEST(PreTokenizerFast, OtherPatternsUseTheRegexEngine) {
  EXPECT_EQ(text::fast_split_for("\\p{N}+"), FastSplit::None);
  text::SplitRegex digits("\\p{N}+", "test");
  EXPECT_EQ(split(digits, "ab12cd3"), (std::vector<std::string>{"ab", "12", "cd", "3"}));
}

}  // namespace
}  // namespace emlab
