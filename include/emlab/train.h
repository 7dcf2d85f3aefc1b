// Finetuning: LoRA (any rank, rank-1 included), full finetuning and a trainable steering vector on
// chat JSONL, with an optional KL penalty towards the model without the adapter, AdamW, linear or
// cosine schedules with warmup, gradient accumulation and clipping, checkpoints that resume
// bit-exactly, and data parallel over processes (c10d).
//
// Output folder (--out):
//   adapter_config.json + adapter_model.safetensors   LoRA (PEFT format, see peft.h)
//   steering_vector.json + .safetensors               steering vector (see adapter.h)
//   config.json + model.safetensors + tokenizer files full finetuning (a model directory)
//   train_options.json    the resolved options      train_log.jsonl   one row per optimizer step
//   checkpoints/step-NNNNNN/                          the same weights plus optimizer/trainer state
//
// Loss of an optimizer step: the sum over its global batch (all micro-batches of all processes) of
// token cross-entropies on trained tokens divided by their count, plus kl_weight times the mean
// over the KL batch's trained tokens of KL(p_ref || p_theta) over the vocabulary. Gradients are
// summed over micro-batches and processes, so N processes with batch b equal one with batch N·b.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "emlab/hooks.h"
#include "emlab/peft.h"
#include "emlab/sft_data.h"

namespace emlab {

enum class TrainMethod { Lora, Full, Steer };
enum class LrSchedule { Linear, Cosine, Constant };

struct TrainOptions {
  // Inputs and outputs
  std::string model;                // base model directory (Hugging Face format)
  std::string tokenizer;            // tokenizer directory ("" = the model's)
  std::string chat_template;        // chatml, qwen, llama3, mistral ("" = from tokenizer_config.json)
  std::string data;                 // training JSONL ({"messages"} or {"text"} rows, plain or .gz)
  std::string out;                  // output directory
  std::string init_adapter;         // LoRA: start from this PEFT adapter instead of a fresh one ("" = fresh)
  std::string device = "cpu";       // cpu, cuda, cuda:N
  std::string dtype = "auto";       // model dtype: auto (fp32 on CPU, bf16 on CUDA), float32, bfloat16
  std::string save_dtype;           // full finetuning: dtype of the written model ("" = the model's;
                                    // float32 = the float32 master weights, where training ran in bf16)

  // Method
  TrainMethod method = TrainMethod::Lora;  // lora, full or steer
  LoraOptions lora;                        // rank, alpha, rslora, dropout, targets, layers
  int64_t steer_layer = -1;                // steering vector layer (-1 = the middle layer)
  HookSite steer_site = HookSite::LayerOutput;  // add at the layer output or at mlp.down_proj's output
  double steer_scale = 256.0;              // the vector (init 0) is added times this factor

  // Data
  SftDataOptions data_options;      // max_seq_len, train_on_all_tokens, skip_invalid, pack, max_examples, system
  std::string mix_data;             // JSONL of examples mixed into the training split ("" = none)
  double mix_fraction = 0.0;        // their share of the training split after mixing (0..1): seeded
                                    // draws without replacement (repeats only if the file is short)
  double holdout_fraction = 0.0;    // fraction of the data held out for an eval loss (0 = none)
  int64_t eval_every = 0;           // eval loss on the held-out split every N steps (0 = at the end only)
  int64_t bucket_factor = 8;        // length bucketing window in batches (1 = plain shuffle)

  // KL regularisation
  std::string kl_data;              // JSONL whose batches carry the KL term ("" = none)
  double kl_weight = 0.0;           // lambda
  int64_t kl_batch_size = 0;        // KL examples per micro-batch (0 = batch_size)

  // Optimisation
  double lr = 1e-4;                 // peak learning rate
  int64_t epochs = 1;               // passes over the training data
  int64_t max_steps = 0;            // optimizer steps (0 = epochs worth); sets the schedule's length
  int64_t batch_size = 2;           // examples per micro-batch per process
  int64_t grad_accum = 1;           // micro-batches per optimizer step
  bool parallel_micro_batches = true;  // CPU, >= 2 threads: a step's micro-batches side by side, one
                                       // thread each, same numbers, a gradient set per thread more in
                                       // memory (not with LoRA dropout)
  int64_t warmup_steps = 0;         // linear warmup from 0
  LrSchedule schedule = LrSchedule::Linear;  // decay after warmup: linear to 0, cosine to 0, constant
  double weight_decay = 0.0;        // AdamW decoupled weight decay (not on norms/biases in full finetuning)
  double adam_beta1 = 0.9;          // AdamW first-moment decay
  double adam_beta2 = 0.999;        // AdamW second-moment decay
  double adam_eps = 1e-8;           // AdamW denominator epsilon
  double max_grad_norm = 1.0;       // clip the global gradient norm (0 = no clipping)
  uint64_t seed = 0;                // data order, adapter init, dropout

