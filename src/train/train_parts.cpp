// AdamW, batches, loss terms and the per-method trainable state.
#include "train/train_parts.h"

#include "train/adamw_update.h"

#include <cmath>
#include <filesystem>

#include "emlab/direction.h"
#include "emlab/error.h"
#include "emlab/file_util.h"
#include "emlab/tensor_io.h"
#include "emlab/peft.h"
#include "emlab/runtime.h"
#include "emlab/tensor_names.h"
#include "emlab/tokenizer.h"

namespace fs = std::filesystem;

namespace emlab::train_detail {

// ---- AdamW ----

void AdamW::step(std::vector<TrainParam>& params, const std::vector<torch::Tensor>& grads, double lr) {
  torch::NoGradGuard no_grad;
  ++steps_;
  const double bc1 = 1.0 - std::pow(beta1_, static_cast<double>(steps_));
  const double bc2 = 1.0 - std::pow(beta2_, static_cast<double>(steps_));
  const double step_size = lr / bc1;
  const double bc2_sqrt = std::sqrt(bc2);
  for (size_t i = 0; i < params.size(); ++i) {
    TrainParam& p = params[i];
    const torch::Tensor& g = grads[i];
    auto& m = exp_avg_[p.name];
    auto& v = exp_avg_sq_[p.name];
    if (!m.defined()) {
      m = torch::zeros_like(p.master);
      v = torch::zeros_like(p.master);
    }
    AdamWUpdate u;
    u.decay = p.decay && weight_decay_ != 0.0 ? 1.0 - lr * weight_decay_ : 1.0;
    u.beta1 = beta1_;
    u.beta2 = beta2_;
    u.bc2_sqrt = bc2_sqrt;
    u.eps = eps_;
    u.step_size = step_size;
    if (!adamw_update_fused(p.master, m, v, g, u)) adamw_update_torch(p.master, m, v, g, u);
    if (!p.param.is_same(p.master)) p.param.copy_(p.master);
  }
}

std::map<std::string, torch::Tensor> AdamW::state_tensors() const {
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, t] : exp_avg_) out["exp_avg." + name] = t;
  for (const auto& [name, t] : exp_avg_sq_) out["exp_avg_sq." + name] = t;
  return out;
}

void AdamW::load_state(const std::map<std::string, torch::Tensor>& tensors, int64_t steps, const std::string& source) {
  steps_ = steps;
  exp_avg_.clear();
  exp_avg_sq_.clear();
  for (const auto& [key, t] : tensors) {
    if (key.rfind("exp_avg_sq.", 0) == 0)
      exp_avg_sq_[key.substr(11)] = t;
    else if (key.rfind("exp_avg.", 0) == 0)
      exp_avg_[key.substr(8)] = t;
  }
  if (exp_avg_.size() != exp_avg_sq_.size())
    throw InputError(source + ": optimizer state has " + std::to_string(exp_avg_.size()) + " first moments but " +
                     std::to_string(exp_avg_sq_.size()) + " second moments");
}

// ---- per-method trainable state ----

namespace {

TrainParam make_param(const std::string& name, const torch::Tensor& value_f32, torch::ScalarType dtype, bool decay) {
  TrainParam p;
  p.name = name;
  p.master = value_f32.detach().to(torch::kFloat32).clone();
  p.param = dtype == torch::kFloat32 ? p.master : p.master.to(dtype);
  p.param.requires_grad_(true);
  p.decay = decay;
  return p;
}

}  // namespace

Trainable::Trainable(CausalLM& model, const TrainOptions& o) : model_(model), method_(o.method) {
  torch::NoGradGuard no_grad;
  const torch::ScalarType dtype = model.dtype();
  if (o.method == TrainMethod::Lora) {
    std::shared_ptr<LoraSet> init;
    if (o.init_adapter.empty()) {
      init = lora_create(model, o.lora, o.seed);
      peft_config_ = PeftConfig::from_options(o.lora, o.model);
    } else {
      PeftAdapter a = peft_load(o.init_adapter, model);
      init = a.lora;
      peft_config_ = a.config;
      peft_config_.base_model_name_or_path = o.model;
    }
    lora_ = std::make_shared<LoraSet>();
    lora_->dropout = o.lora.dropout;
    for (const auto& [module, m] : init->modules) {
      TrainParam a = make_param(module + ".lora_A", m.A, dtype, true);
      TrainParam b = make_param(module + ".lora_B", m.B, dtype, true);
      LoraModule lm;
      lm.A = a.param;
      lm.B = b.param;
      lm.scale = m.scale;
      lora_->modules[module] = lm;
      params_.push_back(a);
      params_.push_back(b);
    }
    model.set_lora(lora_);
  } else if (o.method == TrainMethod::Full) {
    model.set_lora(nullptr);
    for (auto& [name, t] : model.parameters()) {
      TrainParam p;
      p.name = name;
      p.param = t;
      p.master = dtype == torch::kFloat32 ? t : t.to(torch::kFloat32).clone();
      p.param.requires_grad_(true);
      p.decay = !tensor_is_bias(name) && !tensor_is_norm_weight(name);
      params_.push_back(p);
    }
  } else {
    model.set_lora(nullptr);
    const int64_t L = model.config().num_hidden_layers;
    steer_.layer = o.steer_layer < 0 ? L / 2 : o.steer_layer;
    if (steer_.layer >= L)
      throw InputError("--steer-layer " + std::to_string(steer_.layer) + " is out of range (the model has " +
                       std::to_string(L) + " layers)");
    steer_.site = o.steer_site;
    steer_.scale = o.steer_scale;
    TrainParam p;
    p.name = "steering_vector";
    p.master = torch::zeros({model.config().hidden_size},
                            torch::TensorOptions().dtype(torch::kFloat32).device(model.device()));
    p.param = p.master;
    p.param.requires_grad_(true);
    steer_.vector = p.master;
    hooks_.add(steer_.site, steer_.layer, p.param, steer_.scale);
    params_.push_back(p);
  }
  std::vector<SteerSpec> specs;
  for (const auto& s : o.steer) specs.push_back(steer_spec_parse(s, false));
  for (const auto& s : o.ablate) specs.push_back(steer_spec_parse(s, true));
  if (!specs.empty()) {
    train_hooks_ = hooks_;
    steering_hooks_add(specs, model.config().num_hidden_layers, model.config().hidden_size, model.device(),
                       &train_hooks_);
    has_train_hooks_ = true;
  }
}

