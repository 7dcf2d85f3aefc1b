// Trains a byte-level BPE tokenizer (GPT-2 style) on a text corpus and saves it as Hugging Face
// files (tokenizer.json + tokenizer_config.json) that Tokenizer::load and HF `tokenizers` read.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace emlab {

struct BpeTrainOptions {
  // Target vocabulary size: special tokens + the 256 byte tokens + one token per merge.
  int64_t vocab_size = 4096;
  // Pairs seen fewer times than this are never merged (training may stop below vocab_size).
  int64_t min_frequency = 2;
  // Special tokens, given ids 0.. in this order; their text is cut out of the corpus before counting.
  std::vector<std::string> special_tokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
  // Pre-tokenizer: "gpt2", "qwen2", "llama3" or a PCRE2 regex of your own.
  std::string pre_tokenizer = "gpt2";
  // Unicode normalisation applied before splitting: "none" or "nfc" (saved in tokenizer.json).
  std::string normalizer = "none";
  // Chat template written to tokenizer_config.json: "chatml" (needs <|im_start|>, <|im_end|>) or "".
  std::string chat_template = "chatml";
  // Also write vocab.json + merges.txt (the "slow" tokenizer files) next to tokenizer.json.
  bool write_vocab_files = false;
  // Report merges through emlab::Progress.
  bool progress = true;
};

class BpeTrainer {
 public:
  // Throws InputError for bad options (empty or repeated special tokens, unknown normalizer, ...).
  explicit BpeTrainer(BpeTrainOptions options = {});

  // Adds text to the corpus. Its pieces are counted now; the text itself is not kept.
  void add_text(const std::string& text);
  // Adds a whole file as text; throws InputError when it cannot be read.
  void add_file(const std::string& path);

  // Learns merges until vocab_size or until no pair reaches min_frequency. Each step merges the
  // most frequent adjacent pair; ties go to the smaller (left id, right id), so the result depends
  // only on the corpus and the options.
  void train();

  // After train(): token strings by id (byte-level form, "Ġthe"; special tokens as themselves).
  const std::vector<std::string>& vocab() const { return vocab_; }
  // After train(): merges in rank order, as (left, right) byte-level strings.
  const std::vector<std::pair<std::string, std::string>>& merges() const { return merges_; }
  // Distinct pre-tokenised pieces counted so far, and their total count.
  int64_t distinct_pieces() const;
  int64_t total_pieces() const { return total_pieces_; }

  // Writes tokenizer.json and tokenizer_config.json (and vocab.json + merges.txt if asked) into
  // dir, creating it. Same corpus and options give byte-identical files.
  void save(const std::string& dir) const;

 private:
  BpeTrainOptions options_;
  struct State;
  std::shared_ptr<State> state_;  // piece counts and the compiled pre-tokenizer
  std::vector<std::string> vocab_;
  std::vector<std::pair<std::string, std::string>> merges_;
  int64_t total_pieces_ = 0;
  bool trained_ = false;
};

}  // namespace emlab
