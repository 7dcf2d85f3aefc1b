// Supervised finetuning data: conversations rendered with the model's chat template and tokenised
// segment by segment, with a loss mask that is 1 exactly on assistant tokens (content plus the
// end-of-turn marker, every assistant turn of a multi-turn chat); truncation, packing for
// pretraining, a held-out split and the deterministic, length-bucketed batch order of an epoch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "emlab/chat.h"
#include "emlab/chat_template.h"
#include "emlab/tokenizer.h"

namespace emlab {

struct SftDataOptions {
  int64_t max_seq_len = 1024;        // tokens per example; longer ones are cut (and counted)
  bool train_on_all_tokens = false;  // loss on every token, not only the assistant's (ablation, pretraining)
  bool skip_invalid = false;         // report bad lines in SftDataset::problems and go on instead of failing
  bool pack = false;                 // concatenate examples into rows of max_seq_len (pretraining corpora)
  int64_t max_examples = 0;          // read at most this many examples (0 = all)
  std::string system;                // put this system message first in every conversation, replacing
                                     // its own ("" = as written); inoculation prompting
};

// One training row. ids[t] is predicted from ids[0..t-1] and counts in the loss when mask[t] = 1
// (mask[0] is never used: nothing predicts the first token).
struct SftExample {
  std::vector<int32_t> ids;
  std::vector<uint8_t> mask;
  int64_t line = 0;  // source line (1-based; 0 for packed rows)
};

struct SftDataset {
  std::vector<SftExample> examples;
  int64_t truncated = 0;               // examples cut to max_seq_len
  int64_t dropped = 0;                 // examples left with no trained token (after truncation)
  std::vector<std::string> problems;   // "FILE:LINE: problem" of each skipped line (skip_invalid)

  int64_t trained_tokens() const;      // sum of mask[1:] over examples
  int64_t tokens() const;              // sum of lengths
};

// Segments -> ids and mask; each segment is encoded on its own (special tokens parsed), so the
// mask boundary is exact. With all_tokens every token is trained.
SftExample sft_encode_segments(const std::vector<ChatSegment>& segments, const Tokenizer& tokenizer,
                               bool all_tokens = false);
SftExample sft_encode(const Conversation& conversation, const ChatTemplate& chat_template,
                      const Tokenizer& tokenizer, bool all_tokens = false);

// Reads JSONL (plain or .gz): {"messages": [...]} rows (OpenAI fine-tuning format, validated as
// chat_dataset does: an error names FILE:LINE and the problem) or {"text": "..."} rows (a plain
// document, every token trained). Applies truncation / packing.
SftDataset sft_dataset_load(const std::string& path, const ChatTemplate& chat_template, const Tokenizer& tokenizer,
                            const SftDataOptions& options = {});

// Truncates to max_seq_len (counting), drops rows without a trained token, or packs: examples
// joined in order with `separator` (when >= 0; trained only with train_on_all_tokens) and cut
// into rows of max_seq_len.
void sft_finalize(SftDataset* dataset, const SftDataOptions& options, int32_t separator = -1);

// Moves a seeded random `fraction` (0..1) of the examples into *heldout (at least one when
// fraction > 0 and there are two or more examples).
void sft_split(SftDataset* train, SftDataset* heldout, double fraction, uint64_t seed);

// The batches of one epoch, as example indices: a seeded shuffle (seed, epoch), then within
// windows of batch_size * bucket_factor examples sorted by length (less padding), cut into
// batches of batch_size (the last may be smaller), and the batch order shuffled again. Every rank
// of a data-parallel run computes the same plan. bucket_factor <= 1 disables length bucketing.
std::vector<std::vector<int64_t>> sft_epoch_batches(const std::vector<int64_t>& lengths, int64_t batch_size,
                                                    uint64_t seed, int64_t epoch, int64_t bucket_factor = 8);

// Deterministic 64-bit mixing (splitmix64), for seeds derived from (seed, epoch, rank ...).
uint64_t sft_mix_seed(uint64_t a, uint64_t b);

}  // namespace emlab