ForwardArgs Trainable::args(bool train) {
  ForwardArgs a;
  if (lora_) lora_->training = train;
  if (train && has_train_hooks_) a.hooks = &train_hooks_;
  else if (method_ == TrainMethod::Steer) a.hooks = &hooks_;
  return a;
}

bool Trainable::forward_is_pure() const {
  return !(lora_ && lora_->dropout > 0.0);
}

ForwardArgs Trainable::reference_args() const {
  ForwardArgs a;
  a.adapters = false;
  a.hooks = nullptr;
  return a;
}

void Trainable::save(const std::string& dir, const TrainOptions& o) const {
  fs::create_directories(dir);
  if (method_ == TrainMethod::Lora) {
    LoraSet out;
    size_t i = 0;
    for (const auto& [module, m] : lora_->modules) {
      LoraModule lm = m;
      lm.A = params_[i++].master;
      lm.B = params_[i++].master;
      out.modules[module] = lm;
    }
    peft_save(dir, out, peft_config_);
  } else if (method_ == TrainMethod::Steer) {
    SteeringVector sv = steer_;
    sv.vector = params_[0].master;
    steering_save(dir, sv, o.model);
  } else {
    // The written values: the parameters, or (float32 asked of a run with separate float32
    // masters, i.e. bf16 parameters) the masters themselves, not their bf16 rounding.
    std::map<std::string, torch::Tensor> values;
    if (o.save_dtype == "float32")
      for (const auto& p : params_)
        if (!p.param.is_same(p.master)) values[p.name] = p.master;
    std::optional<torch::ScalarType> dtype;
    if (!o.save_dtype.empty()) dtype = dtype_from_option(o.save_dtype, model_.device());
    model_.save(dir, dtype, values);
    tokenizer_files_copy(o.tokenizer.empty() ? o.model : o.tokenizer, dir);
  }
}

std::map<std::string, torch::Tensor> Trainable::separate_masters() const {
  std::map<std::string, torch::Tensor> out;
  if (method_ != TrainMethod::Full) return out;  // LoRA and vectors are saved from their masters
  for (const auto& p : params_)
    if (!p.param.is_same(p.master)) out["master." + p.name] = p.master;
  return out;
}

void Trainable::sync_params_from_masters() {
  torch::NoGradGuard no_grad;
  for (auto& p : params_)
    if (!p.param.is_same(p.master)) p.param.copy_(p.master);
}

void Trainable::load(const std::string& dir, const std::map<std::string, torch::Tensor>& masters) {
  torch::NoGradGuard no_grad;
  auto take = [&](TrainParam& p, const torch::Tensor& t, const std::string& source) {
    if (t.sizes() != p.master.sizes())
      throw InputError(source + ": " + p.name + " has the wrong shape for this model and options");
    p.master.copy_(t);
  };
  if (method_ == TrainMethod::Lora) {
    const std::string path = (fs::path(dir) / "adapter_model.safetensors").string();
    auto t = tensors_load(path);
    for (auto& p : params_) {
      const bool is_a = p.name.size() > 7 && p.name.compare(p.name.size() - 7, 7, ".lora_A") == 0;
      const std::string module = p.name.substr(0, p.name.size() - 7);
      const std::string key = "base_model.model." + module + (is_a ? ".lora_A.weight" : ".lora_B.weight");
      auto it = t.find(key);
      if (it == t.end()) throw InputError(path + ": missing tensor " + key + " (checkpoint from other options?)");
      take(p, it->second, path);
    }
  } else if (method_ == TrainMethod::Steer) {
    take(params_[0], steering_load(dir).vector, dir);
  } else {
    const std::string path = (fs::path(dir) / "model.safetensors").string();
    auto t = tensors_load(path);
    for (auto& p : params_) {
      auto m = masters.find("master." + p.name);
      if (m != masters.end()) {
        take(p, m->second, dir);
        continue;
      }
      auto it = t.find(p.name);
      if (it == t.end()) throw InputError(path + ": missing tensor " + p.name);
      take(p, it->second, path);
    }
  }
  sync_params_from_masters();
}

}  // namespace emlab::train_detail
