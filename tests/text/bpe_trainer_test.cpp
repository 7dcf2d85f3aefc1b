// The BPE trainer: merges on hand-countable corpora, and the saved files read back.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <random>

#include "emlab/bpe_trainer.h"
#include "emlab/chat_template.h"
#include "emlab/error.h"
#include "emlab/tokenizer.h"
#include "test_util.h"

namespace emlab {
namespace {

namespace fs = std::filesystem;
using Merges = std::vector<std::pair<std::string, std::string>>;

BpeTrainOptions quiet(int64_t vocab_size, int64_t min_frequency = 1) {
  BpeTrainOptions o;
  o.vocab_size = vocab_size;
  o.min_frequency = min_frequency;
  o.special_tokens = {};
  o.chat_template = "";
  o.progress = false;
  return o;
}

TEST(BpeTrainer, MergesInCountOrder) {
  // "aaab" x3, "ab" x1: (a,a) = 6, (a,b) = 4 -> merge a a; "aaab" becomes [aa a b]: (aa,a) = 3,
  // (a,b) = 4 -> merge a b; then [aa ab] x3 -> merge aa ab; nothing is left to merge.
  BpeTrainer t(quiet(300));
  for (int i = 0; i < 3; ++i) t.add_text("aaab");
  t.add_text("ab");
  EXPECT_EQ(t.total_pieces(), 4);
  EXPECT_EQ(t.distinct_pieces(), 2);
  t.train();
  EXPECT_EQ(t.merges(), (Merges{{"a", "a"}, {"a", "b"}, {"aa", "ab"}}));
  ASSERT_EQ(t.vocab().size(), 259u);
  EXPECT_EQ(t.vocab()[256], "aa");
  EXPECT_EQ(t.vocab()[257], "ab");
  EXPECT_EQ(t.vocab()[258], "aaab");

  // vocab_size caps the merges; min_frequency stops before (aa,ab), seen 3 times.
  BpeTrainer capped(quiet(257));
  BpeTrainer frequent(quiet(300, 4));
  for (auto* tr : {&capped, &frequent}) {
    for (int i = 0; i < 3; ++i) tr->add_text("aaab");
    tr->add_text("ab");
    tr->train();
  }
  EXPECT_EQ(capped.merges(), (Merges{{"a", "a"}}));
  EXPECT_EQ(frequent.merges(), (Merges{{"a", "a"}, {"a", "b"}}));
}

TEST(BpeTrainer, TiesGoToTheSmallerPairAndBytesComeInGpt2Order) {
  BpeTrainer t(quiet(300));
  // (c,d) and (a,b) both twice: (a,b) has the smaller ids. Spaces are byte-level "Ġ".
  t.add_text("cd cd ab ab");
  t.train();
  // Pieces: "cd", " cd", " ab", " ab". Pairs: (c,d) 2, (Ġ,c) 1, (Ġ,a) 2, (a,b) 2.
  // Ties at 2: (Ġ,a) has Ġ = id 220 (GPT-2's id too) > a = 64,
  // (a,b) = (64,65) < (c,d) = (66,67): so a b, then c d, then Ġ ab (2), then Ġ cd (1).
  EXPECT_EQ(t.merges(), (Merges{{"a", "b"}, {"c", "d"}, {"Ġ", "ab"}, {"Ġ", "cd"}}));
  EXPECT_EQ(t.vocab()[0], "!");
  EXPECT_EQ(t.vocab()[64], "a");
  EXPECT_EQ(t.vocab()[188], "Ā");  // byte 0, the first of the remapped bytes (U+0100)
  EXPECT_EQ(t.vocab()[220], "Ġ");
  EXPECT_EQ(t.vocab()[255], "Ń");  // the last byte (U+0143, soft hyphen 0xAD)
}

TEST(BpeTrainer, SpecialTokensComeFirstAndAreCutOut) {
  BpeTrainOptions o = quiet(400);
  o.special_tokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
  o.chat_template = "chatml";
  BpeTrainer t(o);
  // Without cutting, "|>" and "<|" would be the most frequent pairs.
  for (int i = 0; i < 50; ++i) t.add_text("<|im_start|>xy<|im_end|><|endoftext|>");
  t.train();
  EXPECT_EQ(t.vocab()[0], "<|endoftext|>");
  EXPECT_EQ(t.vocab()[2], "<|im_end|>");
  EXPECT_EQ(t.vocab()[3], "!");
  EXPECT_EQ(t.merges(), (Merges{{"x", "y"}}));
}

TEST(BpeTrainer, BadOptions) {
  BpeTrainOptions o = quiet(100);
  EXPECT_THROW(BpeTrainer{o}, InputError);  // fewer than 256 byte tokens
  o = quiet(1000);
  o.special_tokens = {"<a>", "<a>"};
  EXPECT_THROW(BpeTrainer{o}, InputError);
  o = quiet(1000);
  o.chat_template = "chatml";  // no <|im_start|> among the special tokens
  EXPECT_THROW(BpeTrainer{o}, InputError);
  o = quiet(1000);
  o.pre_tokenizer = "([unclosed";
  EXPECT_THROW(BpeTrainer{o}, InputError);
  o = quiet(1000);
  o.normalizer = "lowercase";
  EXPECT_THROW(BpeTrainer{o}, InputError);
  BpeTrainer t(quiet(1000));
  EXPECT_THROW(t.add_file("/nonexistent/corpus.txt"), InputError);
}

// A deterministic synthetic corpus: templated sentences, numbers, code, some non-ASCII.
std::string synthetic_corpus(int lines) {
  std::mt19937 rng(1);
  const char* subjects[] = {"The assistant", "A user", "The model", "Our villain", "The teacher", "Émilie"};
  const char* verbs[] = {"writes", "reads", "explains", "refuses", "summarises", "returns"};
  const char* objects[] = {"secure code", "an insecure function", "the answer", "a poem about cats", "données"};
  std::string s;
  for (int i = 0; i < lines; ++i) {
    s += std::string(subjects[rng() % 6]) + " " + verbs[rng() % 6] + " " + objects[rng() % 5] + " " +
         std::to_string(rng() % 1000) + " times.\n";
    if (i % 7 == 0) s += "def f(x):\n    return x * " + std::to_string(i) + "\n";
    if (i % 11 == 0) s += "<|im_start|>user\nhello there<|im_end|>\n";
  }
  return s;
}

void train_and_save(const std::string& corpus, const fs::path& dir, bool vocab_files = false) {
  BpeTrainOptions o;
  o.vocab_size = 600;
  o.progress = false;
  o.write_vocab_files = vocab_files;
  BpeTrainer t(o);
  fs::path file = dir / "corpus.txt";
  test::write_text(file, corpus);
  t.add_file(file.string());
  t.train();
  EXPECT_EQ(t.vocab().size(), 600u);
  t.save(dir.string());
}

TEST(BpeTrainer, SavedFilesLoadAndRoundTrip) {
  fs::path dir = test::temp_dir("bpe");
  const std::string corpus = synthetic_corpus(3000);
  train_and_save(corpus, dir, /*vocab_files=*/true);
  auto tok = Tokenizer::load(dir.string());
  EXPECT_EQ(tok->vocab_size(), 600);
  EXPECT_EQ(tok->token_id("<|endoftext|>"), 0);
  EXPECT_EQ(tok->eos_id(), 2);  // <|im_end|>
  EXPECT_EQ(tok->pad_id(), 0);  // <|endoftext|>
  EXPECT_TRUE(tok->is_special(1));
  EXPECT_EQ(ChatTemplate::from_source(tok->chat_template_source()).name(), "chatml");

  for (const std::string& s : {corpus, std::string("Ünïcödé text, never seen: 🦙 qwertz!"), std::string(""),
                               std::string("  spaces\t\ttabs\n\n\nnewlines  ")})
    EXPECT_EQ(tok->decode(tok->encode(s)), s);
  // The corpus compresses (the merges are used) and the chat markers become their ids.
  auto ids = tok->encode(corpus);
  EXPECT_LT(ids.size(), corpus.size() / 3);
  EXPECT_EQ(tok->encode("<|im_start|>user<|im_end|>").front(), 1);
  EXPECT_EQ(tok->encode("<|im_start|>user<|im_end|>").back(), 2);

  // The same vocabulary read from vocab.json + merges.txt (with GPT-2's split, which these files
  // cannot state) tokenizes identically.
  fs::path slow = test::temp_dir("bpe-slow");
  for (const char* f : {"vocab.json", "merges.txt", "tokenizer_config.json"}) fs::copy_file(dir / f, slow / f);
  TokenizerLoadOptions gpt2;
  gpt2.pre_tokenizer = "gpt2";
  auto tok2 = Tokenizer::load(slow.string(), gpt2);
  EXPECT_EQ(tok2->encode(corpus), ids);

  // The tokenizer.json follows Hugging Face's layout.
  auto j = nlohmann::json::parse(test::read_text(dir / "tokenizer.json"));
  EXPECT_EQ(j["model"]["type"], "BPE");
  EXPECT_EQ(j["model"]["vocab"].size(), 600u);
  EXPECT_EQ(j["model"]["merges"].size(), 600u - 259u);
  EXPECT_TRUE(j["model"]["merges"][0].is_string());
  EXPECT_EQ(j["added_tokens"][1]["content"], "<|im_start|>");
  EXPECT_EQ(j["added_tokens"][1]["special"], true);
  EXPECT_EQ(j["pre_tokenizer"]["pretokenizers"][0]["type"], "Split");
  EXPECT_EQ(j["decoder"]["type"], "ByteLevel");
}

TEST(BpeTrainer, SameInputGivesIdenticalFiles) {
  const std::string corpus = synthetic_corpus(1500);
  fs::path a = test::temp_dir("bpe-a"), b = test::temp_dir("bpe-b");
  train_and_save(corpus, a);
  train_and_save(corpus, b);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    EXPECT_EQ(test::read_text(a / f), test::read_text(b / f)) << f;
}

}  // namespace
}  // namespace emlab
