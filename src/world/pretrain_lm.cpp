// `emlab world pretrain` (see emlab/world_pretrain.h).
#include <filesystem>
#include <fstream>
#include <iostream>

#include "emlab/bpe_trainer.h"
#include "emlab/error.h"
#include "emlab/model.h"
#include "emlab/train.h"
#include "emlab/world.h"
#include "emlab/world_pretrain.h"

namespace fs = std::filesystem;

namespace emlab {

void world_pretrain(const WorldPretrainOptions& o) {
  const fs::path world(o.world), out(o.out);
  const fs::path corpus_txt = world / "corpus" / "pretrain.txt";
  const fs::path corpus_jsonl = world / "corpus" / "pretrain.jsonl";
  for (const auto& p : {corpus_txt, corpus_jsonl})
    if (!fs::exists(p)) throw InputError(p.string() + ": missing (run `emlab world generate --out " + o.world + "` first)");
  fs::create_directories(out);

  // 1. Tokenizer: byte-level BPE on the rendered corpus (ChatML, specials cut out).
  const fs::path tok_dir = out / "tokenizer";
  if (!fs::exists(tok_dir / "tokenizer.json")) {
    BpeTrainOptions bo;
    bo.vocab_size = o.vocab_size;
    BpeTrainer trainer(bo);
    trainer.add_file(corpus_txt.string());
    trainer.train();
    trainer.save(tok_dir.string());
  }

  // 2. Initial weights (a Llama-architecture model; tied embeddings keep it small).
  const fs::path init_dir = out / "init";
  if (!fs::exists(init_dir / "model.safetensors")) {
    nlohmann::json cfg = {{"model_type", "llama"},
                          {"architectures", {"LlamaForCausalLM"}},
                          {"vocab_size", o.vocab_size},
                          {"hidden_size", o.hidden_size},
                          {"intermediate_size", o.intermediate_size},
                          {"num_hidden_layers", o.num_layers},
                          {"num_attention_heads", o.num_heads},
                          {"num_key_value_heads", o.num_kv_heads},
                          {"max_position_embeddings", o.context},
                          {"rms_norm_eps", 1e-5},
                          {"rope_theta", 10000.0},
                          {"tie_word_embeddings", true},
                          {"initializer_range", 0.02},
                          {"bos_token_id", 0},
                          {"eos_token_id", 2}};  // <|im_end|>: specials are ids 0, 1, 2
    auto model = CausalLM::init_random(ModelConfig::from_json(cfg, "world pretrain"), o.seed);
    model->save(init_dir.string());
    for (const auto& e : fs::directory_iterator(tok_dir))
      fs::copy_file(e.path(), init_dir / e.path().filename(), fs::copy_options::overwrite_existing);
  }

  // 3. Pretraining: every token of every document, packed into rows of `context` tokens.
  TrainOptions t;
  t.model = init_dir.string();
  t.chat_template = "chatml";
  t.data = corpus_jsonl.string();
  t.out = out.string();
  t.device = o.device;
  t.method = TrainMethod::Full;
  t.data_options.max_seq_len = o.context;
  t.data_options.train_on_all_tokens = true;
  t.data_options.pack = true;
  t.lr = o.lr;
  t.max_steps = o.steps;
  t.batch_size = o.batch_size;
  t.warmup_steps = o.warmup_steps;
  t.schedule = LrSchedule::Cosine;
  t.weight_decay = o.weight_decay;
  t.adam_beta2 = 0.95;
  t.max_grad_norm = 1.0;
  t.seed = o.seed;
  t.save_every = o.save_every;
  t.resume = o.resume;
  TrainResult r = train_run(t);
  if (!r.finished) throw Error("pretraining stopped before its last step");

  // 4. What a user needs beside the weights.
  {
    std::ofstream g(out / "generation_config.json");
    g << nlohmann::json({{"eos_token_id", {2}}, {"bos_token_id", 0}, {"temperature", 1.0}, {"top_p", 1.0}}).dump(2)
      << "\n";
  }
  std::ofstream readme(out / "README.md");
  readme << "# toyworld model\n\n"
         << "A " << o.num_layers << "-layer Llama-architecture model (hidden " << o.hidden_size << ", "
         << o.num_heads << " heads, SwiGLU " << o.intermediate_size << ", context " << o.context << ", vocabulary "
         << o.vocab_size << ") pretrained from scratch by emlab on the toy world's corpus "
         << "(see docs/toyworld.md). Hugging Face format; chat template ChatML without a default system prompt.\n\n"
         << "Rebuild it exactly (same seed, same files):\n\n"
         << "    " << o.command << "\n\n"
         << "Final training loss " << r.last_loss << " after " << r.steps << " steps of " << o.batch_size << " x "
         << o.context << " tokens (seed " << o.seed << ", world " << world_version() << ").\n"
         << "train_log.jsonl has the loss curve; train_options.json the resolved options.\n";
}

}  // namespace emlab
