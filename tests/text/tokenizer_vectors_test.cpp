// llama.cpp's tokenizer test vectors (ids made by Hugging Face tokenizers) against the Qwen2.5
// and GPT-2 vocabularies in shared/, read in place.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "emlab/tokenizer.h"
#include "test_util.h"

namespace emlab {
namespace {

namespace fs = std::filesystem;

struct Vectors {
  std::vector<std::string> inputs;
  std::vector<std::vector<int32_t>> ids;
};

// .inp: strings each followed by "\n__ggml_vocab_test__\n"; .out: one line of " id id ..." each.
Vectors read_vectors(const std::string& name) {
  fs::path base = test::shared_dir() / "data/tokenizers/llama.cpp-vectors" / ("ggml-vocab-" + name + ".gguf");
  Vectors v;
  std::string inp = test::read_text(base.string() + ".inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  for (size_t pos = 0, next; (next = inp.find(sep, pos)) != std::string::npos; pos = next + sep.size())
    v.inputs.push_back(inp.substr(pos, next - pos));
  std::istringstream out(test::read_text(base.string() + ".out"));
  for (std::string line; std::getline(out, line);) {
    std::istringstream words(line);
    std::vector<int32_t> ids;
    for (int32_t id; words >> id;) ids.push_back(id);
    v.ids.push_back(ids);
  }
  return v;
}

std::shared_ptr<Tokenizer> cached(const std::string& folder) {
  static std::map<std::string, std::shared_ptr<Tokenizer>> cache;
  auto& t = cache[folder];
  if (!t) t = Tokenizer::load((test::shared_dir() / "data/tokenizers" / folder).string());
  return t;
}

std::string ids_text(const std::vector<int32_t>& ids) {
  std::string s;
  for (auto id : ids) s += " " + std::to_string(id);
  return s;
}

void check_vectors(const std::string& vectors, const std::string& folder) {
  Vectors v = read_vectors(vectors);
  ASSERT_EQ(v.inputs.size(), 46u);
  ASSERT_EQ(v.ids.size(), 46u);
  auto tok = cached(folder);
  int matched = 0;
  for (size_t i = 0; i < v.inputs.size(); ++i) {
    // llama.cpp encodes with parse_special=false; none of the strings holds a special token.
    auto ids = tok->encode(v.inputs[i], /*parse_special=*/false);
    EXPECT_EQ(ids_text(ids), ids_text(v.ids[i])) << "vector " << i << ": '" << v.inputs[i] << "'";
    matched += ids == v.ids[i];
    EXPECT_EQ(tok->decode(ids), v.inputs[i]) << "round trip of vector " << i;
    EXPECT_EQ(tok->encode(v.inputs[i], /*parse_special=*/true), ids) << "vector " << i;
  }
  EXPECT_EQ(matched, 46);
}

TEST(TokenizerVectors, Qwen2MatchesAll46) {
  EMLAB_REQUIRE_SHARED();
  check_vectors("qwen2", "qwen2.5");
}

TEST(TokenizerVectors, Gpt2MatchesAll46) {
  EMLAB_REQUIRE_SHARED();
  check_vectors("gpt-2", "gpt2");
}

TEST(TokenizerVectors, Qwen2SpecialTokensAndConfig) {
  EMLAB_REQUIRE_SHARED();
  auto tok = cached("qwen2.5");
  // From Qwen2.5-0.5B's own tokenizer (SOURCE.md, "Checks").
  std::vector<int32_t> expected = {151644, 872, 198, 3838, 374, 220, 17, 10, 17, 30, 151645, 198, 151644, 77091, 198};
  std::string text = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n";
  EXPECT_EQ(tok->encode(text), expected);
  EXPECT_EQ(tok->decode(expected), text);
  EXPECT_EQ(tok->decode(expected, /*skip_special=*/true), "user\nWhat is 2+2?\nassistant\n");
  // Without parse_special the markers are plain text: "<", "|", ... never id 151644.
  auto plain = tok->encode(text, /*parse_special=*/false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 151644), 0);
  EXPECT_EQ(tok->decode(plain), text);
  EXPECT_EQ(tok->vocab_size(), 151665);
  EXPECT_EQ(tok->eos_id(), 151645);
  EXPECT_EQ(tok->pad_id(), 151643);
  EXPECT_FALSE(tok->bos_id().has_value());
  EXPECT_TRUE(tok->is_special(151645));
  EXPECT_FALSE(tok->is_special(151657));  // <tool_call> is added but not special
  EXPECT_FALSE(tok->is_special(872));
  EXPECT_EQ(tok->token_id("<tool_call>"), 151657);
  EXPECT_EQ(tok->token_id("Ġmonths"), 3951);
  EXPECT_EQ(tok->token_bytes(3951), " months");
  EXPECT_EQ(tok->token_bytes(26062), "\xC2\xBD");
  EXPECT_NE(tok->chat_template_source().find("You are Qwen, created by Alibaba Cloud."), std::string::npos);
  // Non-special added tokens are matched even without parse_special (as HF and llama.cpp do).
  auto call = tok->encode("<tool_call>x", /*parse_special=*/false);
  ASSERT_FALSE(call.empty());
  EXPECT_EQ(call[0], 151657);
}

TEST(TokenizerVectors, Qwen2AppliesNfc) {
  EMLAB_REQUIRE_SHARED();
  auto tok = cached("qwen2.5");
  // "é" written as e + combining acute (NFD) encodes like the precomposed U+00E9.
  EXPECT_EQ(tok->encode("caf\x65\xCC\x81"), tok->encode("caf\xC3\xA9"));
  // GPT-2 does not normalise: the two spellings differ.
  auto gpt2 = cached("gpt2");
  EXPECT_NE(gpt2->encode("caf\x65\xCC\x81"), gpt2->encode("caf\xC3\xA9"));
}

TEST(TokenizerVectors, Gpt2Defaults) {
  EMLAB_REQUIRE_SHARED();
  auto tok = cached("gpt2");
  EXPECT_EQ(tok->vocab_size(), 50257);
  EXPECT_EQ(tok->eos_id(), 50256);
  EXPECT_EQ(tok->bos_id(), 50256);
  EXPECT_TRUE(tok->is_special(50256));
  EXPECT_EQ(tok->encode("a<|endoftext|>b"), (std::vector<int32_t>{64, 50256, 65}));
  EXPECT_EQ(tok->encode("Hello world"), (std::vector<int32_t>{15496, 995}));
  EXPECT_EQ(tok->pre_tokenizer_patterns().size(), 1u);
}

TEST(TokenizerVectors, RoundTripOfArbitraryBytes) {
  EMLAB_REQUIRE_SHARED();
  auto tok = cached("qwen2.5");
  // Invalid UTF-8, NUL, long whitespace runs and a long word survive encode/decode byte for byte.
  std::string text = std::string("a\xFF\xFE b\0c", 8) + std::string(5000, ' ') + "x" + std::string(3000, 'z') + "\xE2\x82";
  EXPECT_EQ(tok->decode(tok->encode(text)), text);
  EXPECT_EQ(cached("gpt2")->decode(cached("gpt2")->encode(text)), text);
}

// Textbook BPE (find the lowest-ranked pair, merge all its occurrences left to right, repeat) on
// the byte-level strings of merges.txt, as a reference for the heap-based merge loop.
std::vector<std::string> naive_bpe(const std::string& word, const std::map<std::pair<std::string, std::string>, int>& ranks) {
  std::vector<std::string> symbols;
  for (size_t i = 0; i < word.size();) {  // one UTF-8 character per symbol
    size_t len = 1;
    unsigned char c = word[i];
    if (c >= 0xF0) len = 4; else if (c >= 0xE0) len = 3; else if (c >= 0xC0) len = 2;
    symbols.push_back(word.substr(i, len));
    i += len;
  }
  while (symbols.size() > 1) {
    int best = INT32_MAX;
    std::pair<std::string, std::string> best_pair;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      auto it = ranks.find({symbols[i], symbols[i + 1]});
      if (it != ranks.end() && it->second < best) best = it->second, best_pair = it->first;
    }
    if (best == INT32_MAX) break;
    std::vector<std::string> next;
    for (size_t i = 0; i < symbols.size();) {
      if (i + 1 < symbols.size() && symbols[i] == best_pair.first && symbols[i + 1] == best_pair.second) {
        next.push_back(symbols[i] + symbols[i + 1]);
        i += 2;
      } else {
        next.push_back(symbols[i++]);
      }
    }
    symbols = next;
  }
  return symbols;
}

TEST(TokenizerVectors, MergeLoopMatchesTextbookBpe) {
  EMLAB_REQUIRE_SHARED();
  fs::path dir = test::shared_dir() / "data/tokenizers/qwen2.5";
  std::map<std::pair<std::string, std::string>, int> ranks;
  std::istringstream merges(test::read_text(dir / "merges.txt"));
  int rank = 0;
  for (std::string line; std::getline(merges, line);) {
    size_t sp = line.find(' ');
    ranks.emplace(std::make_pair(line.substr(0, sp), line.substr(sp + 1)), rank++);
  }
  auto vocab = nlohmann::json::parse(test::read_text(dir / "vocab.json"));
  auto tok = cached("qwen2.5");
  // Random " word" pieces (one pre-token each) over a small alphabet, so that many merges apply,
  // up to 60 letters long.
  std::mt19937 rng(7);
  const std::string letters = "aeinorstlhdcmpuy";
  int checked = 0;
  for (int n = 0; n < 1500; ++n) {
    std::string word = " ";
    int len = 1 + rng() % 60;
    for (int k = 0; k < len; ++k) word += letters[rng() % letters.size()];
    std::string byte_level = "\xC4\xA0" + word.substr(1);  // Ġ + letters
    std::vector<int32_t> expected;
    for (const auto& sym : naive_bpe(byte_level, ranks)) expected.push_back(vocab.at(sym).get<int32_t>());
    ASSERT_EQ(tok->encode(word), expected) << "'" << word << "'";
    ++checked;
  }
  EXPECT_EQ(checked, 1500);
}

}  // namespace
}  // namespace emlab