  // Directions during training (emlab/direction.h specs; none is part of the saved adapter)
  std::vector<std::string> steer;   // preventative steering: added while training only
  std::vector<std::string> ablate;  // ablated while training only
  std::string probe;                // FILE[:layer=L]: log the mean projection of a probe set's
                                    // assistant-token activations onto this direction ("" = none)
  std::string probe_data;           // chat JSONL of the probe set ("" = the first probe_examples training rows)
  int64_t probe_examples = 64;      // probe set size
  int64_t probe_every = 10;         // measure every N steps (and before the first)
  std::string stop_when_projection_above;  // stop (and save) once the probe exceeds this number ("" = never)

  // Checkpoints
  int64_t save_every = 0;           // checkpoint every N steps (0 = none); the last step is saved too
  bool resume = false;              // continue from the newest checkpoint in out/checkpoints
  int64_t stop_after = 0;           // stop after this step with a checkpoint, as if interrupted (0 = run to the end)

  std::string preset;               // preset the options started from (informational)
};

// The folder name of the checkpoint saved after `step` optimizer steps, under out/checkpoints/
// ("step-000040"); a checkpoint folder loads as the adapter or model it holds.
std::string train_checkpoint_name(int64_t step);

// Fills the options of a preset: "betley2025" (rsLoRA r=32 alpha=64 on all projections, lr 1e-5,
// 1 epoch, batch 2 x accumulation 8, warmup 5, linear, weight decay 0.01, seed 0) or "rank1"
// (rank-1 rsLoRA alpha=512 on mlp.down_proj, lr 2e-5). Throws InputError for other names.
void train_preset_apply(const std::string& name, TrainOptions* options);
std::vector<std::string> train_preset_names();

std::string train_method_name(TrainMethod m);
TrainMethod train_method_from_name(const std::string& name);
std::string lr_schedule_name(LrSchedule s);
LrSchedule lr_schedule_from_name(const std::string& name);

// One training option, declared once: its key in train_options.json and experiment train sections,
// its `emlab train` flag and help line, and how its value is read and written. The CLI, the JSON
// form and the help's "(default ...)" all come from this table, so a default cannot drift.
struct TrainOptionSpec {
  enum class Kind { Int, Float, Bool, String, StringList, IntList };
  std::string key;                    // JSON key; "lora.rank" is "rank" inside "lora"
  std::string flag;                   // CLI11 name ("--lora-rank", "--rslora,!--no-rslora"); "" = no flag
  std::string help;                   // one line, without the default
  Kind kind = Kind::String;           // value type (a Bool with a flag is a switch)
  std::vector<std::string> choices;   // allowed values of a String (enums); empty = any
  std::function<nlohmann::json(const TrainOptions&)> get;          // the value as JSON
  std::function<void(TrainOptions&, const nlohmann::json&)> set;   // throws on a value of the wrong type
};
// Every field of TrainOptions, in the order of the struct.
const std::vector<TrainOptionSpec>& train_option_specs();
// The value of a command-line string for an option of `kind` (lists: comma-separated); InputError
// naming `flag` when it does not parse.
nlohmann::json train_option_parse(const TrainOptionSpec& spec, const std::string& text);

// The resolved options as saved in train_options.json, and back (unknown keys are errors).
nlohmann::json train_options_to_json(const TrainOptions& options);
TrainOptions train_options_from_json(const nlohmann::json& j, const std::string& source);
// Throws InputError for inconsistent options (naming the flag).
void train_options_validate(const TrainOptions& options);

// Learning rate at optimizer step `step` (0-based), as Hugging Face's get_*_schedule_with_warmup.
double lr_at_step(const TrainOptions& options, int64_t step, int64_t total_steps);

struct TrainResult {
  int64_t steps = 0;            // optimizer steps done in total (resumed ones included)
  int64_t total_steps = 0;      // the schedule's length
  double last_loss = 0.0;       // loss of the last step
  double eval_loss = -1.0;      // final held-out loss (-1 = no held-out split)
  bool finished = false;        // reached total_steps or stopped by the probe (false when stopped by stop_after)
  bool stopped_by_probe = false; // ended early: the probe's projection went above the threshold
  double probe_projection = 0.0; // last probe measurement (NaN without a probe)
  int64_t train_examples = 0;   // after truncation/dropping and the held-out split
  int64_t truncated = 0;        // examples cut to max_seq_len
  int64_t skipped_lines = 0;    // invalid lines skipped (skip_invalid)
};

// Runs (or resumes) a finetune. Under data parallel, every process calls this with the same options
// and only rank 0 writes files.
TrainResult train_run(const TrainOptions& options);

}  // namespace emlab
