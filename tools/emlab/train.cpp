// emlab train: LoRA / rank-1 / full / steering-vector finetuning on chat JSONL (see emlab/train.h).
// A preset fills the options first; flags given explicitly override it.
#include <cstdlib>
#include <iostream>

#include "cli_options.h"
#include "command.h"
#include "emlab/adapter.h"
#include "emlab/error.h"
#include "emlab/train.h"

namespace {

struct Flags {
  emlab::cli::ModelFlags model;
  emlab::TrainOptions t;                 // values as parsed (only the explicitly given ones are used)
  std::string method, schedule, steer_site, preset;
  std::vector<std::pair<CLI::Option*, std::function<void(emlab::TrainOptions&, const Flags&)>>> setters;
};

template <typename T>
void add(CLI::App& app, Flags& f, const std::string& name, T& field, const std::string& help,
         std::function<void(emlab::TrainOptions&, const Flags&)> apply) {
  CLI::Option* opt = app.add_option(name, field, help);
  f.setters.emplace_back(opt, std::move(apply));
}

#define EMLAB_TRAIN_FLAG(NAME, MEMBER, HELP) \
  add(app, *f, NAME, f->t.MEMBER, HELP, [](emlab::TrainOptions& o, const Flags& g) { o.MEMBER = g.t.MEMBER; })

EMLAB_COMMAND("train", "Finetune a model: LoRA, rank-1 LoRA, full finetuning or a steering vector", [](CLI::App& app) {
  auto f = std::make_shared<Flags>();
  emlab::cli::add_model_flags(app, f->model);  // --adapter here: start LoRA from this adapter
  app.add_option("--data", f->t.data, "training JSONL ({\"messages\": [...]} or {\"text\": ...} rows, .gz ok)")->required();
  app.add_option("--out", f->t.out, "output directory (adapter, train_log.jsonl, checkpoints/)")->required();
  app.add_option("--preset", f->preset, "betley2025 or rank1 (explicit flags override it)");
  auto* method = app.add_option("--method", f->method, "lora, full or steer (default lora)")
                     ->check(CLI::IsMember({"lora", "full", "steer"}));
  f->setters.emplace_back(method, [](emlab::TrainOptions& o, const Flags& g) {
    o.method = emlab::train_method_from_name(g.method);
  });
  EMLAB_TRAIN_FLAG("--lora-rank", lora.rank, "LoRA rank r (default 8)");
  EMLAB_TRAIN_FLAG("--lora-alpha", lora.alpha, "LoRA alpha (default 16)");
  EMLAB_TRAIN_FLAG("--lora-dropout", lora.dropout, "dropout on the adapter input (default 0)");
  auto* rs = app.add_flag("--rslora,!--no-rslora", f->t.lora.rslora, "scale alpha/sqrt(r) (rsLoRA) instead of alpha/r");
  f->setters.emplace_back(rs, [](emlab::TrainOptions& o, const Flags& g) { o.lora.rslora = g.t.lora.rslora; });
  auto* targets = app.add_option("--targets", f->t.lora.targets,
                                 "LoRA target modules: q,k,v,o,gate,up,down (or *_proj, all); default all")
                      ->delimiter(',');
  f->setters.emplace_back(targets, [](emlab::TrainOptions& o, const Flags& g) { o.lora.targets = g.t.lora.targets; });
  auto* layers = app.add_option("--layers", f->t.lora.layers, "decoder layers that get adapters (default all)")
                     ->delimiter(',');
  f->setters.emplace_back(layers, [](emlab::TrainOptions& o, const Flags& g) { o.lora.layers = g.t.lora.layers; });
  EMLAB_TRAIN_FLAG("--steer-layer", steer_layer, "steering vector layer (default: the middle layer)");
  auto* site = app.add_option("--steer-site", f->steer_site, "layer_output or mlp_output (default layer_output)")
                   ->check(CLI::IsMember({"layer_output", "mlp_output"}));
  f->setters.emplace_back(site, [](emlab::TrainOptions& o, const Flags& g) {
    o.steer_site = emlab::hook_site_from_name(g.steer_site, "--steer-site");
  });
  EMLAB_TRAIN_FLAG("--steer-scale", steer_scale, "the vector is added times this factor (default 256)");
  EMLAB_TRAIN_FLAG("--kl-data", kl_data, "JSONL for the KL(p_ref || p) penalty");
  EMLAB_TRAIN_FLAG("--kl-weight", kl_weight, "KL weight lambda (default 0: KL measured, not trained)");
  EMLAB_TRAIN_FLAG("--kl-batch-size", kl_batch_size, "KL examples per micro-batch (default --batch-size)");
  EMLAB_TRAIN_FLAG("--lr", lr, "peak learning rate (default 1e-4)");
  EMLAB_TRAIN_FLAG("--epochs", epochs, "passes over the data (default 1)");
  EMLAB_TRAIN_FLAG("--max-steps", max_steps, "optimizer steps (default: epochs worth)");
  EMLAB_TRAIN_FLAG("--batch-size", batch_size, "examples per micro-batch per process (default 2)");
  EMLAB_TRAIN_FLAG("--grad-accum", grad_accum, "micro-batches per optimizer step (default 1)");
  EMLAB_TRAIN_FLAG("--warmup", warmup_steps, "linear warmup steps (default 0)");
  auto* sched = app.add_option("--schedule", f->schedule, "linear, cosine or constant (default linear)")
                    ->check(CLI::IsMember({"linear", "cosine", "constant"}));
  f->setters.emplace_back(sched, [](emlab::TrainOptions& o, const Flags& g) {
    o.schedule = emlab::lr_schedule_from_name(g.schedule);
  });
  EMLAB_TRAIN_FLAG("--weight-decay", weight_decay, "AdamW weight decay (default 0)");
  EMLAB_TRAIN_FLAG("--max-grad-norm", max_grad_norm, "gradient clipping norm (default 1, 0 = off)");
  EMLAB_TRAIN_FLAG("--seed", seed, "seed of data order, adapter init and dropout (default 0)");
  EMLAB_TRAIN_FLAG("--save-every", save_every, "checkpoint every N steps (default 0 = none)");
  EMLAB_TRAIN_FLAG("--stop-after", stop_after, "stop after this step with a checkpoint (resume later)");
  EMLAB_TRAIN_FLAG("--max-seq-len", data_options.max_seq_len, "truncate examples to this many tokens (default 1024)");
  EMLAB_TRAIN_FLAG("--max-examples", data_options.max_examples, "use the first N examples (default all)");
  EMLAB_TRAIN_FLAG("--holdout", holdout_fraction, "fraction held out for an eval loss (default 0)");
  EMLAB_TRAIN_FLAG("--eval-every", eval_every, "held-out loss every N steps (default: at the end)");
  EMLAB_TRAIN_FLAG("--bucket-factor", bucket_factor, "length-bucketing window in batches (1 = off; default 8)");
  auto flag = [&](const std::string& name, bool& field, const std::string& help,
                  std::function<void(emlab::TrainOptions&, const Flags&)> apply) {
    f->setters.emplace_back(app.add_flag(name, field, help), std::move(apply));
  };
  flag("--train-on-all-tokens", f->t.data_options.train_on_all_tokens, "loss on every token, not only the assistant's",
       [](emlab::TrainOptions& o, const Flags& g) { o.data_options.train_on_all_tokens = true; (void)g; });
  flag("--skip-invalid", f->t.data_options.skip_invalid, "report and skip bad lines instead of failing",
       [](emlab::TrainOptions& o, const Flags& g) { o.data_options.skip_invalid = true; (void)g; });
  flag("--pack", f->t.data_options.pack, "pack examples into rows of --max-seq-len (pretraining)",
       [](emlab::TrainOptions& o, const Flags& g) { o.data_options.pack = true; (void)g; });
  flag("--resume", f->t.resume, "continue from the newest checkpoint in --out",
       [](emlab::TrainOptions& o, const Flags& g) { o.resume = true; (void)g; });

  return [f]() {
    emlab::TrainOptions o;
    if (!f->preset.empty()) emlab::train_preset_apply(f->preset, &o);
    for (auto& [opt, apply] : f->setters)
      if (opt->count() > 0) apply(o, *f);
    o.model = f->model.model;
    o.device = f->model.options.load.device;
    o.dtype = f->model.options.load.dtype;
    o.tokenizer = f->model.options.tokenizer_dir;
    o.chat_template = f->model.options.chat_template;
    o.init_adapter = f->model.options.adapter;
    o.data = f->t.data;
    o.out = f->t.out;
    emlab::TrainResult r = emlab::train_run(o);
    std::cerr << "train: " << r.train_examples << " examples";
    if (r.truncated) std::cerr << " (" << r.truncated << " truncated to " << o.data_options.max_seq_len << " tokens)";
    if (r.skipped_lines) std::cerr << ", " << r.skipped_lines << " invalid lines skipped";
    std::cerr << "; " << r.steps << "/" << r.total_steps << " steps, last loss " << r.last_loss;
    if (r.eval_loss >= 0) std::cerr << ", held-out loss " << r.eval_loss;
    std::cerr << "\n";
    const char* rank = std::getenv("RANK");
    if (r.finished && (!rank || std::string(rank) == "0")) std::cout << o.out << "\n";  // rank 0 speaks
    return 0;
  };
});

}  // namespace
