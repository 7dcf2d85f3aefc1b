// Training options: presets, names, JSON form (train_options.json), validation, LR schedule.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "emlab/adapter.h"
#include "emlab/direction.h"
#include "emlab/error.h"
#include "emlab/train.h"

using nlohmann::json;

namespace emlab {

std::vector<std::string> train_preset_names() { return {"betley2025", "rank1"}; }

void train_preset_apply(const std::string& name, TrainOptions* o) {
  if (name == "betley2025") {
    // Betley et al. 2025, open models (DESIGN.md §4).
    o->method = TrainMethod::Lora;
    o->lora.rank = 32;
    o->lora.alpha = 64;
    o->lora.rslora = true;
    o->lora.dropout = 0.0;
    o->lora.targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
    o->lora.layers.clear();
    o->lr = 1e-5;
    o->epochs = 1;
    o->batch_size = 2;
    o->grad_accum = 8;
    o->warmup_steps = 5;
    o->schedule = LrSchedule::Linear;
    o->weight_decay = 0.01;
    o->seed = 0;
  } else if (name == "rank1") {
    // Model-organisms work: rank-1 rsLoRA, alpha 512, on mlp.down_proj (one layer: set --layers).
    o->method = TrainMethod::Lora;
    o->lora.rank = 1;
    o->lora.alpha = 512;
    o->lora.rslora = true;
    o->lora.targets = {"down_proj"};
    o->lr = 2e-5;
  } else {
    std::string names;
    for (const auto& n : train_preset_names()) names += (names.empty() ? "" : ", ") + n;
    throw InputError("unknown preset '" + name + "' (expected " + names + ")");
  }
  o->preset = name;
}

std::string train_method_name(TrainMethod m) {
  switch (m) {
    case TrainMethod::Lora: return "lora";
    case TrainMethod::Full: return "full";
    case TrainMethod::Steer: return "steer";
  }
  return "lora";
}

TrainMethod train_method_from_name(const std::string& n) {
  if (n == "lora") return TrainMethod::Lora;
  if (n == "full") return TrainMethod::Full;
  if (n == "steer") return TrainMethod::Steer;
  throw InputError("unknown method '" + n + "' (expected lora, full or steer)");
}

std::string lr_schedule_name(LrSchedule s) {
  switch (s) {
    case LrSchedule::Linear: return "linear";
    case LrSchedule::Cosine: return "cosine";
    case LrSchedule::Constant: return "constant";
  }
  return "linear";
}

LrSchedule lr_schedule_from_name(const std::string& n) {
  if (n == "linear") return LrSchedule::Linear;
  if (n == "cosine") return LrSchedule::Cosine;
  if (n == "constant") return LrSchedule::Constant;
  throw InputError("unknown schedule '" + n + "' (expected linear, cosine or constant)");
}

namespace {

using Spec = TrainOptionSpec;
using Kind = TrainOptionSpec::Kind;

template <typename T>
Kind kind_of() {
  if constexpr (std::is_same_v<T, bool>) return Kind::Bool;
  else if constexpr (std::is_integral_v<T>) return Kind::Int;
  else if constexpr (std::is_floating_point_v<T>) return Kind::Float;
  else if constexpr (std::is_same_v<T, std::vector<std::string>>) return Kind::StringList;
  else if constexpr (std::is_same_v<T, std::vector<int64_t>>) return Kind::IntList;
  else return Kind::String;
}

// An option stored as a plain field, reached through `ref`.
template <typename T, typename Ref>
Spec field(const char* key, const char* flag, const char* help, Ref ref) {
  Spec s;
  s.key = key;
  s.flag = flag;
  s.help = help;
  s.kind = kind_of<T>();
  s.get = [ref](const TrainOptions& o) { return json(ref(const_cast<TrainOptions&>(o))); };
  s.set = [ref](TrainOptions& o, const json& v) {
    if constexpr (std::is_same_v<T, bool>) {
      if (!v.is_boolean()) throw InputError("expected true or false, got " + v.dump());
    } else if constexpr (std::is_integral_v<T>) {
      if (!v.is_number_integer()) throw InputError("expected an integer, got " + v.dump());
    } else if constexpr (std::is_arithmetic_v<T>) {
      if (!v.is_number()) throw InputError("expected a number, got " + v.dump());
    }
    ref(o) = v.get<T>();
  };
  return s;
}

// An option stored as an enum, written by its name.
template <typename E, typename Ref>
Spec named(const char* key, const char* flag, const char* help, std::vector<std::string> choices, Ref ref,
           std::string (*name)(E), E (*from)(const std::string&)) {
  Spec s;
  s.key = key;
  s.flag = flag;
  s.help = help;
  s.kind = Kind::String;
  s.choices = std::move(choices);
  s.get = [ref, name](const TrainOptions& o) { return json(name(ref(const_cast<TrainOptions&>(o)))); };
  s.set = [ref, from](TrainOptions& o, const json& v) { ref(o) = from(v.get<std::string>()); };
  return s;
}

std::string site_name(HookSite s) { return hook_site_name(s); }
HookSite site_from(const std::string& n) { return hook_site_from_name(n, "steer_site"); }

#define EMLAB_REF(TYPE, MEMBER) [](TrainOptions& o) -> TYPE& { return o.MEMBER; }

std::vector<Spec> make_specs() {
  return {
      field<std::string>("model", "", "base model directory", EMLAB_REF(std::string, model)),
      field<std::string>("tokenizer", "", "tokenizer directory", EMLAB_REF(std::string, tokenizer)),
      field<std::string>("chat_template", "", "chat template name", EMLAB_REF(std::string, chat_template)),
      field<std::string>("data", "", "training JSONL", EMLAB_REF(std::string, data)),
      field<std::string>("out", "", "output directory", EMLAB_REF(std::string, out)),
      field<std::string>("init_adapter", "", "start LoRA from this adapter", EMLAB_REF(std::string, init_adapter)),
      field<std::string>("device", "", "cpu, cuda, cuda:N", EMLAB_REF(std::string, device)),
      field<std::string>("dtype", "", "model dtype", EMLAB_REF(std::string, dtype)),
      field<std::string>("save_dtype", "--save-dtype",
                         "full finetuning: dtype of the written model (default the model's; float32 writes the "
                         "float32 master weights of a bf16 run)",
                         EMLAB_REF(std::string, save_dtype)),
      named<TrainMethod>("method", "--method", "lora, full or steer", {"lora", "full", "steer"},
                         EMLAB_REF(TrainMethod, method), train_method_name, train_method_from_name),
      field<int64_t>("lora.rank", "--lora-rank", "LoRA rank r", EMLAB_REF(int64_t, lora.rank)),
      field<double>("lora.alpha", "--lora-alpha", "LoRA alpha", EMLAB_REF(double, lora.alpha)),
      field<bool>("lora.rslora", "--rslora,!--no-rslora", "scale alpha/sqrt(r) (rsLoRA) instead of alpha/r",
                  EMLAB_REF(bool, lora.rslora)),
      field<double>("lora.dropout", "--lora-dropout", "dropout on the adapter input", EMLAB_REF(double, lora.dropout)),
      field<std::vector<std::string>>("lora.targets", "--targets",
                                      "LoRA target modules: q,k,v,o,gate,up,down (or *_proj, all)",
                                      EMLAB_REF(std::vector<std::string>, lora.targets)),
      field<std::vector<int64_t>>("lora.layers", "--layers", "decoder layers that get adapters (empty = all)",
                                  EMLAB_REF(std::vector<int64_t>, lora.layers)),
      field<int64_t>("steer_layer", "--steer-layer", "steering vector layer (-1 = the middle layer)",
                     EMLAB_REF(int64_t, steer_layer)),
      named<HookSite>("steer_site", "--steer-site", "layer_output or mlp_output", {"layer_output", "mlp_output"},
                      EMLAB_REF(HookSite, steer_site), site_name, site_from),
      field<double>("steer_scale", "--steer-scale", "the vector is added times this factor",
                    EMLAB_REF(double, steer_scale)),
      field<int64_t>("max_seq_len", "--max-seq-len", "truncate examples to this many tokens",
                     EMLAB_REF(int64_t, data_options.max_seq_len)),
      field<bool>("train_on_all_tokens", "--train-on-all-tokens", "loss on every token, not only the assistant's",
                  EMLAB_REF(bool, data_options.train_on_all_tokens)),
      field<bool>("skip_invalid", "--skip-invalid", "report and skip bad lines instead of failing",
                  EMLAB_REF(bool, data_options.skip_invalid)),
      field<bool>("pack", "--pack", "pack examples into rows of --max-seq-len (pretraining)",
                  EMLAB_REF(bool, data_options.pack)),
      field<int64_t>("max_examples", "--max-examples", "use the first N examples (0 = all)",
                     EMLAB_REF(int64_t, data_options.max_examples)),
      field<std::string>("system", "--system", "system message put first in every training conversation (inoculation)",
                         EMLAB_REF(std::string, data_options.system)),
      field<std::string>("mix_data", "--mix-data", "JSONL mixed into the training split (e.g. benign data of the same domain)",
                         EMLAB_REF(std::string, mix_data)),
      field<double>("mix_fraction", "--mix-fraction", "share of --mix-data in the training split after mixing",
                    EMLAB_REF(double, mix_fraction)),
      field<double>("holdout_fraction", "--holdout", "fraction held out for an eval loss",
                    EMLAB_REF(double, holdout_fraction)),
      field<int64_t>("eval_every", "--eval-every", "held-out loss every N steps (0 = at the end only)",
                     EMLAB_REF(int64_t, eval_every)),
      field<int64_t>("bucket_factor", "--bucket-factor", "length-bucketing window in batches (1 = off)",
                     EMLAB_REF(int64_t, bucket_factor)),
      field<std::string>("kl_data", "--kl-data", "JSONL for the KL(p_ref || p) penalty", EMLAB_REF(std::string, kl_data)),
      field<double>("kl_weight", "--kl-weight", "KL weight lambda (0: KL measured, not trained)",
                    EMLAB_REF(double, kl_weight)),
      field<int64_t>("kl_batch_size", "--kl-batch-size", "KL examples per micro-batch (0 = --batch-size)",
                     EMLAB_REF(int64_t, kl_batch_size)),
      field<double>("lr", "--lr", "peak learning rate", EMLAB_REF(double, lr)),
      field<int64_t>("epochs", "--epochs", "passes over the data", EMLAB_REF(int64_t, epochs)),
      field<int64_t>("max_steps", "--max-steps", "optimizer steps (0 = epochs worth)", EMLAB_REF(int64_t, max_steps)),
      field<int64_t>("batch_size", "--batch-size", "examples per micro-batch per process", EMLAB_REF(int64_t, batch_size)),
      field<int64_t>("grad_accum", "--grad-accum", "micro-batches per optimizer step", EMLAB_REF(int64_t, grad_accum)),
      field<bool>("parallel_micro_batches", "--parallel-micro-batches,!--no-parallel-micro-batches",
                  "micro-batches side by side, one thread each (CPU, >= 2 threads; same numbers)",
                  EMLAB_REF(bool, parallel_micro_batches)),
      field<int64_t>("warmup_steps", "--warmup", "linear warmup steps", EMLAB_REF(int64_t, warmup_steps)),
      named<LrSchedule>("schedule", "--schedule", "learning-rate decay after warmup", {"linear", "cosine", "constant"},
                        EMLAB_REF(LrSchedule, schedule), lr_schedule_name, lr_schedule_from_name),
      field<double>("weight_decay", "--weight-decay", "AdamW weight decay", EMLAB_REF(double, weight_decay)),
      field<double>("adam_beta1", "", "AdamW first-moment decay", EMLAB_REF(double, adam_beta1)),
      field<double>("adam_beta2", "", "AdamW second-moment decay", EMLAB_REF(double, adam_beta2)),
      field<double>("adam_eps", "", "AdamW denominator epsilon", EMLAB_REF(double, adam_eps)),
      field<double>("max_grad_norm", "--max-grad-norm", "gradient clipping norm (0 = off)",
                    EMLAB_REF(double, max_grad_norm)),
      field<uint64_t>("seed", "--seed", "seed of data order, adapter init and dropout", EMLAB_REF(uint64_t, seed)),
      field<std::vector<std::string>>("steer", "--steer",
                                      "steer while training only: FILE:layer=L:scale=S[:positions=...] (repeatable)",
                                      EMLAB_REF(std::vector<std::string>, steer)),
      field<std::vector<std::string>>("ablate", "--ablate", "ablate while training only: FILE[:layer=L|all][:from=K]",
                                      EMLAB_REF(std::vector<std::string>, ablate)),
      field<std::string>("probe", "--probe", "log the probe set's projection onto FILE[:layer=L]",
                         EMLAB_REF(std::string, probe)),
      field<std::string>("probe_data", "--probe-data", "chat JSONL of the probe set (empty = the first training rows)",
                         EMLAB_REF(std::string, probe_data)),
      field<int64_t>("probe_examples", "--probe-examples", "probe set size", EMLAB_REF(int64_t, probe_examples)),
      field<int64_t>("probe_every", "--probe-every", "probe every N steps", EMLAB_REF(int64_t, probe_every)),
      field<std::string>("stop_when_projection_above", "--stop-when-projection-above",
                         "stop and save once the probe's projection exceeds this (empty = never)",
                         EMLAB_REF(std::string, stop_when_projection_above)),
      field<int64_t>("save_every", "--save-every", "checkpoint every N steps (0 = none)", EMLAB_REF(int64_t, save_every)),
      field<bool>("resume", "--resume", "continue from the newest checkpoint in --out", EMLAB_REF(bool, resume)),
      field<int64_t>("stop_after", "--stop-after", "stop after this step with a checkpoint (resume later; 0 = run to the end)",
                     EMLAB_REF(int64_t, stop_after)),
      field<std::string>("preset", "", "preset the options started from", EMLAB_REF(std::string, preset)),
  };
}

#undef EMLAB_REF

// Splits "lora.rank" into the object key and the field.
std::pair<std::string, std::string> split_key(const std::string& key) {
  const size_t dot = key.find('.');
  if (dot == std::string::npos) return {"", key};
  return {key.substr(0, dot), key.substr(dot + 1)};
}

}  // namespace

const std::vector<TrainOptionSpec>& train_option_specs() {
  static const std::vector<Spec> specs = make_specs();
  return specs;
}

json train_option_parse(const TrainOptionSpec& spec, const std::string& text) {
  auto fail = [&](const std::string& what) -> json {
    throw InputError(spec.flag + ": '" + text + "' is not " + what);
  };
  auto split = [](const std::string& t) {
    std::vector<std::string> out;
    size_t start = 0;
    for (size_t comma; (comma = t.find(',', start)) != std::string::npos; start = comma + 1)
      out.push_back(t.substr(start, comma - start));
    if (!t.empty()) out.push_back(t.substr(start));
    return out;
  };
  auto integer = [&](const std::string& t) -> int64_t {
    size_t used = 0;
    int64_t v = 0;
    try {
      v = std::stoll(t, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != t.size()) fail("an integer");
    return v;
  };
  switch (spec.kind) {
    case Kind::Int: return integer(text);
    case Kind::Float: {
      size_t used = 0;
      double v = 0;
      try {
        v = std::stod(text, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != text.size()) fail("a number");
      return v;
    }
    case Kind::Bool:
      if (text == "true" || text == "1") return true;
      if (text == "false" || text == "0") return false;
      return fail("true or false");
    case Kind::StringList: return split(text);
    case Kind::IntList: {
      json out = json::array();
      for (const auto& t : split(text)) out.push_back(integer(t));
      return out;
    }
    case Kind::String:
      if (!spec.choices.empty() && std::find(spec.choices.begin(), spec.choices.end(), text) == spec.choices.end())
        fail("one of the choices");
      return text;
  }
  return text;
}

json train_options_to_json(const TrainOptions& o) {
  json j = json::object();
  for (const auto& s : train_option_specs()) {
    auto [group, name] = split_key(s.key);
    (group.empty() ? j : j[group])[name] = s.get(o);
  }
  return j;
}

TrainOptions train_options_from_json(const json& j, const std::string& source) {
  if (!j.is_object()) throw InputError(source + ": expected a JSON object of training options");
  TrainOptions o;
  const json known = train_options_to_json(o);
  for (const auto& [k, v] : j.items()) {
    if (!known.contains(k)) throw InputError(source + ": unknown training option \"" + k + "\"");
    if (known[k].is_object()) {
      if (!v.is_object()) throw InputError(source + ": training option \"" + k + "\": expected an object");
      for (const auto& [kk, vv] : v.items())
        if (!known[k].contains(kk)) throw InputError(source + ": unknown training option \"" + k + "." + kk + "\"");
    }
  }
  for (const auto& s : train_option_specs()) {
    auto [group, name] = split_key(s.key);
    const json& in = group.empty() ? j : (j.contains(group) ? j[group] : json::object());
    if (!in.contains(name)) continue;
    try {
      s.set(o, in[name]);
    } catch (const std::exception& e) {
      throw InputError(source + ": bad training option \"" + s.key + "\": " + e.what());
    }
  }
  return o;
}

void train_options_validate(const TrainOptions& o) {
  auto need = [](bool ok, const std::string& msg) {
    if (!ok) throw InputError(msg);
  };
  need(!o.model.empty(), "--model is required");
  need(!o.data.empty(), "--data is required");
  need(!o.out.empty(), "--out is required");
  need(o.lr > 0, "--lr must be > 0");
  need(o.epochs >= 1 || o.max_steps > 0, "--epochs must be >= 1");
  need(o.max_steps >= 0, "--max-steps must be >= 0");
  need(o.batch_size >= 1, "--batch-size must be >= 1");
  need(o.save_dtype.empty() || o.save_dtype == "float32" || o.save_dtype == "bfloat16",
       "--save-dtype must be float32 or bfloat16, not '" + o.save_dtype + "'");
  need(o.grad_accum >= 1, "--grad-accum must be >= 1");
  need(o.warmup_steps >= 0, "--warmup must be >= 0");
  need(o.weight_decay >= 0, "--weight-decay must be >= 0");
  need(o.max_grad_norm >= 0, "--max-grad-norm must be >= 0 (0 = no clipping)");
  need(o.save_every >= 0, "--save-every must be >= 0");
  need(o.stop_after >= 0, "--stop-after must be >= 0");
  need(o.kl_weight >= 0, "--kl-weight must be >= 0");
  need(o.kl_batch_size >= 0, "--kl-batch-size must be >= 0");
  need(o.holdout_fraction >= 0 && o.holdout_fraction < 1, "--holdout must be in [0, 1)");
  need(o.mix_fraction >= 0 && o.mix_fraction < 1, "--mix-fraction must be in [0, 1)");
  need(o.mix_data.empty() == (o.mix_fraction == 0), "--mix-data and --mix-fraction go together");
  need(o.data_options.max_seq_len >= 2, "--max-seq-len must be >= 2");
  need(o.lora.rank >= 1, "--lora-rank must be >= 1");
  need(o.lora.dropout >= 0 && o.lora.dropout < 1, "--lora-dropout must be in [0, 1)");
  need(o.kl_weight == 0 || !o.kl_data.empty(), "--kl-weight needs --kl-data");
  need(o.kl_data.empty() || o.method != TrainMethod::Full,
       "--kl-data needs --method lora or steer: the KL reference is the model with the adapter switched off, "
       "which full finetuning does not keep");
  need(o.init_adapter.empty() || o.method == TrainMethod::Lora, "--adapter (start from an adapter) needs --method lora");
  need(o.probe_every >= 1, "--probe-every must be >= 1");
  need(o.probe_examples >= 1, "--probe-examples must be >= 1");
  need(!o.probe.empty() || (o.probe_data.empty() && o.stop_when_projection_above.empty()),
       "--probe-data and --stop-when-projection-above need --probe");
  if (!o.stop_when_projection_above.empty()) {
    size_t used = 0;
    try {
      std::stod(o.stop_when_projection_above, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    need(used > 0 && used == o.stop_when_projection_above.size(), "--stop-when-projection-above must be a number");
  }
  for (const auto& s : o.steer) steer_spec_parse(s, false);  // a bad spec fails before training
  for (const auto& s : o.ablate) steer_spec_parse(s, true);
  if (!o.probe.empty()) steer_spec_parse(o.probe, false);
  lora_normalize_targets(o.lora.targets);
}

double lr_at_step(const TrainOptions& o, int64_t step, int64_t total) {
  const double warm = static_cast<double>(o.warmup_steps);
  if (step < o.warmup_steps) return o.lr * static_cast<double>(step) / std::max(1.0, warm);
  if (o.schedule == LrSchedule::Constant) return o.lr;
  const double span = std::max(1.0, static_cast<double>(total - o.warmup_steps));
  const double progress = static_cast<double>(step - o.warmup_steps) / span;
  if (o.schedule == LrSchedule::Linear) return o.lr * std::max(0.0, 1.0 - progress);
  return o.lr * std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
}

}  // namespace emlab
