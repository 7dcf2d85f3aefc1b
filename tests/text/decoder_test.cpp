// tokenizer.json decoders on token strings, as `tokenizers` applies them.
#include <gtest/gtest.h>

#include "text/decoder.h"

namespace emlab {
namespace {

using text::DecoderStep;
const std::string kSpace = "\xE2\x96\x81";  // ▁

DecoderStep step(DecoderStep::Kind kind, std::string pattern = "", std::string content = "") {
  DecoderStep s;
  s.kind = kind;
  s.pattern = std::move(pattern);
  s.content = std::move(content);
  return s;
}

text::TokenDecoder llama2() {
  text::TokenDecoder d;
  d.add(step(DecoderStep::Kind::Replace, kSpace, " "));
  d.add(step(DecoderStep::Kind::ByteFallback));
  d.add(step(DecoderStep::Kind::Fuse));
  DecoderStep strip = step(DecoderStep::Kind::Strip, " ");
  strip.start = 1;
  d.add(strip);
  return d;
}

TEST(TokenizerDecoder, Llama2Sequence) {
  auto d = llama2();
  EXPECT_EQ(d.decode({kSpace + "Hello", kSpace + "world"}), "Hello world");
  EXPECT_EQ(d.decode({kSpace + kSpace + "x"}), " x");  // Strip takes one space at most
  EXPECT_EQ(d.decode({"<s>", kSpace + "a"}), "<s> a");
  EXPECT_EQ(d.decode({"<0xE2>", "<0x82>", "<0xAC>", "!"}), "\xE2\x82\xAC!");  // €
  // An incomplete byte run: one U+FFFD per byte.
  EXPECT_EQ(d.decode({"<0xE2>", "<0x82>", "a"}), "\xEF\xBF\xBD\xEF\xBF\xBD" "a");
  EXPECT_EQ(d.decode({}), "");
  EXPECT_EQ(d.token_text(kSpace + "the"), " the");
  EXPECT_EQ(d.token_text("<0x0A>"), "\n");
  EXPECT_EQ(text::byte_fallback_value("<0x0a>"), 10);
  EXPECT_EQ(text::byte_fallback_value("<0x0G>"), -1);
  EXPECT_EQ(text::byte_fallback_value("<0x0A"), -1);
}

TEST(TokenizerDecoder, StripBothEndsAndMetaspace) {
  text::TokenDecoder d;
  DecoderStep strip = step(DecoderStep::Kind::Strip, "x");
  strip.start = 2;
  strip.stop = 1;
  d.add(strip);
  // Per token: at most two x's off the front, one off the back.
  EXPECT_EQ(d.decode({"xxxaxx", "ax", "x"}), "xaxa");
  text::TokenDecoder meta;
  DecoderStep m = step(DecoderStep::Kind::Metaspace, kSpace);
  m.scheme = text::PrependScheme::First;
  meta.add(m);
  // The first token loses every ▁, the others turn them into spaces.
  EXPECT_EQ(meta.decode({kSpace + "a" + kSpace, kSpace + "b"}), "a b");
  text::TokenDecoder none;
  EXPECT_EQ(none.decode({"a", "b"}), "a b");  // no decoder: joined with spaces
}

}  // namespace
}  // namespace emlab
