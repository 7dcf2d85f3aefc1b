// emlab's tokenizers against Hugging Face's `tokenizers` library: the real files in shared/
// (Qwen3 and Mistral 7B tokenizer.json, Qwen2.5 vocab.json + merges.txt, GPT-2), the shipped
// toy-world tokenizer, and synthetic tokenizer.json files that tokenizer_reference.py builds with
// `tokenizers` itself in each style (Llama 2 / Mistral, Metaspace, Gemma, Split behaviours,
// Llama 3 ignore_merges, added tokens with every flag, post-processor templates). The same few
// thousand varied lines go through both; ids and decoded text must be identical.
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "emlab/tokenizer.h"
#include "test_util.h"

namespace emlab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Pieces of text the lines are made of: prose, code, numbers, whitespace, scripts, emoji and
// strings that look like special tokens of one family or another.
const std::vector<std::string>& fragments() {
  static const std::vector<std::string> f = {
      "the", "The", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "information", "model",
      "training", "alignment", "assistant", "question", "answer", "hello", "world", "Hello", "World",
      "helloworld", "hello_world", "don't", "I'M", "it's", "we'll", "they're", "you've", "O'Neil",
      "café", "cafe\xCC\x81", "naïve", "résumé", "São Paulo", "straße", "Ångström", "Ελληνικά", "русский язык",
      "日本語のテキスト", "中文字符", "한국어", "עברית", "العربية", "हिन्दी", "ไทย",
      "😀", "👍🏽", "🇫🇷", "❤️", "👨‍👩‍👧", "🤖🤖", "∑∫√", "→", "…", "—", "«quote»", "“smart”",
      "0", "7", "42", "1234", "1234567", "3.14159", "-12.5e3", "1,234,567", "2024-01-01", "0x1F", "12:30",
      "def f(x):\n    return x * 2", "if (a && b) { c++; }", "<div class=\"x\">", "SELECT * FROM t;",
      "#include <stdio.h>", "for i in range(10):", "x=[1,2,3]", "a->b", "std::vector<int>", "/* comment */",
      "<s>", "</s>", "<unk>", "<|im_end|>", "<|im_start|>", "<|endoftext|>", "[INST]", "[/INST]",
      "<tool>", "<mask>", "<sep>", "<bos>", "<eos>", "<start_of_turn>", "<|begin_of_text|>", "<|eot_id|>",
      "<0x0A>", "\xE2\x96\x81", "\xE2\x96\x81\xE2\x96\x81x", " the", "the the", "<s><s>", "[INST]hello[/INST]",
      "\t", "\n", "\r\n", "  ", "   ", "\t\t", "\n\n", " \n ", "\xC2\xA0", "\xE3\x80\x80", "\xE2\x80\x83",
  };
  return f;
}

const std::vector<std::string>& separators() {
  static const std::vector<std::string> s = {" ", " ", " ", " ", "", "  ", "   ", "\t", "\n", " \n", "\n\n", ", ", ". ", "\r\n"};
  return s;
}

// Deterministic varied lines (the same on every run).
std::vector<std::string> varied_lines(int count) {
  std::mt19937 rng(20240611);
  auto pick = [&](const std::vector<std::string>& v) { return v[rng() % v.size()]; };
  std::vector<std::string> lines = {"", " ", "a", " a", "  leading", "trailing  ", "\n", "<s>", " <s> ", "hello world"};
  while (static_cast<int>(lines.size()) < count) {
    std::string line;
    if (rng() % 5 == 0) line += std::string(1 + rng() % 3, ' ');
    int n = 1 + rng() % 12;
    for (int k = 0; k < n; ++k) {
      if (k) line += pick(separators());
      line += pick(fragments());
    }
    if (rng() % 7 == 0) line += std::string(1 + rng() % 3, rng() % 2 ? ' ' : '\n');
    lines.push_back(line);
  }
  std::string long_line;
  for (int k = 0; k < 400; ++k) long_line += fragments()[k % fragments().size()] + separators()[k % separators().size()];
  lines.push_back(long_line);
  lines.push_back(std::string(300, ' ') + "x" + std::string(200, 'z'));
  return lines;
}

// llama.cpp's test strings (separated by "\n__ggml_vocab_test__\n"), all three vocabularies.
std::vector<std::string> llama_cpp_inputs() {
  std::vector<std::string> out;
  if (test::shared_dir().empty()) return out;
  for (const char* name : {"qwen2", "llama-bpe", "gpt-2"}) {
    fs::path inp = test::shared_dir() / "data/tokenizers/llama.cpp-vectors" / ("ggml-vocab-" + std::string(name) + ".gguf.inp");
    if (!fs::exists(inp)) continue;
    std::string text = test::read_text(inp);
    const std::string sep = "\n__ggml_vocab_test__\n";
    for (size_t pos = 0, next; (next = text.find(sep, pos)) != std::string::npos; pos = next + sep.size())
      out.push_back(text.substr(pos, next - pos));
  }
  return out;
}

std::string show(const std::string& s) {
  std::string j = json(s).dump();
  return j.size() > 200 ? j.substr(0, 200) + "..." : j;
}

std::string show(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size() && i < 40; ++i) s += (i ? " " : "") + std::to_string(ids[i]);
  return ids.size() > 40 ? s + " ..." : s;
}

