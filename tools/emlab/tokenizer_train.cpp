// emlab tokenizer train: learn a byte-level BPE tokenizer from text files, save HF files.
#include <iostream>

#include "command.h"
#include "emlab/bpe_trainer.h"
#include "emlab/progress.h"

namespace {

struct Options {
  std::vector<std::string> inputs;  // corpus files
  std::string out;                  // output folder
  emlab::BpeTrainOptions train;
};

EMLAB_COMMAND("tokenizer train", "Train a byte-level BPE tokenizer and save tokenizer.json + tokenizer_config.json", [](CLI::App& app) {
  auto o = std::make_shared<Options>();
  app.add_option("--input", o->inputs, "corpus text files")->required()->expected(1, -1);
  app.add_option("--out", o->out, "output folder")->required();
  app.add_option("--vocab-size", o->train.vocab_size, "target vocabulary size (special + 256 bytes + merges)")->capture_default_str();
  app.add_option("--min-frequency", o->train.min_frequency, "do not merge pairs seen fewer times")->capture_default_str();
  app.add_option("--special", o->train.special_tokens, "special tokens (default <|endoftext|> <|im_start|> <|im_end|>)")->expected(1, -1);
  app.add_option("--pre-tokenizer", o->train.pre_tokenizer, "gpt2, qwen2, llama3 or a PCRE2 regex")->capture_default_str();
  app.add_option("--normalizer", o->train.normalizer, "none or nfc")->capture_default_str();
  app.add_option("--chat-template", o->train.chat_template, "chat template for tokenizer_config.json: chatml or '' (none)")->capture_default_str();
  app.add_flag("--vocab-files", o->train.write_vocab_files, "also write vocab.json + merges.txt");
  return [o]() {
    emlab::BpeTrainer trainer(o->train);
    {
      emlab::Progress reading("reading corpus", static_cast<int64_t>(o->inputs.size()), "file");
      for (const auto& path : o->inputs) {
        trainer.add_file(path);
        reading.advance(1);
      }
    }
    std::cerr << "corpus: " << trainer.total_pieces() << " pieces, " << trainer.distinct_pieces() << " distinct\n";
    trainer.train();
    trainer.save(o->out);
    std::cout << "saved " << o->out << " (vocab " << trainer.vocab().size() << ", merges " << trainer.merges().size() << ")\n";
    return 0;
  };
});

}  // namespace
