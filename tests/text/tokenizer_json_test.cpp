// tokenizer.json components emlab cannot reproduce exactly are refused at load, naming the file
// and the component; the supported post-processors and pre-tokenizer orders load.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "emlab/error.h"
#include "emlab/tokenizer.h"
#include "test_util.h"

namespace emlab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A small SentencePiece-style tokenizer.json ("▁", "a", "b", byte fallback, <unk> <s> </s>).
json base() {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}, {"\xE2\x96\x81", 3}, {"a", 4}, {"b", 5}, {"ab", 6}};
  return {{"added_tokens", {{{"id", 1}, {"content", "<s>"}, {"special", true}, {"normalized", false}}}},
          {"normalizer", nullptr},
          {"pre_tokenizer", nullptr},
          {"post_processor", nullptr},
          {"decoder", nullptr},
          {"model", {{"type", "BPE"}, {"unk_token", "<unk>"}, {"byte_fallback", false}, {"vocab", vocab}, {"merges", {"a b"}}}}};
}

fs::path write(const json& j) {
  fs::path dir = test::temp_dir("tokjson");
  test::write_text(dir / "tokenizer.json", j.dump());
  return dir;
}

// Loading throws InputError naming tokenizer.json and containing `fragment`.
void expect_refused(const json& j, const std::string& fragment) {
  fs::path dir = write(j);
  try {
    Tokenizer::load(dir.string());
    ADD_FAILURE() << "no error (expected '" << fragment << "') for " << j.dump().substr(0, 300);
  } catch (const InputError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find((dir / "tokenizer.json").string()), std::string::npos) << what;
    EXPECT_NE(what.find(fragment), std::string::npos) << what;
  }
}

json with(json j, const std::string& key, json value) {
  j[key] = std::move(value);
  return j;
}

TEST(TokenizerJson, RefusesWhatItCannotReproduce) {
  json b = base();
  expect_refused(with(b, "pre_tokenizer", {{"type", "Whitespace"}}), "unsupported pre_tokenizer type 'Whitespace'");
  expect_refused(with(b, "pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", {{{"type", "BertPreTokenizer"}}}}}),
                 "unsupported pre_tokenizer type 'BertPreTokenizer'");
  expect_refused(with(b, "normalizer", {{"type", "Lowercase"}}), "unsupported normalizer 'Lowercase'");
  expect_refused(with(b, "normalizer", {{"type", "Precompiled"}, {"precompiled_charsmap", "AAAA"}}),
                 "unsupported normalizer 'Precompiled'");
  expect_refused(with(b, "normalizer", {{"type", "Replace"}, {"pattern", {{"Regex", " +"}}}, {"content", "\xE2\x96\x81"}}),
                 "normalizer Replace with a Regex pattern is not supported");
  expect_refused(with(b, "decoder", {{"type", "CTC"}}), "unsupported decoder type 'CTC'");
  expect_refused(with(b, "decoder", {{"type", "WordPiece"}, {"prefix", "##"}}), "unsupported decoder type 'WordPiece'");
  expect_refused(with(b, "decoder", {{"type", "ByteLevel"}}), "decoder ByteLevel without a ByteLevel pre_tokenizer is not supported");
  expect_refused(with(b, "post_processor", {{"type", "RobertaProcessing"}, {"sep", {"</s>", 2}}, {"cls", {"<s>", 1}}}),
                 "unsupported post_processor type 'RobertaProcessing'");
  expect_refused(with(b, "post_processor", {{"type", "BertProcessing"}}), "unsupported post_processor type 'BertProcessing'");
  expect_refused(with(b, "post_processor",
                      {{"type", "TemplateProcessing"},
                       {"single", {{{"Sequence", {{"id", "B"}, {"type_id", 0}}}}}},
                       {"special_tokens", json::object()}}),
                 "TemplateProcessing: \"single\" must hold sequence A once");
  expect_refused(with(b, "post_processor",
                      {{"type", "TemplateProcessing"},
                       {"single", {{{"SpecialToken", {{"id", "[CLS]"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                       {"special_tokens", json::object()}}),
                 "special token '[CLS]' has no ids");
  expect_refused(with(b, "pre_tokenizer", {{"type", "Split"}, {"pattern", {{"String", "a"}}}, {"behavior", "Sideways"}, {"invert", false}}),
                 "behavior 'Sideways' is not supported");
  expect_refused(with(b, "pre_tokenizer", {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "sometimes"}}),
                 "prepend_scheme 'sometimes' is not supported");
  // ByteLevel maps text to its alphabet, so steps after it would see other text: refused.
  expect_refused(with(b, "pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", {{{"type", "ByteLevel"}}, {{"type", "Digits"}}}}}),
                 "pre_tokenizer Digits after ByteLevel is not supported");
  expect_refused(with(b, "pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", {{{"type", "Metaspace"}}, {{"type", "ByteLevel"}}}}}),
                 "both Metaspace and ByteLevel");
  expect_refused(with(with(b, "pre_tokenizer", {{"type", "ByteLevel"}}), "decoder", {{"type", "Metaspace"}}),
                 "decoder Metaspace with a ByteLevel pre_tokenizer is not supported");
  expect_refused(with(b, "decoder", {{"type", "Sequence"}, {"decoders", {{{"type", "ByteLevel"}}, {{"type", "Fuse"}}}}}),
                 "decoder ByteLevel inside a Sequence is not supported");

  json m = b;
  m["model"]["type"] = "Unigram";
  m["model"]["vocab"] = json::array({json::array({"<unk>", 0.0}), json::array({"a", -1.5})});
  expect_refused(m, "model.type 'Unigram' is not supported (expected BPE)");
  m = b;
  m["model"]["type"] = "WordLevel";
  expect_refused(m, "model.type 'WordLevel' is not supported");
  m = b;
  m["model"]["dropout"] = 0.1;
  expect_refused(m, "model.dropout");
  m = b;
  m["model"]["unk_token"] = "<unknown>";
  expect_refused(m, "model.unk_token '<unknown>' is not in the vocabulary");
  m = b;
  m["model"]["continuing_subword_prefix"] = "##";
  expect_refused(m, "model.continuing_subword_prefix is not supported");
}

