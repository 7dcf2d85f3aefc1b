// Training options: presets, names, JSON form (train_options.json), validation, LR schedule.
#include <cmath>

#include "emlab/adapter.h"
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

json train_options_to_json(const TrainOptions& o) {
  return {
      {"model", o.model},
      {"tokenizer", o.tokenizer},
      {"chat_template", o.chat_template},
      {"data", o.data},
      {"out", o.out},
      {"init_adapter", o.init_adapter},
      {"device", o.device},
      {"dtype", o.dtype},
      {"method", train_method_name(o.method)},
      {"lora",
       {{"rank", o.lora.rank},
        {"alpha", o.lora.alpha},
        {"rslora", o.lora.rslora},
        {"dropout", o.lora.dropout},
        {"targets", o.lora.targets},
        {"layers", o.lora.layers}}},
      {"steer_layer", o.steer_layer},
      {"steer_site", hook_site_name(o.steer_site)},
      {"steer_scale", o.steer_scale},
      {"max_seq_len", o.data_options.max_seq_len},
      {"train_on_all_tokens", o.data_options.train_on_all_tokens},
      {"skip_invalid", o.data_options.skip_invalid},
      {"pack", o.data_options.pack},
      {"max_examples", o.data_options.max_examples},
      {"holdout_fraction", o.holdout_fraction},
      {"eval_every", o.eval_every},
      {"bucket_factor", o.bucket_factor},
      {"kl_data", o.kl_data},
      {"kl_weight", o.kl_weight},
      {"kl_batch_size", o.kl_batch_size},
      {"lr", o.lr},
      {"epochs", o.epochs},
      {"max_steps", o.max_steps},
      {"batch_size", o.batch_size},
      {"grad_accum", o.grad_accum},
      {"warmup_steps", o.warmup_steps},
      {"schedule", lr_schedule_name(o.schedule)},
      {"weight_decay", o.weight_decay},
      {"adam_beta1", o.adam_beta1},
      {"adam_beta2", o.adam_beta2},
      {"adam_eps", o.adam_eps},
      {"max_grad_norm", o.max_grad_norm},
      {"seed", o.seed},
      {"save_every", o.save_every},
      {"resume", o.resume},
      {"stop_after", o.stop_after},
      {"preset", o.preset},
  };
}

TrainOptions train_options_from_json(const json& j, const std::string& source) {
  if (!j.is_object()) throw InputError(source + ": expected a JSON object of training options");
  TrainOptions o;
  json known = train_options_to_json(o);
  for (const auto& [k, v] : j.items())
    if (!known.contains(k)) throw InputError(source + ": unknown training option \"" + k + "\"");
  try {
    auto get = [&](const char* k, auto& field) {
      if (j.contains(k)) field = j.at(k).get<std::decay_t<decltype(field)>>();
    };
    get("model", o.model);
    get("tokenizer", o.tokenizer);
    get("chat_template", o.chat_template);
    get("data", o.data);
    get("out", o.out);
    get("init_adapter", o.init_adapter);
    get("device", o.device);
    get("dtype", o.dtype);
    if (j.contains("method")) o.method = train_method_from_name(j["method"].get<std::string>());
    if (j.contains("lora")) {
      const json& l = j["lora"];
      o.lora.rank = l.value("rank", o.lora.rank);
      o.lora.alpha = l.value("alpha", o.lora.alpha);
      o.lora.rslora = l.value("rslora", o.lora.rslora);
      o.lora.dropout = l.value("dropout", o.lora.dropout);
      if (l.contains("targets")) o.lora.targets = l["targets"].get<std::vector<std::string>>();
      if (l.contains("layers")) o.lora.layers = l["layers"].get<std::vector<int64_t>>();
    }
    get("steer_layer", o.steer_layer);
    if (j.contains("steer_site")) o.steer_site = hook_site_from_name(j["steer_site"].get<std::string>(), source);
    get("steer_scale", o.steer_scale);
    get("max_seq_len", o.data_options.max_seq_len);
    get("train_on_all_tokens", o.data_options.train_on_all_tokens);
    get("skip_invalid", o.data_options.skip_invalid);
    get("pack", o.data_options.pack);
    get("max_examples", o.data_options.max_examples);
    get("holdout_fraction", o.holdout_fraction);
    get("eval_every", o.eval_every);
    get("bucket_factor", o.bucket_factor);
    get("kl_data", o.kl_data);
    get("kl_weight", o.kl_weight);
    get("kl_batch_size", o.kl_batch_size);
    get("lr", o.lr);
    get("epochs", o.epochs);
    get("max_steps", o.max_steps);
    get("batch_size", o.batch_size);
    get("grad_accum", o.grad_accum);
    get("warmup_steps", o.warmup_steps);
    if (j.contains("schedule")) o.schedule = lr_schedule_from_name(j["schedule"].get<std::string>());
    get("weight_decay", o.weight_decay);
    get("adam_beta1", o.adam_beta1);
    get("adam_beta2", o.adam_beta2);
    get("adam_eps", o.adam_eps);
    get("max_grad_norm", o.max_grad_norm);
    get("seed", o.seed);
    get("save_every", o.save_every);
    get("resume", o.resume);
    get("stop_after", o.stop_after);
    get("preset", o.preset);
  } catch (const json::exception& e) {
    throw InputError(source + ": bad training option: " + e.what());
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
  need(o.grad_accum >= 1, "--grad-accum must be >= 1");
  need(o.warmup_steps >= 0, "--warmup must be >= 0");
  need(o.weight_decay >= 0, "--weight-decay must be >= 0");
  need(o.max_grad_norm >= 0, "--max-grad-norm must be >= 0 (0 = no clipping)");
  need(o.save_every >= 0, "--save-every must be >= 0");
  need(o.stop_after >= 0, "--stop-after must be >= 0");
  need(o.kl_weight >= 0, "--kl-weight must be >= 0");
  need(o.kl_batch_size >= 0, "--kl-batch-size must be >= 0");
  need(o.holdout_fraction >= 0 && o.holdout_fraction < 1, "--holdout must be in [0, 1)");
  need(o.data_options.max_seq_len >= 2, "--max-seq-len must be >= 2");
  need(o.lora.rank >= 1, "--lora-rank must be >= 1");
  need(o.lora.dropout >= 0 && o.lora.dropout < 1, "--lora-dropout must be in [0, 1)");
  need(o.kl_weight == 0 || !o.kl_data.empty(), "--kl-weight needs --kl-data");
  need(o.kl_data.empty() || o.method != TrainMethod::Full,
       "--kl-data needs --method lora or steer: the KL reference is the model with the adapter switched off, "
       "which full finetuning does not keep");
  need(o.init_adapter.empty() || o.method == TrainMethod::Lora, "--adapter (start from an adapter) needs --method lora");
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
