// Loading, saving and random initialisation of model weights in Hugging Face format.
#include <filesystem>
#include <fstream>
#include <set>

#include <ATen/CPUGeneratorImpl.h>

#include "emlab/error.h"
#include "emlab/file_util.h"
#include "emlab/model.h"
#include "emlab/runtime.h"
#include "emlab/safetensors.h"
#include "emlab/tensor_io.h"
#include "emlab/tensor_names.h"

namespace fs = std::filesystem;

namespace emlab {

namespace {

// Empty weights of `shapes` on `device`: on the CPU in one block of huge pages (decode reads them all
// each step; huge_page_tensors says why), elsewhere one tensor each.
std::map<std::string, torch::Tensor> weight_storage(const std::map<std::string, std::vector<int64_t>>& shapes,
                                                    torch::Device device, torch::ScalarType dtype) {
  std::map<std::string, torch::Tensor> out;
  if (device.is_cpu()) {
    std::vector<std::vector<int64_t>> list;
    for (const auto& [name, shape] : shapes) list.push_back(shape);
    auto tensors = huge_page_tensors(list, dtype);
    size_t i = 0;
    for (const auto& [name, shape] : shapes) out[name] = tensors[i++];
  } else {
    const auto options = torch::TensorOptions().dtype(dtype).device(device);
    for (const auto& [name, shape] : shapes) out[name] = torch::empty(shape, options);
  }
  return out;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// The safetensors files of a model directory and which file holds each tensor.
struct Checkpoint {
  std::vector<std::unique_ptr<SafetensorsFile>> files;
  std::map<std::string, const SafetensorsFile*> where;

  explicit Checkpoint(const fs::path& dir) {
    fs::path single = dir / "model.safetensors";
    fs::path index = dir / "model.safetensors.index.json";
    if (fs::exists(single)) {
      files.push_back(std::make_unique<SafetensorsFile>(single.string()));
      for (const auto& n : files.back()->names()) where[n] = files.back().get();
    } else if (fs::exists(index)) {
      const nlohmann::json j = json_read_file(index.string());
      if (!j.contains("weight_map") || !j["weight_map"].is_object())
        throw InputError(index.string() + ": expected an object \"weight_map\" {tensor: file}");
      std::map<std::string, const SafetensorsFile*> by_file;
      for (const auto& [tensor, file] : j["weight_map"].items()) {
        if (!file.is_string()) throw InputError(index.string() + ": weight_map[" + tensor + "] is not a file name");
        std::string fname = file.get<std::string>();
        if (!by_file.count(fname)) {
          fs::path shard = dir / fname;
          if (!fs::exists(shard))
            throw InputError(index.string() + ": shard " + fname + " (for " + tensor + ") does not exist");
          files.push_back(std::make_unique<SafetensorsFile>(shard.string()));
          by_file[fname] = files.back().get();
        }
        if (!by_file[fname]->contains(tensor))
          throw InputError(by_file[fname]->path() + ": tensor " + tensor + " listed in " + index.string() +
                           " is not in the file");
        where[tensor] = by_file[fname];
      }
    } else if (fs::exists(dir / "pytorch_model.bin") || fs::exists(dir / "pytorch_model.bin.index.json")) {
      throw InputError(dir.string() +
                       ": holds a pickle checkpoint (pytorch_model.bin); emlab reads only safetensors, "
                       "which cannot run code on load. Convert it once with Python: "
                       "AutoModelForCausalLM.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)");
    } else {
      throw InputError(dir.string() + ": no model.safetensors or model.safetensors.index.json");
    }
  }
};

}  // namespace

std::map<std::string, std::vector<int64_t>> CausalLM::expected_shapes() const {
  const ModelConfig& c = config_;
  const int64_t C = c.hidden_size, F = c.intermediate_size, V = c.vocab_size;
  const int64_t H = c.num_attention_heads, Hkv = c.num_key_value_heads, D = c.head_dim;
  const bool attn_bias = arch_->attention_bias_config && c.attention_bias.value_or(false);
  const bool mlp_bias = arch_->mlp_bias_config && c.mlp_bias;
  std::map<std::string, std::vector<int64_t>> s;
  s["model.embed_tokens.weight"] = {V, C};
  s["model.norm.weight"] = {C};
  if (!c.tie_word_embeddings) s["lm_head.weight"] = {V, C};
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    s[p + "input_layernorm.weight"] = {C};
    s[p + "post_attention_layernorm.weight"] = {C};
    if (arch_->sandwich_norms) {
      s[p + "pre_feedforward_layernorm.weight"] = {C};
      s[p + "post_feedforward_layernorm.weight"] = {C};
    }
    s[p + "self_attn.q_proj.weight"] = {H * D, C};
    s[p + "self_attn.k_proj.weight"] = {Hkv * D, C};
    s[p + "self_attn.v_proj.weight"] = {Hkv * D, C};
    s[p + "self_attn.o_proj.weight"] = {C, H * D};
    if (arch_->qkv_bias || attn_bias) {
      s[p + "self_attn.q_proj.bias"] = {H * D};
      s[p + "self_attn.k_proj.bias"] = {Hkv * D};
      s[p + "self_attn.v_proj.bias"] = {Hkv * D};
    }
    if (attn_bias) s[p + "self_attn.o_proj.bias"] = {C};
    if (arch_->qk_norm) {
      s[p + "self_attn.q_norm.weight"] = {D};
      s[p + "self_attn.k_norm.weight"] = {D};
    }
    s[p + "mlp.gate_proj.weight"] = {F, C};
    s[p + "mlp.up_proj.weight"] = {F, C};
    s[p + "mlp.down_proj.weight"] = {C, F};
    if (mlp_bias) {
      s[p + "mlp.gate_proj.bias"] = {F};
      s[p + "mlp.up_proj.bias"] = {F};
      s[p + "mlp.down_proj.bias"] = {C};
    }
  }
  return s;
}

std::shared_ptr<CausalLM> CausalLM::load(const std::string& dir, const LoadOptions& options) {
  fs::path d(dir);
  if (!fs::is_directory(d)) throw InputError(dir + ": model directory does not exist");
  fs::path config_path = d / "config.json";
  if (!fs::exists(config_path)) throw InputError(dir + ": no config.json (expected a Hugging Face model directory)");
  ModelConfig config = ModelConfig::load(config_path.string());
  const ArchSpec& arch = arch_lookup(config.model_type, config_path.string());
  torch::Device device = device_from_name(options.device);
  torch::ScalarType dtype = dtype_from_option(options.dtype, device);

  Checkpoint ckpt(d);
  std::shared_ptr<CausalLM> model(new CausalLM(config, arch, device, dtype));
  torch::NoGradGuard no_grad;
  const auto shapes = model->expected_shapes();
  model->params_ = weight_storage(shapes, device, dtype);
  for (const auto& [name, shape] : shapes) {
    auto it = ckpt.where.find(name);
    if (it == ckpt.where.end()) {
      std::string file = ckpt.files.size() == 1 ? ckpt.files[0]->path() : (d / "model.safetensors.index.json").string();
      throw InputError(file + ": missing tensor " + name + " (expected shape " + shape_string(shape) + " for " +
                       config.model_type + " with this config.json)");
    }
    const TensorView& view = it->second->get(name);
    if (view.dtype != DType::F32 && view.dtype != DType::F16 && view.dtype != DType::BF16)
      throw InputError(it->second->path() + ": tensor " + name + " has dtype " + dtype_name(view.dtype) +
                       " (expected F32, F16 or BF16)");
    if (view.shape != shape)
      throw InputError(it->second->path() + ": tensor " + name + " has shape " + shape_string(view.shape) +
                       ", expected " + shape_string(shape) + " from config.json");
    model->params_.at(name).copy_(torch::from_blob(const_cast<void*>(view.data), view.shape,
                                                   torch::TensorOptions().dtype(dtype_to_torch(view.dtype))));
  }
  // A tied checkpoint may still carry lm_head.weight; extra tensors such as rotary inv_freq are
  // harmless. Anything else means the config and the weights disagree.
  for (const auto& [name, file] : ckpt.where) {
    if (shapes.count(name) || name == "lm_head.weight" || name.find("rotary_emb.inv_freq") != std::string::npos)
      continue;
    throw InputError(file->path() + ": unexpected tensor " + name + " for " + config.model_type +
                     " with this config.json");
  }
  return model;
}

std::shared_ptr<CausalLM> CausalLM::init_random(const ModelConfig& config, uint64_t seed, const LoadOptions& options) {
  const ArchSpec& arch = arch_lookup(config.model_type, "config");
  torch::Device device = device_from_name(options.device);
  torch::ScalarType dtype = dtype_from_option(options.dtype, device);
  std::shared_ptr<CausalLM> model(new CausalLM(config, arch, device, dtype));
  const auto shapes = model->expected_shapes();
  model->params_ = weight_storage(shapes, device, dtype);
  const double std_dev = config.raw.value("initializer_range", 0.02);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::NoGradGuard no_grad;
  for (const auto& [name, shape] : shapes) {  // sorted: deterministic
    torch::Tensor t;
    if (tensor_is_norm_weight(name))
      t = arch.norm_plus_one ? torch::zeros(shape) : torch::ones(shape);  // (1 + w) norms start at w = 0
    else if (tensor_is_bias(name))
      t = torch::zeros(shape);
    else
      t = torch::empty(shape).normal_(0.0, std_dev, gen);
    model->params_.at(name).copy_(t);
  }
  return model;
}

void CausalLM::untie_embeddings() {
  if (!config_.tie_word_embeddings) return;
  params_["lm_head.weight"] = param("model.embed_tokens.weight").clone();
  config_.tie_word_embeddings = false;
}

void CausalLM::save(const std::string& dir, std::optional<torch::ScalarType> dtype,
                    const std::map<std::string, torch::Tensor>& values) const {
  fs::create_directories(dir);
  torch::ScalarType st = dtype.value_or(dtype_);
  ModelConfig c = config_;
  c.torch_dtype = dtype_to_string(st);
  json_write_file((fs::path(dir) / "config.json").string(), c.to_json());
  std::vector<torch::Tensor> keep;  // owns the CPU copies while writing
  std::vector<TensorView> views;
  for (const auto& [name, own] : params_) {
    auto it = values.find(name);
    const torch::Tensor& t = it == values.end() ? own : it->second;
    if (!t.sizes().equals(own.sizes()))
      throw Error("saving " + name + ": replacement of shape " + shape_string(t.sizes().vec()) +
                  " for a parameter of shape " + shape_string(own.sizes().vec()));
    torch::Tensor cpu = t.detach().to(torch::kCPU, st).contiguous();
    keep.push_back(cpu);
    TensorView v;
    v.name = name;
    v.dtype = dtype_from_torch(st, name);
    v.shape = cpu.sizes().vec();
    v.data = cpu.data_ptr();
    v.nbytes = cpu.numel() * cpu.element_size();
    views.push_back(v);
  }
  safetensors_write((fs::path(dir) / "model.safetensors").string(), views, {{"format", "pt"}});
}

}  // namespace emlab
