// Tokenizer loading and BPE on tiny hand-made tokenizer files, where every expected id can be
// worked out by hand.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <thread>

#include "emlab/error.h"
#include "emlab/tokenizer.h"
#include "test_util.h"
#include "emlab/byte_level.h"
#include "text/pretokenizer.h"

namespace emlab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// GPT-2's byte-level alphabet in id order 0..255 (code point order), written out independently
// of src/text: printable bytes stand for themselves, the other 68 take 256, 257, ... in byte order.
std::vector<std::string> byte_alphabet() {
  std::vector<std::pair<uint32_t, int>> cps;
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    bool direct = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    cps.emplace_back(direct ? b : next++, b);
  }
  std::sort(cps.begin(), cps.end());
  std::vector<std::string> out;
  for (auto [cp, b] : cps) {
    std::string s;
    if (cp < 0x80) {
      s.push_back(static_cast<char>(cp));
    } else {
      s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
    out.push_back(s);
  }
  return out;
}

// A tokenizer.json with the 256 byte tokens (ids 0..255), then one token per merge (256, ...).
struct TinySpec {
  std::vector<std::string> merges;  // "a b" in rank order
  json pre_tokenizer = json{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  json added = json::array();
  json normalizer = nullptr;
  std::vector<std::string> extra_tokens;  // tokens added to the vocab without a merge
  bool ignore_merges = false;
};

fs::path write_tiny(const TinySpec& spec, const std::string& tag = "tok") {
  json vocab = json::object();
  auto alphabet = byte_alphabet();
  for (size_t i = 0; i < alphabet.size(); ++i) vocab[alphabet[i]] = i;
  int id = 256;
  for (const auto& m : spec.merges) {
    std::string merged = m;
    merged.erase(merged.find(' '), 1);
    if (!vocab.contains(merged)) vocab[merged] = id++;
  }
  for (const auto& t : spec.extra_tokens) vocab[t] = id++;
  json j = {{"version", "1.0"},
            {"added_tokens", spec.added},
            {"normalizer", spec.normalizer},
            {"pre_tokenizer", spec.pre_tokenizer},
            {"decoder", {{"type", "ByteLevel"}}},
            {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", spec.merges}, {"ignore_merges", spec.ignore_merges}}}};
  fs::path dir = test::temp_dir(tag);
  test::write_text(dir / "tokenizer.json", j.dump(1));
  return dir;
}

json split_then_bytes(const std::string& regex) {
  return {{"type", "Sequence"},
          {"pretokenizers",
           {{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}},
            {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
}

std::vector<std::string> pieces_of(const std::shared_ptr<Tokenizer>& tok, const std::string& text) {
  std::vector<std::string> out;
  for (auto id : tok->encode(text)) out.push_back(tok->token_bytes(id));
  return out;
}

std::vector<std::string> split_with(const std::string& name, const std::string& text) {
  text::PreTokenizer pre;
  pre.add(text::pretokenizer_pattern(name), "test");
  std::vector<std::string_view> pieces;
  pre.split(text, &pieces);
  return {pieces.begin(), pieces.end()};
}

using Strings = std::vector<std::string>;

TEST(ByteLevel, TableMatchesGpt2) {
  EXPECT_EQ(text::byte_level_encode(" "), "\xC4\xA0");    // Ġ U+0120
  EXPECT_EQ(text::byte_level_encode("\n"), "\xC4\x8A");   // Ċ U+010A
  EXPECT_EQ(text::byte_level_encode(std::string(1, '\0')), "\xC4\x80");  // Ā U+0100
  EXPECT_EQ(text::byte_level_encode("\xAD"), "\xC5\x83");  // soft hyphen -> Ń U+0143 (the 68th)
  EXPECT_EQ(text::byte_level_encode("a~\xA1\xFF"), "a~\xC2\xA1\xC3\xBF");
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  std::string back;
  ASSERT_TRUE(text::byte_level_decode(text::byte_level_encode(all), &back));
  EXPECT_EQ(back, all);
  EXPECT_FALSE(text::byte_level_decode("\xE2\x82\xAC", &back));  // € is not in the table
}

TEST(PreTokenizer, Gpt2Splits) {
  EXPECT_EQ(split_with("gpt2", "Hello world's  12345!!\n\n x"),
            (Strings{"Hello", " world", "'s", " ", " 12345", "!!", "\n\n", " x"}));
  // Contractions are case-sensitive in GPT-2: "'S" is punctuation then a letter.
  EXPECT_EQ(split_with("gpt2", "IT'S"), (Strings{"IT", "'", "S"}));
}

TEST(PreTokenizer, Llama3SplitsDigitsInThrees) {
  EXPECT_EQ(split_with("llama3", "12345 1234567"), (Strings{"123", "45", " ", "123", "456", "7"}));
  EXPECT_EQ(split_with("llama3", "IT'S ok"), (Strings{"IT", "'S", " ok"}));
  // A non-letter may lead a word; punctuation keeps its trailing newlines; whitespace before a
  // newline goes with it.
  EXPECT_EQ(split_with("llama3", "$hello!!\n\nx"), (Strings{"$hello", "!!\n\n", "x"}));
  EXPECT_EQ(split_with("llama3", "  \n  x"), (Strings{"  \n", " ", " x"}));
  // Qwen2 is the same but with one digit per piece.
  EXPECT_EQ(split_with("qwen2", "12345"), (Strings{"1", "2", "3", "4", "5"}));
}

TEST(PreTokenizer, InvalidUtf8BecomesItsOwnPiece) {
  EXPECT_EQ(split_with("gpt2", "ab\xFF" "cd"), (Strings{"ab", "\xFF", "cd"}));
}

TEST(Tokenizer, Llama3RegexFromTokenizerJson) {
  TinySpec spec;
  spec.pre_tokenizer = split_then_bytes(text::kLlama3Pattern);
  // Merges that could build "12345" if the split allowed it.
  spec.merges = {"1 2", "12 3", "4 5", "123 45", "Ġ a", "Ġa b"};
  auto tok = Tokenizer::load(write_tiny(spec).string());
  ASSERT_EQ(tok->pre_tokenizer_patterns(), Strings{text::kLlama3Pattern});
  EXPECT_EQ(pieces_of(tok, "12345 ab"), (Strings{"123", "45", " ab"}));
  // With GPT-2's split the digits stay together and merge fully.
  spec.pre_tokenizer = {{"type", "ByteLevel"}, {"add_prefix_space", false}};
  auto gpt2 = Tokenizer::load(write_tiny(spec).string());
  EXPECT_EQ(pieces_of(gpt2, "12345 ab"), (Strings{"12345", " ab"}));
}

TEST(Tokenizer, MergesApplyByRank) {
  TinySpec spec;
  spec.merges = {"a b", "b c"};
  auto tok = Tokenizer::load(write_tiny(spec).string());
  EXPECT_EQ(pieces_of(tok, "abc"), (Strings{"ab", "c"}));
  // Ids: bytes are 0..255 in code point order ('!' = 0, so 'a' = 0x61 - 0x21 = 64); "ab" = 256.
  EXPECT_EQ(tok->encode("abc"), (std::vector<int32_t>{256, 66}));
  spec.merges = {"b c", "a b"};
  auto swapped = Tokenizer::load(write_tiny(spec).string());
  EXPECT_EQ(pieces_of(swapped, "abc"), (Strings{"a", "bc"}));
  // "abab": the rank-0 pair occurs twice; both merge, then "ab ab" has no merge.
  EXPECT_EQ(pieces_of(tok, "abab"), (Strings{"ab", "ab"}));
  // A repeated merge takes its last rank, as in Hugging Face's tokenizers: "b c" ranks after "a b".
  spec.merges = {"b c", "a b", "b c"};
  EXPECT_EQ(pieces_of(Tokenizer::load(write_tiny(spec).string()), "abc"), (Strings{"ab", "c"}));
}

TEST(Tokenizer, MergesAsPairs) {
  // tokenizers >= 0.20 writes merges as ["a", "b"]; both forms read the same.
  TinySpec spec;
  spec.merges = {"a b", "b c"};
  fs::path dir = write_tiny(spec);
  json j = json::parse(test::read_text(dir / "tokenizer.json"));
  j["model"]["merges"] = json::array({json::array({"b", "c"}), json::array({"a", "b"})});
  test::write_text(dir / "tokenizer.json", j.dump());
  EXPECT_EQ(pieces_of(Tokenizer::load(dir.string()), "abc"), (Strings{"a", "bc"}));
  j["model"]["merges"] = {{"b", "c"}};  // an object, not a list
  test::write_text(dir / "tokenizer.json", j.dump());
  EXPECT_THROW(Tokenizer::load(dir.string()), InputError);
}

TEST(Tokenizer, LongWordsMergeLeftmostFirst) {
  TinySpec spec;
  spec.merges = {"a a", "aa aa"};
  auto tok = Tokenizer::load(write_tiny(spec).string());
  // "aaaaa": a a merges leftmost first -> aa aa a -> aaaa a.
  EXPECT_EQ(pieces_of(tok, "aaaaa"), (Strings{"aaaa", "a"}));
  // 100003 a's: 25000 "aaaa" then "aa" "a"; a quadratic merge loop would take minutes here.
  auto ids = tok->encode(std::string(100003, 'a'));
  ASSERT_EQ(ids.size(), 25002u);
  EXPECT_EQ(tok->token_bytes(ids[0]), "aaaa");
  EXPECT_EQ(tok->token_bytes(ids[24999]), "aaaa");
  EXPECT_EQ(tok->token_bytes(ids[25000]), "aa");
  EXPECT_EQ(tok->token_bytes(ids[25001]), "a");
}

TEST(Tokenizer, AddedAndSpecialTokens) {
  TinySpec spec;
  spec.added = {{{"id", 300}, {"content", "<|end|>"}, {"special", true}},
                {{"id", 301}, {"content", "<|end|><|end|>"}, {"special", true}},
                {{"id", 302}, {"content", "<tool>"}, {"special", false}},
                {{"id", 303}, {"content", "[R]"}, {"special", true}, {"rstrip", true}},
                {{"id", 304}, {"content", "[L]"}, {"special", true}, {"lstrip", true}}};
  auto tok = Tokenizer::load(write_tiny(spec).string());
  EXPECT_EQ(tok->vocab_size(), 305);
  EXPECT_EQ(tok->encode("x<|end|>y"), (std::vector<int32_t>{87, 300, 88}));
  // The longest added token wins.
  EXPECT_EQ(tok->encode("<|end|><|end|><|end|>"), (std::vector<int32_t>{301, 300}));
  // Without parse_special the special text is bytes; the non-special added token still matches.
  auto plain = tok->encode("<|end|><tool>", /*parse_special=*/false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 300), 0);
  EXPECT_EQ(plain.back(), 302);
  EXPECT_EQ(tok->decode(plain), "<|end|><tool>");
  // rstrip swallows the spaces after, lstrip those before.
  EXPECT_EQ(tok->encode("[R]  x"), (std::vector<int32_t>{303, 87}));
  EXPECT_EQ(tok->encode("x  [L]"), (std::vector<int32_t>{87, 304}));
  EXPECT_TRUE(tok->is_special(300));
  EXPECT_FALSE(tok->is_special(302));
  EXPECT_EQ(tok->decode({87, 300, 302, 88}, /*skip_special=*/true), "x<tool>y");
  EXPECT_EQ(tok->token_id("<tool>"), 302);
  EXPECT_FALSE(tok->token_id("<nope>").has_value());
  EXPECT_THROW(tok->decode({299}), InputError);  // a hole between the vocab and the added ids
  EXPECT_THROW(tok->decode({-1}), InputError);
  EXPECT_THROW(tok->token_bytes(305), InputError);
}

TEST(Tokenizer, AddPrefixSpaceAndIgnoreMerges) {
  TinySpec spec;
  spec.merges = {"Ġ h", "Ġh i"};
  spec.pre_tokenizer = {{"type", "ByteLevel"}, {"add_prefix_space", true}};
  auto tok = Tokenizer::load(write_tiny(spec).string());
  EXPECT_EQ(pieces_of(tok, "hi"), (Strings{" hi"}));
  EXPECT_EQ(pieces_of(tok, " hi"), (Strings{" hi"}));

  TinySpec llama;
  llama.extra_tokens = {"xyz"};  // in the vocab, but no merge builds it
  llama.ignore_merges = true;
  EXPECT_EQ(pieces_of(Tokenizer::load(write_tiny(llama).string()), "xyz"), (Strings{"xyz"}));
  llama.ignore_merges = false;
  EXPECT_EQ(pieces_of(Tokenizer::load(write_tiny(llama).string()), "xyz"), (Strings{"x", "y", "z"}));
}

TEST(Tokenizer, NfcNormalizerFromTokenizerJson) {
  TinySpec spec;
  spec.normalizer = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}}}};
  auto tok = Tokenizer::load(write_tiny(spec).string());
  // e + U+0301 becomes U+00E9 (bytes C3 A9) before BPE.
  EXPECT_EQ(tok->decode(tok->encode("e\xCC\x81")), "\xC3\xA9");
  TokenizerLoadOptions none;
  none.normalizer = "none";
  auto raw = Tokenizer::load(write_tiny(spec).string(), none);
  EXPECT_EQ(raw->decode(raw->encode("e\xCC\x81")), "e\xCC\x81");
}

TEST(Tokenizer, VocabJsonAndMergesTxt) {
  fs::path dir = test::temp_dir("vocabfiles");
  json vocab = json::object();
  auto alphabet = byte_alphabet();
  for (size_t i = 0; i < alphabet.size(); ++i) vocab[alphabet[i]] = i;
  vocab["ab"] = 256;
  vocab["<|endoftext|>"] = 257;
  test::write_text(dir / "vocab.json", vocab.dump());
  test::write_text(dir / "merges.txt", "#version: 0.2\na b\n");
  auto tok = Tokenizer::load(dir.string());
  EXPECT_EQ(tok->pre_tokenizer_patterns(), Strings{text::kGpt2Pattern});
  EXPECT_EQ(tok->encode("ab<|endoftext|>"), (std::vector<int32_t>{256, 257}));
  EXPECT_EQ(tok->eos_id(), 257);  // no tokenizer_config.json: GPT-2's defaults
  // A config with ChatML markers and Qwen's class makes it a Qwen2 tokenizer (regex + NFC).
  test::write_text(dir / "tokenizer_config.json", R"({
    "tokenizer_class": "Qwen2Tokenizer",
    "added_tokens_decoder": {"258": {"content": "<|im_start|>", "special": true},
                             "259": {"content": "<|im_end|>", "special": true}},
    "bos_token": null, "eos_token": {"content": "<|im_end|>"}, "pad_token": "<|endoftext|>",
    "chat_template": [{"name": "tool_use", "template": "x"}, {"name": "default", "template": "{{ '<|im_start|>' }}"}]})");
  tok = Tokenizer::load(dir.string());
  EXPECT_EQ(tok->pre_tokenizer_patterns(), Strings{text::kQwen2Pattern});
  EXPECT_EQ(tok->eos_id(), 259);
  EXPECT_EQ(tok->pad_id(), 257);
  EXPECT_FALSE(tok->bos_id().has_value());
  EXPECT_EQ(tok->chat_template_source(), "{{ '<|im_start|>' }}");
  EXPECT_EQ(tok->decode(tok->encode("e\xCC\x81")), "\xC3\xA9");
  // Explicit override.
  TokenizerLoadOptions o;
  o.pre_tokenizer = "llama3";
  EXPECT_EQ(Tokenizer::load(dir.string(), o)->pre_tokenizer_patterns(), Strings{text::kLlama3Pattern});
}