TEST(TokenizerJson, SupportedComponentsLoad) {
  json b = base();
  auto plain = Tokenizer::load(write(b).string());
  // No normalizer, pre-tokenizer or decoder: BPE on the characters, decode joins tokens with
  // spaces as `tokenizers` does without a decoder.
  EXPECT_EQ(plain->encode("ab\xE2\x96\x81" "a"), (std::vector<int32_t>{6, 3, 4}));
  EXPECT_EQ(plain->decode({6, 3, 4}), "ab \xE2\x96\x81 a");
  EXPECT_EQ(plain->encode("c"), (std::vector<int32_t>{0}));  // unknown: <unk>
  EXPECT_EQ(plain->encode_with_special_tokens("a"), (std::vector<int32_t>{4}));  // no post-processor

  // Sequence[ByteLevel post-processor, TemplateProcessing] with a token before and two after.
  json t = with(b, "post_processor",
                {{"type", "Sequence"},
                 {"processors",
                  {{{"type", "ByteLevel"}, {"trim_offsets", false}},
                   {{"type", "TemplateProcessing"},
                    {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                                {{"SpecialToken", {{"id", "</s>x2"}, {"type_id", 0}}}}}},
                    {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}},
                                        {"</s>x2", {{"id", "</s>x2"}, {"ids", {2, 2}}, {"tokens", {"</s>", "</s>"}}}}}}}}}});
  auto templ = Tokenizer::load(write(t).string());
  EXPECT_EQ(templ->encode("ab"), (std::vector<int32_t>{6}));
  EXPECT_EQ(templ->encode_with_special_tokens("ab"), (std::vector<int32_t>{1, 6, 2, 2}));
  EXPECT_EQ(templ->add_special_tokens({}), (std::vector<int32_t>{1, 2, 2}));

  // Metaspace decoder, the older add_prefix_space spelling (false = never).
  json d = with(b, "pre_tokenizer", {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"add_prefix_space", false}});
  d["decoder"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"add_prefix_space", false}};
  auto never = Tokenizer::load(write(d).string());
  EXPECT_EQ(never->encode("a b"), (std::vector<int32_t>{4, 3, 5}));
  EXPECT_EQ(never->decode({3, 4}), " a");
}

}  // namespace
}  // namespace emlab
