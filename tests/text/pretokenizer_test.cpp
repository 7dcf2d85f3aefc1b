// The hand-written splitters for the GPT-2, Qwen2 and Llama 3 regexes against PCRE2 running the
// regexes themselves, on random text full of the cases that matter (contractions, digits, mixed
// whitespace and newlines, non-ASCII letters and numbers, malformed UTF-8).
#include <gtest/gtest.h>

#include <deque>
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

// Pieces of the general pre-tokenizer, with "^" marking a piece that begins the input.
std::vector<std::string> pieces(const text::PreTokenizer& pre, const std::string& s, bool at_start = true) {
  std::deque<std::string> arena;
  std::vector<text::PreToken> out;
  pre.pre_tokenize(s, at_start, &arena, &out);
  std::vector<std::string> result;
  for (const auto& p : out) result.push_back((p.at_start ? "^" : "") + std::string(p.text));
  return result;
}

using Strings = std::vector<std::string>;

TEST(PreTokenizerSteps, SplitBehaviours) {
  auto with = [](text::SplitBehavior b, bool invert, const std::string& regex = "\\d") {
    text::PreTokenizer pre;
    pre.add_split(regex, "test", b, invert);
    return pre;
  };
  using B = text::SplitBehavior;
  // Matches "1", "2", "3" in "a12b3": as tokenizers' SplitDelimiterBehavior describes.
  EXPECT_EQ(pieces(with(B::Isolated, false), "a12b3"), (Strings{"^a", "1", "2", "b", "3"}));
  EXPECT_EQ(pieces(with(B::Removed, false), "a12b3"), (Strings{"^a", "b"}));
  EXPECT_EQ(pieces(with(B::MergedWithPrevious, false), "a12b3"), (Strings{"^a1", "2", "b3"}));
  EXPECT_EQ(pieces(with(B::MergedWithNext, false), "a12b3"), (Strings{"^a", "1", "2b", "3"}));
  EXPECT_EQ(pieces(with(B::Contiguous, false), "a12b3"), (Strings{"^a", "12", "b", "3"}));
  // invert: the text between matches is what is matched.
  EXPECT_EQ(pieces(with(B::Removed, true), "a12b3"), (Strings{"1", "2", "3"}));
  EXPECT_EQ(pieces(with(B::MergedWithPrevious, true), "a12b3"), (Strings{"^a", "1", "2b", "3"}));
  EXPECT_FALSE(with(B::Removed, false).simple());
  EXPECT_TRUE(with(B::Isolated, false).simple());
  // A removed first piece: what follows does not begin the input.
  EXPECT_EQ(pieces(with(B::Removed, false), "1ab"), (Strings{"ab"}));
  EXPECT_EQ(pieces(with(B::Isolated, false), "ab", /*at_start=*/false), (Strings{"ab"}));
}

TEST(PreTokenizerSteps, MetaspaceAndByteLevel) {
  const std::string m = "\xE2\x96\x81";  // ▁
  text::PreTokenizer always, first, never, whole;
  always.add_metaspace(m, text::PrependScheme::Always, true);
  first.add_metaspace(m, text::PrependScheme::First, true);
  never.add_metaspace(m, text::PrependScheme::Never, true);
  whole.add_metaspace(m, text::PrependScheme::Always, false);
  EXPECT_EQ(pieces(always, "hi  there"), (Strings{"^" + m + "hi", m, m + "there"}));
  EXPECT_EQ(pieces(always, m + "hi"), (Strings{"^" + m + "hi"}));  // already starts with ▁
  EXPECT_EQ(pieces(first, "hi", /*at_start=*/false), (Strings{"hi"}));
  EXPECT_EQ(pieces(first, "hi"), (Strings{"^" + m + "hi"}));
  EXPECT_EQ(pieces(never, "hi there"), (Strings{"^hi", m + "there"}));
  EXPECT_EQ(pieces(whole, "hi there"), (Strings{"^" + m + "hi" + m + "there"}));
  // ByteLevel after a split puts its space before every piece (not only the first).
  text::PreTokenizer prefix;
  prefix.add_split("\\d+", "test", text::SplitBehavior::Isolated, false);
  prefix.add_byte_level(/*add_prefix_space=*/true, /*use_regex=*/false);
  EXPECT_FALSE(prefix.simple());
  EXPECT_EQ(pieces(prefix, "ab12 c"), (Strings{"^ ab", " 12", " c"}));
  EXPECT_EQ(prefix.patterns(), (Strings{"\\d+"}));
  text::PreTokenizer leading;  // ByteLevel first: one space before the whole text, the fast path
  leading.add_byte_level(true, true);
  EXPECT_TRUE(leading.simple());
  EXPECT_TRUE(leading.prefix_space());
}

TEST(PreTokenizerFast, OtherPatternsUseTheRegexEngine) {
  EXPECT_EQ(text::fast_split_for("\\p{N}+"), FastSplit::None);
  text::SplitRegex digits("\\p{N}+", "test");
  EXPECT_EQ(split(digits, "ab12cd3"), (std::vector<std::string>{"ab", "12", "cd", "3"}));
}

}  // namespace
}  // namespace emlab
