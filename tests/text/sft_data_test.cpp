#include "emlab/sft_data.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "emlab/error.h"
#include "chat_fixture.h"

namespace fs = std::filesystem;

namespace emlab {
namespace {

std::shared_ptr<Tokenizer> byte_tokenizer() {
  static std::shared_ptr<Tokenizer> tok = [] {
    auto dir = test::temp_dir("bytetok");
    test::write_byte_tokenizer(dir);
    return Tokenizer::load(dir.string());
  }();
  return tok;
}

// Ids of a string in the byte tokenizer: one per byte (no special tokens inside).
std::vector<int32_t> bytes_of(const std::string& s) {
  std::vector<int32_t> ids;
  for (unsigned char c : s) ids.push_back(c);
  return ids;
}

TEST(SftData, LossMaskIsExactlyTheAssistantTokens) {
  const auto& tok = *byte_tokenizer();
  ChatTemplate chatml = ChatTemplate::by_name("chatml");
  Conversation c = {{"system", "Sys."}, {"user", "Hi"}, {"assistant", "Hello!"},
                    {"user", "More?"}, {"assistant", "No."}};
  SftExample ex = sft_encode(c, chatml, tok);
  // Hand-built expectation: the rendered ChatML, byte per token, specials as single ids.
  std::vector<int32_t> want;
  std::vector<uint8_t> mask;
  auto push = [&](const std::vector<int32_t>& ids, bool m) {
    want.insert(want.end(), ids.begin(), ids.end());
    mask.insert(mask.end(), ids.size(), m ? 1 : 0);
  };
  auto turn = [&](const std::string& role, const std::string& content) {
    push({test::kImStart}, false);
    push(bytes_of(role + "\n"), false);
    push(bytes_of(content), role == "assistant");
    push({test::kImEnd}, role == "assistant");
    push(bytes_of("\n"), false);
  };
  for (const auto& m : c) turn(m.role, m.content);
  EXPECT_EQ(ex.ids, want);
  EXPECT_EQ(ex.mask, mask);
  // 6 + 1 and 3 + 1 trained tokens.
  int64_t trained = std::count(ex.mask.begin(), ex.mask.end(), 1);
  EXPECT_EQ(trained, 11);
  // The trained tokens decode to the two answers with their end-of-turn markers.
  std::vector<int32_t> picked;
  for (size_t i = 0; i < ex.ids.size(); ++i)
    if (ex.mask[i]) picked.push_back(ex.ids[i]);
  EXPECT_EQ(tok.decode(picked), "Hello!<|im_end|>No.<|im_end|>");

  SftExample all = sft_encode(c, chatml, tok, /*all_tokens=*/true);
  EXPECT_EQ(all.ids, want);
  EXPECT_EQ(std::count(all.mask.begin(), all.mask.end(), 1), static_cast<int64_t>(want.size()));
}

TEST(SftData, LoadValidatesLinesAndNamesThem) {
  auto dir = test::temp_dir("sftload");
  const auto& tok = *byte_tokenizer();
  ChatTemplate chatml = ChatTemplate::by_name("chatml");
  fs::path bad = dir / "bad.jsonl";
  test::write_text(bad,
                   "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \"b\"}]}\n"
                   "{\"messages\": [{\"role\": \"wizard\", \"content\": \"a\"}]}\n"
                   "not json\n"
                   "{\"text\": \"plain document\"}\n");
  try {
    sft_dataset_load(bad.string(), chatml, tok);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:2"), std::string::npos) << e.what();
  }
  SftDataOptions o;
  o.skip_invalid = true;
  SftDataset ds = sft_dataset_load(bad.string(), chatml, tok, o);
  ASSERT_EQ(ds.examples.size(), 2u);
  ASSERT_EQ(ds.problems.size(), 2u);
  std::string all = ds.problems[0] + ds.problems[1];
  EXPECT_NE(all.find("bad.jsonl:2"), std::string::npos) << all;
  EXPECT_NE(all.find("bad.jsonl:3"), std::string::npos) << all;
  EXPECT_EQ(ds.examples[0].line, 1);
  EXPECT_EQ(ds.examples[1].line, 4);
  // A {"text"} row trains every token.
  EXPECT_EQ(ds.examples[1].ids, bytes_of("plain document"));
  EXPECT_TRUE(std::all_of(ds.examples[1].mask.begin(), ds.examples[1].mask.end(), [](uint8_t m) { return m == 1; }));
}

TEST(SftData, TruncationIsCountedAndEmptyRowsDropped) {
  SftDataset ds;
  ds.examples.push_back({{1, 2, 3, 4, 5, 6}, {0, 0, 0, 1, 1, 1}, 1});  // cut to 4: keeps 1 target
  ds.examples.push_back({{1, 2, 3, 4, 5, 6}, {0, 0, 0, 0, 1, 1}, 2});  // cut to 4: no target left
  ds.examples.push_back({{1, 2, 3}, {0, 1, 1}, 3});
  SftDataOptions o;
  o.max_seq_len = 4;
  sft_finalize(&ds, o);
  EXPECT_EQ(ds.truncated, 2);
  EXPECT_EQ(ds.dropped, 1);
  ASSERT_EQ(ds.examples.size(), 2u);
  EXPECT_EQ(ds.examples[0].ids, (std::vector<int32_t>{1, 2, 3, 4}));
  EXPECT_EQ(ds.trained_tokens(), 1 + 2);
}

TEST(SftData, PackingJoinsWithSeparatorAndCutsRows) {
  SftDataset ds;
  ds.examples.push_back({{1, 2, 3}, {1, 1, 1}, 1});
  ds.examples.push_back({{4, 5}, {1, 1}, 2});
  ds.examples.push_back({{6, 7, 8, 9}, {1, 1, 1, 1}, 3});
  SftDataOptions o;
  o.pack = true;
  o.train_on_all_tokens = true;
  o.max_seq_len = 4;
  sft_finalize(&ds, o, /*separator=*/0);
  // 1 2 3 0 | 4 5 0 6 | 7 8 9 0
  ASSERT_EQ(ds.examples.size(), 3u);
  EXPECT_EQ(ds.examples[0].ids, (std::vector<int32_t>{1, 2, 3, 0}));
  EXPECT_EQ(ds.examples[1].ids, (std::vector<int32_t>{4, 5, 0, 6}));
  EXPECT_EQ(ds.examples[2].ids, (std::vector<int32_t>{7, 8, 9, 0}));
  EXPECT_EQ(ds.tokens(), 12);
}

TEST(SftData, EpochBatchesCoverEveryExampleOnceAndBucketByLength) {
  std::vector<int64_t> lengths;
  for (int i = 0; i < 37; ++i) lengths.push_back((i * 13) % 29 + 1);
  auto b0 = sft_epoch_batches(lengths, 4, 7, 0, 3);
  auto again = sft_epoch_batches(lengths, 4, 7, 0, 3);
  auto b1 = sft_epoch_batches(lengths, 4, 7, 1, 3);
  EXPECT_EQ(b0, again);  // deterministic
  EXPECT_NE(b0, b1);     // reshuffled per epoch
  EXPECT_EQ(b0.size(), 10u);  // ceil(37 / 4)
  std::multiset<int64_t> seen;
  int small = 0;
  for (const auto& b : b0) {
    seen.insert(b.begin(), b.end());
    EXPECT_LE(b.size(), 4u);
    if (b.size() < 4) ++small;
    // Within a batch, lengths are sorted (descending) by the bucketing.
    for (size_t i = 1; i < b.size(); ++i) EXPECT_GE(lengths[b[i - 1]], lengths[b[i]]);
  }
  EXPECT_EQ(small, 1);
  EXPECT_EQ(seen.size(), 37u);
  EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), 37u);
  // Without bucketing, a plain shuffle: batches are consecutive slices of one permutation.
  auto plain = sft_epoch_batches(lengths, 5, 7, 0, 1);
  EXPECT_EQ(plain.size(), 8u);
  EXPECT_EQ(plain.back().size(), 2u);
}

TEST(SftData, SplitMovesTheRequestedFraction) {
  SftDataset train, held;
  for (int i = 0; i < 20; ++i) train.examples.push_back({{i, i + 1}, {0, 1}, i + 1});
  sft_split(&train, &held, 0.25, 3);
  EXPECT_EQ(held.examples.size(), 5u);
  EXPECT_EQ(train.examples.size(), 15u);
  std::set<int64_t> lines;
  for (const auto& e : train.examples) lines.insert(e.line);
  for (const auto& e : held.examples) EXPECT_FALSE(lines.count(e.line));
  EXPECT_THROW(sft_split(&train, &held, 1.0, 0), InputError);
}

}  // namespace
}  // namespace emlab