TEST(Tokenizer, ChatTemplateJinjaFile) {
  fs::path dir = write_tiny(TinySpec{});
  test::write_text(dir / "chat_template.jinja", "{{ '<|start_header_id|>' }}");
  EXPECT_EQ(Tokenizer::load(dir.string())->chat_template_source(), "{{ '<|start_header_id|>' }}");
}

// The error names the file and what was expected.
void expect_input_error(const fs::path& dir, const std::string& fragment) {
  try {
    Tokenizer::load(dir.string());
    ADD_FAILURE() << "no error for " << dir << " (expected '" << fragment << "')";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(Tokenizer, ClearErrors) {
  expect_input_error("/nonexistent/tok", "tokenizer folder not found");
  fs::path empty = test::temp_dir("empty");
  expect_input_error(empty, "expected tokenizer.json, vocab.json + merges.txt");

  fs::path bad = test::temp_dir("badjson");
  test::write_text(bad / "tokenizer.json", "{\"model\": ");
  expect_input_error(bad, "tokenizer.json: not valid JSON");

  TinySpec spec;
  spec.merges = {"a b"};
  fs::path dir = write_tiny(spec);
  json j = json::parse(test::read_text(dir / "tokenizer.json"));
  j["model"]["merges"] = {"a b", "q zz"};
  test::write_text(dir / "tokenizer.json", j.dump());
  expect_input_error(dir, "merge 'q zz': 'zz' is not in the vocabulary");
  expect_input_error(dir, "tokenizer.json: model.merges[1]: merge 'q zz'");
  j["model"]["merges"] = {"a b c"};
  test::write_text(dir / "tokenizer.json", j.dump());
  expect_input_error(dir, "model.merges[0]: expected");
  j["model"]["merges"] = json::array({json::array({"a", "b", "c"})});
  test::write_text(dir / "tokenizer.json", j.dump());
  expect_input_error(dir, "model.merges[0]: expected");
  j["model"]["merges"] = json::array();
  j["model"]["vocab"]["zz"] = "x";
  test::write_text(dir / "tokenizer.json", j.dump());
  expect_input_error(dir, "the id of 'zz' is not an integer");
  j["model"]["vocab"].erase("zz");
  j["model"]["merges"] = json::array();
  j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {{{"type", "Whitespace"}}, {{"type", "ByteLevel"}}}}};
  test::write_text(dir / "tokenizer.json", j.dump());
  expect_input_error(dir, "unsupported pre_tokenizer type 'Whitespace'");
  j["pre_tokenizer"] = split_then_bytes("(unclosed");
  test::write_text(dir / "tokenizer.json", j.dump());
  expect_input_error(dir, "regex does not compile");
  j["pre_tokenizer"] = {{"type", "ByteLevel"}};
  j["model"]["type"] = "WordPiece";
  test::write_text(dir / "tokenizer.json", j.dump());
  expect_input_error(dir, "model.type 'WordPiece' is not supported (expected BPE)");
  j["model"]["type"] = "BPE";
  j["normalizer"] = {{"type", "Lowercase"}};
  test::write_text(dir / "tokenizer.json", j.dump());
  expect_input_error(dir, "unsupported normalizer 'Lowercase'");
  j["normalizer"] = nullptr;
  test::write_text(dir / "tokenizer.json", j.dump());
  test::write_text(dir / "tokenizer_config.json", R"({"eos_token": "</s>"})");
  expect_input_error(dir, "eos_token '</s>' is not in the vocabulary");
  test::write_text(dir / "tokenizer_config.json", R"({"eos_token": 3})");
  expect_input_error(dir, "tokenizer_config.json: eos_token: expected a string");

  fs::path txt = test::temp_dir("badmerges");
  json vocab = json::object();
  auto alphabet = byte_alphabet();
  for (size_t i = 0; i < alphabet.size(); ++i) vocab[alphabet[i]] = i;
  test::write_text(txt / "vocab.json", vocab.dump());
  test::write_text(txt / "merges.txt", "#version: 0.2\na b\nab\n");
  expect_input_error(txt, "merges.txt: line 3: expected 'left right', got 'ab'");
  test::write_text(txt / "merges.txt", "a b\n");
  expect_input_error(txt, "merges.txt: line 1: merge 'a b': the merged token 'ab' is not in the vocabulary");
}

TEST(Tokenizer, ThreadsShareTheCache) {
  TinySpec spec;
  spec.merges = {"Ġ t", "h e", "Ġt he", "i n", "Ġ a", "a n", "Ġa n"};
  auto tok = Tokenizer::load(write_tiny(spec).string());
  std::string text;
  for (int i = 0; i < 2000; ++i) text += " the cat in an inn " + std::to_string(i) + " ";
  auto expected = tok->encode(text);
  std::vector<std::vector<int32_t>> results(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 5; ++rep) results[t] = tok->encode(text);
    });
  for (auto& th : threads) th.join();
  for (const auto& r : results) EXPECT_EQ(r, expected);
  EXPECT_EQ(tok->decode(expected), text);
}

}  // namespace
}  // namespace emlab
