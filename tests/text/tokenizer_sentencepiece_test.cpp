// SentencePiece-style BPE tokenizer.json files (Llama 2 / Mistral, Metaspace, Gemma) on a tiny
// hand-made vocabulary where every id can be worked out by hand, and the added-token rules
// (single_word, lstrip over Unicode whitespace, special tokens passed over as text).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "emlab/error.h"
#include "emlab/tokenizer.h"
#include "test_util.h"

namespace emlab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Ids = std::vector<int32_t>;

const std::string kSpace = "\xE2\x96\x81";  // ▁

// Ids: <unk> 0, <s> 1, </s> 2, <0x00>..<0xFF> 3..258, then the pieces below from 259.
enum : int32_t {
  kUnk = 0, kBos = 1, kEos = 2,
  kMeta = 259, kH, kE, kL, kO, kW, kR, kD, kMetaH, kLL, kMetaHe, kMetaHell, kMetaHello, kMetaW, kOR, kMetaWor,
  kMetaWorl, kMetaWorld, kMetaMeta, kFirstAdded
};
constexpr int32_t byte_token(int b) { return 3 + b; }

json sp_model(bool byte_fallback = true, json unk = "<unk>", bool fuse_unk = true) {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    vocab[name] = byte_token(b);
  }
  const std::vector<std::string> pieces = {kSpace, "h", "e", "l", "o", "w", "r", "d", kSpace + "h", "ll", kSpace + "he",
                                           kSpace + "hell", kSpace + "hello", kSpace + "w", "or", kSpace + "wor",
                                           kSpace + "worl", kSpace + "world", kSpace + kSpace};
  for (size_t i = 0; i < pieces.size(); ++i) vocab[pieces[i]] = kMeta + static_cast<int32_t>(i);
  json merges = json::array({json::array({kSpace, "h"}), json::array({"l", "l"}), json::array({kSpace + "h", "e"}),
                             json::array({kSpace + "he", "ll"}), json::array({kSpace + "hell", "o"}),
                             json::array({kSpace, "w"}), json::array({"o", "r"}), json::array({kSpace + "w", "or"}),
                             json::array({kSpace + "wor", "l"}), json::array({kSpace + "worl", "d"}),
                             json::array({kSpace, kSpace})});
  return {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", unk}, {"continuing_subword_prefix", nullptr},
          {"end_of_word_suffix", nullptr}, {"fuse_unk", fuse_unk}, {"byte_fallback", byte_fallback},
          {"ignore_merges", false}, {"vocab", vocab}, {"merges", merges}};
}

