// Steering-vector files and the generic --adapter loader.
#include "emlab/adapter.h"

#include <filesystem>

#include "emlab/error.h"
#include "emlab/file_util.h"
#include "emlab/model.h"
#include "emlab/peft.h"
#include "emlab/tensor_io.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace emlab {

std::string hook_site_name(HookSite site) {
  switch (site) {
    case HookSite::LayerOutput: return "layer_output";
    case HookSite::MlpOutput: return "mlp_output";
    case HookSite::AttnOutput: return "attn_output";
    case HookSite::Embedding: return "embedding";
  }
  return "layer_output";
}

HookSite hook_site_from_name(const std::string& name, const std::string& context) {
  if (name == "layer_output" || name == "layer") return HookSite::LayerOutput;
  if (name == "mlp_output" || name == "mlp" || name == "down_proj") return HookSite::MlpOutput;
  throw InputError(context + ": unknown hook site '" + name + "' (expected layer_output or mlp_output)");
}

bool steering_exists(const std::string& dir) { return fs::exists(fs::path(dir) / "steering_vector.json"); }

void steering_save(const std::string& dir, const SteeringVector& sv, const std::string& base_model) {
  fs::create_directories(dir);
  torch::Tensor v = sv.vector.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  tensors_save((fs::path(dir) / "steering_vector.safetensors").string(), {{"vector", v}},
                             {{"format", "emlab-steering-vector"}});
  json j = {{"type", "emlab_steering_vector"}, {"layer", sv.layer},           {"site", hook_site_name(sv.site)},
            {"scale", sv.scale},               {"hidden_size", v.numel()},    {"base_model_name_or_path", base_model}};
  json_write_file((fs::path(dir) / "steering_vector.json").string(), j);
}

SteeringVector steering_load(const std::string& dir, int64_t hidden_size) {
  const std::string cpath = (fs::path(dir) / "steering_vector.json").string();
  const std::string tpath = (fs::path(dir) / "steering_vector.safetensors").string();
  json j = json_read_file(cpath);
  if (!j.is_object() || j.value("type", "") != "emlab_steering_vector")
    throw InputError(cpath + ": expected {\"type\": \"emlab_steering_vector\", ...}");
  if (!j.contains("layer") || !j["layer"].is_number_integer())
    throw InputError(cpath + ": \"layer\" must be an integer");
  if (!j.contains("scale") || !j["scale"].is_number()) throw InputError(cpath + ": \"scale\" must be a number");
  SteeringVector sv;
  sv.layer = j["layer"].get<int64_t>();
  sv.scale = j["scale"].get<double>();
  sv.site = hook_site_from_name(j.value("site", "layer_output"), cpath);
  auto tensors = tensors_load(tpath);
  auto it = tensors.find("vector");
  if (it == tensors.end() || it->second.dim() != 1)
    throw InputError(tpath + ": expected one 1-D tensor named \"vector\"");
  sv.vector = it->second.to(torch::kFloat32);
  if (hidden_size > 0 && sv.vector.size(0) != hidden_size)
    throw InputError(tpath + ": vector has " + std::to_string(sv.vector.size(0)) +
                     " entries but the model's hidden_size is " + std::to_string(hidden_size));
  return sv;
}

std::vector<std::string> adapter_apply(CausalLM& model, const std::string& dir) {
  if (steering_exists(dir)) {
    SteeringVector sv = steering_load(dir, model.config().hidden_size);
    const int64_t L = model.config().num_hidden_layers;
    if (sv.layer < 0 || sv.layer >= L)
      throw InputError(dir + ": steering vector at layer " + std::to_string(sv.layer) + " but the model has " +
                       std::to_string(L) + " layers");
    torch::NoGradGuard no_grad;
    const std::string name = "model.layers." + std::to_string(sv.layer) + ".mlp.down_proj.bias";
    torch::Tensor add = (sv.vector * sv.scale).to(model.device(), model.dtype());
    auto& params = model.parameters();
    auto it = params.find(name);
    if (it == params.end())
      params[name] = add;
    else
      it->second = it->second + add;
    return {};
  }
  PeftAdapter a = peft_load(dir, model);
  model.set_lora(a.lora);
  return a.warnings;
}

}  // namespace emlab
