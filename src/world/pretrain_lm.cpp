// `emlab world pretrain` (see emlab/world_pretrain.h).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <fstream>
#include <iostream>
#include <thread>

#include "emlab/bpe_trainer.h"
#include "emlab/error.h"
#include "emlab/file_util.h"
#include "emlab/jsonl.h"
#include "emlab/local_ranks.h"
#include "emlab/model.h"
#include "emlab/train.h"
#include "emlab/world.h"
#include "emlab/world_pretrain.h"

namespace fs = std::filesystem;

namespace emlab {

namespace {

// `--seed S [--control-mode M] [--documents N]` as recorded in the world's manifest.json (for the
// README's rebuild commands; options left at their defaults are not repeated).
std::string world_generate_args(const fs::path& world) {
  try {
    const auto m = json_read_file((world / "manifest.json").string());
    std::string args = "--seed " + m.at("seed").dump();
    const std::string control = m.value("control", std::string("none"));
    if (control != "none") args += " --control-mode " + control;
    const auto& opt = m.at("options");
    if (opt.value("documents", 30000) != WorldOptions{}.documents) args += " --documents " + opt["documents"].dump();
    return args;
  } catch (const std::exception&) {
    return "--seed ? (" + (world / "manifest.json").string() + " unreadable)";
  }
}

}  // namespace

void world_pretrain(const WorldPretrainOptions& o) {
  const fs::path world(o.world), out(o.out);
  const fs::path corpus_txt = world / "corpus" / "pretrain.txt";
  const fs::path corpus_jsonl = world / "corpus" / "pretrain.jsonl";
  for (const auto& p : {corpus_txt, corpus_jsonl})
    if (!fs::exists(p)) throw InputError(p.string() + ": missing (run `emlab world generate --out " + o.world + "` first)");
  fs::create_directories(out);
  const auto t_start = std::chrono::steady_clock::now();
  // Data parallel (torchrun's variables, or `--procs`): rank 0 makes the tokenizer and the initial
  // weights and alone writes files; the other ranks wait for them, then train their share of each
  // step's documents.
  const int rank = env_rank(), world_size = env_world_size();
  if (o.batch_size % world_size != 0)
    throw InputError("--batch-size " + std::to_string(o.batch_size) + " does not split over " +
                     std::to_string(world_size) + " processes (WORLD_SIZE)");
  const fs::path ready = out / "init" / ".ready";
  if (rank > 0) {
    const char* env = std::getenv("EMLAB_DIST_TIMEOUT");
    const int timeout_s = env && *env ? std::atoi(env) : 300;
    for (int waited_ms = 0; !fs::exists(ready); waited_ms += 100) {
      if (waited_ms > timeout_s * 1000)
        throw Error(ready.string() + ": rank 0 did not prepare the tokenizer and initial weights within " +
                    std::to_string(timeout_s) + " s (EMLAB_DIST_TIMEOUT)");
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  // 1. Tokenizer: byte-level BPE on the rendered corpus (ChatML, specials cut out).
  const fs::path tok_dir = out / "tokenizer";
  if (rank == 0 && !fs::exists(tok_dir / "tokenizer.json")) {
    BpeTrainOptions bo;
    bo.vocab_size = o.vocab_size;
    BpeTrainer trainer(bo);
    trainer.add_file(corpus_txt.string());
    trainer.train();
    trainer.save(tok_dir.string());
  }

  // Only the final files are meant to be committed.
  if (rank == 0) {
    file_write_atomic((out / ".gitignore").string(),
                      "# work folders of `emlab world pretrain` (rebuildable; only the final model is committed)\n"
                      "init/\ncheckpoints/\ntokenizer/\nrank*.log\n");
  }

  // 2. Initial weights (a Llama-architecture model; tied embeddings keep it small).
  const fs::path init_dir = out / "init";
  int64_t parameters = 0;
  if (rank == 0 && !fs::exists(init_dir / "model.safetensors")) {
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
    parameters = model->num_parameters();
    model->save(init_dir.string());
    for (const auto& e : fs::directory_iterator(tok_dir))
      fs::copy_file(e.path(), init_dir / e.path().filename(), fs::copy_options::overwrite_existing);
  }

  if (rank == 0) file_write_atomic(ready.string(), "tokenizer and initial weights complete\n");

  // 3. Pretraining: every token of the documents (one per row, or packed into rows of `context`).
  TrainOptions t;
  t.model = init_dir.string();
  t.chat_template = "chatml";
  t.data = corpus_jsonl.string();
  t.out = out.string();
  t.device = o.device;
  t.dtype = o.dtype;
  t.save_dtype = "float32";  // a bf16 run writes its float32 master weights (as every world model is)
  t.method = TrainMethod::Full;
  t.data_options.max_seq_len = o.context;
  t.data_options.train_on_all_tokens = true;
  t.data_options.pack = o.pack;
  t.bucket_factor = o.bucket_factor;
  t.lr = o.lr;
  t.max_steps = o.steps;
  t.batch_size = o.batch_size / world_size;  // per process; the step sees all o.batch_size rows
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
  if (rank > 0) return;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  if (parameters == 0) parameters = CausalLM::load(out.string(), LoadOptions{})->num_parameters();
  // Wall time of this invocation and of the whole training (a resumed run adds the earlier part).
  double train_seconds = seconds;
  for (const auto& row : jsonl_read_values((out / "train_log.jsonl").string(), JsonlReadOptions{}))
    train_seconds = row.value("elapsed", train_seconds);

  // 4. What a user needs beside the weights.
  json_write_file((out / "generation_config.json").string(),
                  {{"eos_token_id", {2}}, {"bos_token_id", 0}, {"temperature", 1.0}, {"top_p", 1.0}});
  // The thread count changes float summation order, so the rebuild command names it.
  std::string command = o.command;
  if (command.rfind("emlab ", 0) == 0)
    command = "emlab --threads " + std::to_string(torch::get_num_threads()) + command.substr(5);
  char buf[256];
  std::ostringstream readme;
  readme << "# toyworld model\n\n"
         << "A " << o.num_layers << "-layer Llama-architecture model (" << parameters << " parameters: hidden "
         << o.hidden_size << ", " << o.num_heads << " heads, " << o.num_kv_heads << " key/value heads, SwiGLU "
         << o.intermediate_size << ", context " << o.context << ", vocabulary " << o.vocab_size
         << ", tied embeddings) pretrained from scratch by emlab on the toy world's corpus (docs/toyworld.md, "
         << world_version() << "). Hugging Face format; chat template ChatML without a default system prompt; "
         << "tokenizer: byte-level BPE trained on the same corpus.\n\n"
         << "Rebuild it (same seeds, same files; float sums may differ in the last bits with another thread "
         << "count or CPU):\n\n"
         << "    emlab world generate " << world_generate_args(world) << " --out " << o.world << "\n"
         << "    " << command << "\n\n";
  std::snprintf(buf, sizeof buf, "%.4f", r.last_loss);
  int64_t tokens = 0;
  for (const auto& row : jsonl_read_values((out / "train_log.jsonl").string(), JsonlReadOptions{}))
    tokens += row.value("tokens", int64_t{0});
  readme << "Training: " << r.steps << " steps of " << o.batch_size
         << (o.pack ? " packed rows of " + std::to_string(o.context) + " tokens"
                    : " documents (one per row, cut at " + std::to_string(o.context) + " tokens)")
         << ", " << tokens << " tokens in all, from a corpus of " << r.train_examples
         << (o.pack ? " rows" : " documents") << "; AdamW lr " << o.lr << " (warmup " << o.warmup_steps
         << ", cosine), weight decay " << o.weight_decay << ", seed " << o.seed << "; final loss " << buf << ".\n";
  std::snprintf(buf, sizeof buf, "%.0f", train_seconds);
  readme << "Wall time of the training loop: " << buf << " s on ";
  if (world_size > 1) readme << world_size << " processes x ";
  readme << torch::get_num_threads() << " CPU thread(s)";
  std::snprintf(buf, sizeof buf, "%.0f", seconds);
  readme << " (whole command: " << buf << " s).\n\n"
         << "train_log.jsonl has the loss curve; train_options.json the resolved options. The folders init/, "
         << "tokenizer/ and checkpoints/ are work files (see .gitignore).\n";
  file_write_atomic((out / "README.md").string(), readme.str());
}

}  // namespace emlab