json added(int32_t id, const std::string& content, bool special, json flags = json::object()) {
  json a = {{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
            {"normalized", false}, {"special", special}};
  for (auto& [k, v] : flags.items()) a[k] = v;
  return a;
}

json specials() { return json::array({added(0, "<unk>", true), added(1, "<s>", true), added(2, "</s>", true)}); }

json replace(const std::string& from, const std::string& to) {
  return {{"type", "Replace"}, {"pattern", {{"String", from}}}, {"content", to}};
}

// Llama 2 / Mistral as published: Prepend + Replace normalizer, no pre-tokenizer, "<s> $A".
json llama2(json model = sp_model()) {
  return {{"version", "1.0"},
          {"added_tokens", specials()},
          {"normalizer", {{"type", "Sequence"}, {"normalizers", {{{"type", "Prepend"}, {"prepend", kSpace}}, replace(" ", kSpace)}}}},
          {"pre_tokenizer", nullptr},
          {"post_processor",
           {{"type", "TemplateProcessing"},
            {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
            {"pair", json::array()},
            {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
          {"decoder",
           {{"type", "Sequence"},
            {"decoders", {replace(kSpace, " "), {{"type", "ByteFallback"}}, {{"type", "Fuse"}},
                          {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
          {"model", model}};
}

std::shared_ptr<Tokenizer> load(const json& j) {
  fs::path dir = test::temp_dir("sptok");
  test::write_text(dir / "tokenizer.json", j.dump(1));
  return Tokenizer::load(dir.string());
}

TEST(TokenizerSentencePiece, Llama2StyleEncodesAndDecodes) {
  auto tok = load(llama2());
  EXPECT_EQ(tok->encode("hello"), (Ids{kMetaHello}));  // "▁hello": ▁ h, l l, ▁h e, ▁he ll, ▁hell o
  EXPECT_EQ(tok->encode("hello world"), (Ids{kMetaHello, kMetaWorld}));  // one word "▁hello▁world"
  // "▁▁hello": "▁ h" outranks "▁ ▁", so the first ▁ stays alone (as Mistral's " Hello" -> ▁, ▁Hello).
  EXPECT_EQ(tok->encode(" hello"), (Ids{kMeta, kMetaHello}));
  // é has no piece: its UTF-8 bytes C3 A9 become <0xC3> <0xA9>.
  EXPECT_EQ(tok->encode("h\xC3\xA9"), (Ids{kMetaH, byte_token(0xC3), byte_token(0xA9)}));
  EXPECT_EQ(tok->encode("\n"), (Ids{kMeta, byte_token(0x0A)}));
  // Each stretch between added tokens gets its own ▁ (what `tokenizers` does with this normalizer).
  EXPECT_EQ(tok->encode("<s>hello</s>"), (Ids{kBos, kMetaHello, kEos}));
  EXPECT_EQ(tok->encode("<s>hello", /*parse_special=*/false)[1], byte_token('<'));
  EXPECT_EQ(tok->encode_with_special_tokens("hello"), (Ids{kBos, kMetaHello}));
  EXPECT_EQ(tok->encode_with_special_tokens(""), (Ids{kBos}));

  EXPECT_EQ(tok->decode({kMetaHello, kMetaWorld}), "hello world");  // the leading space stripped
  EXPECT_EQ(tok->decode({kMeta, kMetaHello}), " hello");
  EXPECT_EQ(tok->decode({kMetaH, byte_token(0xC3), byte_token(0xA9)}), "h\xC3\xA9");
  EXPECT_EQ(tok->decode({kBos, kMetaHello}), "<s> hello");
  EXPECT_EQ(tok->decode({kBos, kMetaHello}, /*skip_special=*/true), "hello");
  // A byte run that is not UTF-8 decodes to one U+FFFD per byte, as `tokenizers` gives it.
  EXPECT_EQ(tok->decode({byte_token(0xC3), kH}), "\xEF\xBF\xBDh");
  EXPECT_EQ(tok->decode({byte_token(0xE2), byte_token(0x82)}), "\xEF\xBF\xBD\xEF\xBF\xBD");
  // token_bytes: the token on its own, ▁ as a space and a byte token as its byte.
  EXPECT_EQ(tok->token_bytes(kMetaHello), " hello");
  EXPECT_EQ(tok->token_bytes(byte_token(0x0A)), "\n");
  EXPECT_EQ(tok->token_bytes(byte_token(0xC3)), "\xC3");
  EXPECT_EQ(tok->token_id(kSpace + "hello"), kMetaHello);
  EXPECT_TRUE(tok->is_special(kBos));
  EXPECT_TRUE(tok->pre_tokenizer_patterns().empty());
}

TEST(TokenizerSentencePiece, UnknownCharactersWithoutByteFallback) {
  // Without byte fallback é is <unk>; fuse_unk makes a run of unknown characters one <unk>.
  EXPECT_EQ(load(llama2(sp_model(false)))->encode("h\xC3\xA9\xC3\xA9h"), (Ids{kMetaH, kUnk, kH}));
  EXPECT_EQ(load(llama2(sp_model(false, "<unk>", false)))->encode("h\xC3\xA9\xC3\xA9"), (Ids{kMetaH, kUnk, kUnk}));
  // Neither: emlab refuses the text instead of dropping the character as `tokenizers` would.
  auto none = load(llama2(sp_model(false, nullptr)));
  EXPECT_EQ(none->encode("hello"), (Ids{kMetaHello}));
  try {
    none->encode("h\xC3\xA9");
    ADD_FAILURE() << "no error for a character without a token";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("C3 A9 has no token"), std::string::npos) << e.what();
  }
}

TEST(TokenizerSentencePiece, MetaspacePrependSchemes) {
  json j = llama2();
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", kSpace}, {"prepend_scheme", "first"}, {"split", false}};
  auto first = load(j);
  EXPECT_EQ(first->encode("hello world"), (Ids{kMetaHello, kMetaWorld}));
  // "first": only text at the very start of the input gets a ▁ (Llama 2 with legacy=False).
  EXPECT_EQ(first->encode("<s>hello"), (Ids{kBos, kH, kE, kLL, kO}));
  j["pre_tokenizer"]["prepend_scheme"] = "always";
  EXPECT_EQ(load(j)->encode("<s>hello"), (Ids{kBos, kMetaHello}));
  j["pre_tokenizer"]["prepend_scheme"] = "never";
  j["pre_tokenizer"]["split"] = true;
  // split: a piece begins at each ▁, so "▁ ▁" never merges across pieces.
  EXPECT_EQ(load(j)->encode("hello  world"), (Ids{kH, kE, kLL, kO, kMeta, kMetaWorld}));
  j["decoder"] = {{"type", "Metaspace"}, {"replacement", kSpace}, {"prepend_scheme", "always"}};
  // The Metaspace decoder drops the first token's ▁ unless the scheme is "never".
  EXPECT_EQ(load(j)->decode({kMetaHello, kMetaWorld}), "hello world");
  j["decoder"]["prepend_scheme"] = "never";
  EXPECT_EQ(load(j)->decode({kMetaHello, kMetaWorld}), " hello world");
}

TEST(TokenizerSentencePiece, GemmaStyle) {
  json j = llama2();
  j["normalizer"] = replace(" ", kSpace);
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "MergedWithPrevious"}, {"invert", false}};
  j["decoder"]["decoders"].erase(3);  // no Strip
  auto tok = load(j);
  EXPECT_EQ(tok->encode("hello world"), (Ids{kH, kE, kLL, kO, kMetaWorld}));  // no ▁ in front
  EXPECT_EQ(tok->decode({kMetaHello}), " hello");
}

TEST(TokenizerSentencePiece, AddedTokenFlags) {
  json j = llama2();
  j["added_tokens"].push_back(added(kFirstAdded, "world", false, {{"single_word", true}}));
  j["added_tokens"].push_back(added(kFirstAdded + 1, "[L]", true, {{"lstrip", true}, {"rstrip", true}}));
  j["added_tokens"].push_back(added(kFirstAdded + 2, "s>h", false));
  j["added_tokens"].push_back(added(kFirstAdded + 3, "ell", false, {{"normalized", true}}));
  auto tok = load(j);
  // single_word: only where no word character touches it.
  EXPECT_EQ(tok->encode("hello world"), (Ids{kMetaHello, kMeta, kFirstAdded}));
  auto glued = tok->encode("helloworld");
  EXPECT_EQ(std::count(glued.begin(), glued.end(), kFirstAdded), 0);
  // lstrip / rstrip take Unicode whitespace too (U+3000, U+00A0).
  EXPECT_EQ(tok->encode("h\xE3\x80\x80[L]\xC2\xA0 h"), (Ids{kMetaH, kFirstAdded + 1, kMetaH}));
  // Without parse_special, "<s>" is passed over as text and "s>h" inside it is not searched for.
  Ids plain = tok->encode("<s>h", /*parse_special=*/false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), kFirstAdded + 2), 0);
  EXPECT_EQ(tok->encode("<s>h"), (Ids{kBos, kMetaH}));
  // A normalized token is matched in the normalised text as its normalised content, here "▁ell"
  // (Prepend applies to it too): not inside "▁hell", but in " ell" -> "▁▁ell". Decode gives the
  // normalised content back, as `tokenizers` does.
  EXPECT_EQ(tok->encode("hell"), (Ids{kMetaHell}));
  EXPECT_EQ(tok->encode(" ell"), (Ids{kMeta, kFirstAdded + 3}));
  EXPECT_EQ(tok->decode({kMetaH, kFirstAdded + 3}), "h ell");
}

}  // namespace
}  // namespace emlab