// Counts mismatches of one kind for one case and reports the first few in full.
struct Tally {
  std::string what;
  int checked = 0, failed = 0;
  template <typename T>
  void check(const T& got, const T& want, const std::string& line) {
    ++checked;
    if (got == want) return;
    if (++failed <= 3) ADD_FAILURE() << what << " of " << show(line) << "\n  emlab:  " << show(got) << "\n  HF:     " << show(want);
  }
};

TEST(TokenizerReference, MatchesHuggingFaceTokenizers) {
  EMLAB_REQUIRE_PYREF();
  std::vector<std::string> lines = varied_lines(3000);
  std::set<std::string> seen(lines.begin(), lines.end());
  for (const auto& s : llama_cpp_inputs())
    if (seen.insert(s).second) lines.push_back(s);

  fs::path work = test::temp_dir("tokref");
  json request = {{"lines", lines},
                  {"shared", test::shared_dir().string()},
                  {"toyworld", (test::source_dir() / "models/toyworld").string()}};
  test::write_text(work / "request.json", request.dump());
  std::string output;
  int rc = test::run_reference_script("text/tokenizer_reference.py", "'" + work.string() + "'", &output);
  ASSERT_EQ(rc, 0) << output;
  json expected = json::parse(test::read_text(work / "expected.json"));

  std::set<std::string> names;
  for (const auto& c : expected["cases"]) {
    const std::string name = c["name"];
    names.insert(name);
    SCOPED_TRACE("tokenizer '" + name + "' (" + c["dir"].get<std::string>() + ")");
    std::shared_ptr<Tokenizer> tok;
    try {
      tok = Tokenizer::load(c["dir"].get<std::string>());
    } catch (const std::exception& e) {
      ADD_FAILURE() << "load failed: " << e.what();
      continue;
    }
    Tally ids{"encode"}, text{"decode"}, raw{"encode without parse_special"}, special{"encode_with_special_tokens"},
        skip{"decode with skip_special"}, decode{"decode of random ids"};
    const auto& indices = c["lines"];
    for (size_t k = 0; k < indices.size(); ++k) {
      const std::string& line = lines[indices[k].get<size_t>()];
      auto want = c["ids"][k].get<std::vector<int32_t>>();
      ids.check(tok->encode(line), want, line);
      text.check(tok->decode(want), c["text"][k].get<std::string>(), line);
    }
    const auto& sub = c["sub"];
    for (size_t k = 0; k < sub.size(); ++k) {
      const std::string& line = lines[sub[k].get<size_t>()];
      raw.check(tok->encode(line, /*parse_special=*/false), c["ids_raw"][k].get<std::vector<int32_t>>(), line);
      special.check(tok->encode_with_special_tokens(line), c["ids_special"][k].get<std::vector<int32_t>>(), line);
      skip.check(tok->decode(tok->encode(line), /*skip_special=*/true), c["text_skip"][k].get<std::string>(), line);
    }
    if (c.contains("decode_ids")) {
      for (size_t k = 0; k < c["decode_ids"].size(); ++k) {
        auto id_list = c["decode_ids"][k].get<std::vector<int32_t>>();
        decode.check(tok->decode(id_list), c["decode_text"][k].get<std::string>(), show(id_list));
      }
    }
    for (const Tally* t : {&ids, &text, &raw, &special, &skip, &decode})
      EXPECT_EQ(t->failed, 0) << name << ": " << t->what << " differs on " << t->failed << " of " << t->checked;
    EXPECT_GT(ids.checked, 500) << name;
    std::printf("%-24s %5d lines, %5d without parse_special / with special tokens / skip_special, %3d random decodes\n",
                name.c_str(), ids.checked, raw.checked, decode.checked);
    // The lines reach what each style is about.
    const json& info = c["info"];
    if (info.contains("differs_from_merges"))  // Llama 3's ignore_merges changes some ids
      EXPECT_GT(info["differs_from_merges"].get<int>(), 20) << name;
    if (name.rfind("llama2-unk", 0) == 0) EXPECT_GT(info["unk"].get<int>(), 20) << name;
    else if (c.contains("decode_ids")) EXPECT_GT(info["byte_fallback"].get<int>(), 20) << name;  // SentencePiece-style
    if (info["added"].contains("[INST]"))
      for (const char* t : {"[INST]", "[/INST]", "<tool>", "hello", "world", " the", "<mask>", "<sep>"})
        EXPECT_GT(info["added"][t].get<int>(), 20) << name << ": added token '" << t << "' never matched";
  }
  std::set<std::string> synthetic = {"llama2", "llama2-added", "llama2-unk", "llama2-unk-nofuse", "metaspace-first",
                                     "metaspace-always-split", "metaspace-never-split", "metaspace-first-split",
                                     "gemma-split", "gemma-none", "split-removed", "split-isolated",
                                     "split-merged_with_previous", "split-merged_with_next", "split-contiguous",
                                     "split-digits", "llama3", "llama3-merges", "bytelevel-added", "bytelevel-prefix",
                                     "bytelevel-split-prefix", "toyworld"};
  for (const auto& n : synthetic) EXPECT_TRUE(names.count(n)) << "no case " << n;
  if (!test::shared_dir().empty())
    for (const char* n : {"qwen3", "mistral-7b-v0.1", "qwen2.5", "gpt2"}) EXPECT_TRUE(names.count(n)) << "no case " << n;
}

}  // namespace
}  // namespace emlab
