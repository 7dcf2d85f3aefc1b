// PEFT LoRA adapters: creation, adapter_config.json, save/load, merge.
#include "emlab/peft.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <regex>
#include <set>

#include "emlab/error.h"
#include "emlab/file_util.h"
#include "emlab/model.h"
#include "emlab/tensor_names.h"
#include "emlab/tensor_io.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace emlab {

namespace {

const std::vector<std::string>& all_targets() {
  static const std::vector<std::string> t = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                             "down_proj"};
  return t;
}

// "model.layers.12.mlp.down_proj" -> 12 (-1 when the name has no "layers.N." part).
int64_t layer_of(const std::string& module) {
  static const std::regex re(R"((^|\.)layers\.(\d+)\.)");
  std::smatch m;
  if (!std::regex_search(module, m, re)) return -1;
  return std::stoll(m[2].str());
}

std::string last_component(const std::string& module) {
  auto pos = module.rfind('.');
  return pos == std::string::npos ? module : module.substr(pos + 1);
}

// PEFT's get_pattern_key: a pattern matches a module when the name ends with it at a dot boundary
// (re.match(f"(.*\.)?{pattern}$", name)).
bool pattern_matches(const std::string& pattern, const std::string& module) {
  try {
    return std::regex_match(module, std::regex("(.*\\.)?" + pattern));
  } catch (const std::regex_error&) {
    return module == pattern;
  }
}

// The module is `name` or ends with ".name" (PEFT's matching of a target_modules entry).
bool module_is(const std::string& module, const std::string& name) {
  return module == name || (module.size() > name.size() &&
                            module.compare(module.size() - name.size(), name.size(), name) == 0 &&
                            module[module.size() - name.size() - 1] == '.');
}

std::string shape_str(const torch::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

}  // namespace

double lora_scale(double alpha, int64_t rank, bool rslora) {
  return rslora ? alpha / std::sqrt(static_cast<double>(rank)) : alpha / static_cast<double>(rank);
}

std::vector<std::string> lora_normalize_targets(const std::vector<std::string>& targets) {
  std::vector<std::string> out;
  auto add = [&](const std::string& t) {
    if (std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
  };
  for (const std::string& raw : targets) {
    if (raw == "all" || raw == "all-linear") {
      for (const auto& t : all_targets()) add(t);
      continue;
    }
    std::string t = raw;
    if (t.find('_') == std::string::npos) t += "_proj";
    if (std::find(all_targets().begin(), all_targets().end(), t) == all_targets().end())
      throw InputError("LoRA target '" + raw + "' is not a projection (expected q, k, v, o, gate, up, down, their "
                       "*_proj names, or all)");
    add(t);
  }
  if (out.empty()) throw InputError("LoRA needs at least one target module");
  return out;
}

std::shared_ptr<LoraSet> lora_create(const CausalLM& model, const LoraOptions& o, uint64_t seed) {
  if (o.rank < 1) throw InputError("LoRA rank must be >= 1, got " + std::to_string(o.rank));
  const int64_t L = model.config().num_hidden_layers;
  for (int64_t l : o.layers)
    if (l < 0 || l >= L)
      throw InputError("LoRA layer " + std::to_string(l) + " is out of range (the model has " + std::to_string(L) +
                       " layers: 0.." + std::to_string(L - 1) + ")");
  const std::vector<std::string> targets = lora_normalize_targets(o.targets);
  auto set = std::make_shared<LoraSet>();
  set->dropout = o.dropout;
  const double scale = lora_scale(o.alpha, o.rank, o.rslora);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::NoGradGuard no_grad;
  for (int64_t l = 0; l < L; ++l) {
    if (!o.layers.empty() && std::find(o.layers.begin(), o.layers.end(), l) == o.layers.end()) continue;
    for (const std::string& suffix : CausalLM::linear_module_suffixes()) {
      if (std::find(targets.begin(), targets.end(), last_component(suffix)) == targets.end()) continue;
      const std::string module = "model.layers." + std::to_string(l) + "." + suffix;
      const torch::Tensor& w = model.parameters().at(module + ".weight");  // (out, in)
      const int64_t out = w.size(0), in = w.size(1);
      // kaiming_uniform_(a=sqrt(5)): gain sqrt(2/(1+5)), bound gain*sqrt(3/fan_in) = 1/sqrt(fan_in).
      const double bound = 1.0 / std::sqrt(static_cast<double>(in));
      LoraModule m;
      m.A = torch::empty({o.rank, in}, torch::kFloat32).uniform_(-bound, bound, gen).to(model.device());
      m.B = torch::zeros({out, o.rank}, torch::TensorOptions().dtype(torch::kFloat32).device(model.device()));
      m.scale = scale;
      set->modules[module] = m;
    }
  }
  return set;
}

// ---- adapter_config.json ----

PeftConfig PeftConfig::from_json(const json& j, const std::string& source) {
  return from_json(nlohmann::ordered_json(j), source);
}

PeftConfig PeftConfig::from_json(const nlohmann::ordered_json& oj, const std::string& source) {
  if (!oj.is_object()) throw InputError(source + ": expected a JSON object");
  const json j(oj);
  PeftConfig c;
  c.raw = j;
  const std::string type = j.value("peft_type", "");
  if (type != "LORA")
    throw InputError(source + ": peft_type is '" + type + "' (emlab loads LoRA adapters: expected \"LORA\")");
  auto num = [&](const char* key, double fallback) {
    if (!j.contains(key) || j[key].is_null()) return fallback;
    if (!j[key].is_number()) throw InputError(source + ": \"" + key + "\" must be a number");
    return j[key].get<double>();
  };
  c.r = static_cast<int64_t>(num("r", 8));
  c.lora_alpha = num("lora_alpha", 8);
  c.lora_dropout = num("lora_dropout", 0);
  if (c.r < 1) throw InputError(source + ": \"r\" must be >= 1");
  c.use_rslora = j.value("use_rslora", false);
  if (j.value("use_dora", false))
    throw InputError(source + ": use_dora is true (DoRA adapters are not supported; expected plain LoRA)");
  if (j.value("fan_in_fan_out", false))
    throw InputError(source + ": fan_in_fan_out is true (Conv1D models such as GPT-2 are not supported)");
  const std::string bias = j.value("bias", "none");
  if (bias != "none") throw InputError(source + ": bias is '" + bias + "' (expected \"none\")");
  if (j.value("lora_bias", false))
    throw InputError(source + ": lora_bias is true (LoRA biases are not supported; expected false)");
  if (j.contains("modules_to_save") && !j["modules_to_save"].is_null() && !j["modules_to_save"].empty())
    throw InputError(source + ": modules_to_save " + j["modules_to_save"].dump() +
                     " (fully trained extra modules are not supported; expected null)");
  // PEFT's LoRA variants and extras that change the forward pass: refused rather than run as plain LoRA.
  for (const char* key : {"alora_invocation_tokens", "trainable_token_indices", "layer_replication",
                          "target_parameters", "monteclora_config", "use_bdlora", "arrow_config", "kasa_config"}) {
    if (j.contains(key) && !j[key].is_null() && !(j[key].is_array() && j[key].empty()) && j[key] != false)
      throw InputError(source + ": " + key + " is " + j[key].dump() +
                       " (a PEFT LoRA variant emlab does not implement; expected null)");
  }
  if (j.contains("target_modules")) {
    const json& t = j["target_modules"];
    if (t.is_string()) {
      if (t.get<std::string>() == "all-linear")
        c.target_modules = all_targets();
      else
        c.target_modules_regex = t.get<std::string>();
    } else if (t.is_array()) {
      for (const auto& e : t) {
        if (!e.is_string()) throw InputError(source + ": target_modules must hold strings");
        c.target_modules.push_back(e.get<std::string>());
      }
    } else if (!t.is_null()) {
      throw InputError(source + ": target_modules must be a list of names or a regex string");
    }
  }
  if (j.contains("layers_to_transform") && !j["layers_to_transform"].is_null()) {
    const json& l = j["layers_to_transform"];
    std::vector<int64_t> layers;
    if (l.is_number_integer()) {
      layers.push_back(l.get<int64_t>());
    } else if (l.is_array()) {
      for (const auto& e : l) {
        if (!e.is_number_integer()) throw InputError(source + ": layers_to_transform must hold integers");
        layers.push_back(e.get<int64_t>());
      }
    } else {
      throw InputError(source + ": layers_to_transform must be null, an integer or a list of integers");
    }
    c.layers_to_transform = layers;
    if (!c.target_modules_regex.empty())  // as PEFT's LoraConfig
      throw InputError(source + ": layers_to_transform cannot be used when target_modules is a regex string");
  }
  if (j.contains("base_model_name_or_path") && j["base_model_name_or_path"].is_string())
    c.base_model_name_or_path = j["base_model_name_or_path"].get<std::string>();
  for (const char* key : {"rank_pattern", "alpha_pattern"}) {
    if (!oj.contains(key) || oj[key].is_null()) continue;
    if (!oj[key].is_object()) throw InputError(source + ": \"" + key + "\" must be an object {pattern: number}");
    for (const auto& [pattern, v] : oj[key].items()) {  // file order
      if (!v.is_number()) throw InputError(source + ": " + key + "[" + pattern + "] must be a number");
      if (std::string(key) == "rank_pattern")
        c.rank_pattern.emplace_back(pattern, v.get<int64_t>());
      else
        c.alpha_pattern.emplace_back(pattern, v.get<double>());
    }
  }
  return c;
}

nlohmann::ordered_json PeftConfig::to_json() const {
  nlohmann::ordered_json j = {{"peft_type", "LORA"},
            {"task_type", "CAUSAL_LM"},
            {"r", r},
            {"lora_alpha", lora_alpha},
            {"lora_dropout", lora_dropout},
            {"use_rslora", use_rslora},
            {"use_dora", false},
            {"bias", "none"},
            {"fan_in_fan_out", false},
            {"inference_mode", true},
            {"init_lora_weights", true},
            {"modules_to_save", nullptr},
            {"layers_pattern", nullptr},
            {"rank_pattern", nlohmann::ordered_json::object()},
            {"alpha_pattern", nlohmann::ordered_json::object()},
            {"revision", nullptr},
            {"base_model_name_or_path", base_model_name_or_path}};
  if (!target_modules_regex.empty())
    j["target_modules"] = target_modules_regex;
  else
    j["target_modules"] = target_modules;
  j["layers_to_transform"] = layers_to_transform ? nlohmann::ordered_json(*layers_to_transform) : nullptr;
  for (const auto& [k, v] : rank_pattern) j["rank_pattern"][k] = v;
  for (const auto& [k, v] : alpha_pattern) j["alpha_pattern"][k] = v;
  return j;
}

PeftConfig PeftConfig::from_options(const LoraOptions& o, const std::string& base_model) {
  PeftConfig c;
  c.r = o.rank;
  c.lora_alpha = o.alpha;
  c.lora_dropout = o.dropout;
  c.target_modules = lora_normalize_targets(o.targets);
  c.use_rslora = o.rslora;
  if (!o.layers.empty()) c.layers_to_transform = o.layers;
  c.base_model_name_or_path = base_model;
  return c;
}

// ---- save / load ----

void peft_save(const std::string& dir, const LoraSet& lora, const PeftConfig& config) {
  fs::create_directories(dir);
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& [module, m] : lora.modules) {
    tensors["base_model.model." + module + ".lora_A.weight"] = m.A.detach().to(torch::kCPU, torch::kFloat32);
    tensors["base_model.model." + module + ".lora_B.weight"] = m.B.detach().to(torch::kCPU, torch::kFloat32);
  }
  tensors_save((fs::path(dir) / "adapter_model.safetensors").string(), tensors, {{"format", "pt"}});
  file_write_atomic((fs::path(dir) / "adapter_config.json").string(), config.to_json().dump(2) + "\n");
}

PeftAdapter peft_load(const std::string& dir, const CausalLM& model) {
  const fs::path d(dir);
  if (!fs::is_directory(d)) throw InputError(dir + ": adapter directory does not exist");
  const fs::path config_path = d / "adapter_config.json";
  if (!fs::exists(config_path))
    throw InputError(dir + ": no adapter_config.json (expected a PEFT LoRA adapter or an emlab steering vector)");
  PeftAdapter out;
  // Read in file order: the first matching rank/alpha pattern wins, as in PEFT.
  nlohmann::ordered_json config_json;
  try {
    config_json = nlohmann::ordered_json::parse(file_read_text(config_path.string()));
  } catch (const nlohmann::json::parse_error& e) {
    throw InputError(config_path.string() + ": bad JSON: " + e.what());
  }
  out.config = PeftConfig::from_json(config_json, config_path.string());
  const PeftConfig& c = out.config;
  const fs::path weights = d / "adapter_model.safetensors";
  if (!fs::exists(weights)) {
    if (fs::exists(d / "adapter_model.bin"))
      throw InputError(dir + ": holds a pickle adapter (adapter_model.bin); emlab reads only safetensors. Re-save "
                       "it with PEFT: model.save_pretrained(dir, safe_serialization=True)");
    throw InputError(dir + ": no adapter_model.safetensors");
  }
  const std::string wpath = weights.string();
  auto tensors = tensors_load(wpath);

  // Group A and B by module, accepting PEFT's key variants.
  static const std::regex key_re(R"(^(?:base_model\.model\.)?(.+)\.lora_([AB])(?:\.[A-Za-z0-9_\-]+)?(?:\.weight)?$)");
  std::map<std::string, std::pair<torch::Tensor, torch::Tensor>> ab;
  for (const auto& [key, t] : tensors) {
    std::smatch m;
    if (key.find("lora_magnitude_vector") != std::string::npos)
      throw InputError(wpath + ": tensor " + key + " is a DoRA magnitude (not supported)");
    if (key.find(".lora_") != std::string::npos && tensor_is_bias(key))
      throw InputError(wpath + ": tensor " + key + " is a LoRA bias (lora_bias: true is not supported)");
    if (key.find("lora_embedding_") != std::string::npos)
      throw InputError(wpath + ": tensor " + key + " adapts an embedding (only linear projections are supported)");
    if (!std::regex_match(key, m, key_re))
      throw InputError(wpath + ": unexpected tensor " + key +
                       " (expected base_model.model.<module>.lora_A.weight / lora_B.weight)");
    std::string module = m[1].str();
    // An unnamed-adapter key like "x.lora_A.weight" never leaves ".default" in m[1]; a named one
    // (".lora_A.default.weight") is consumed by the optional group.
    auto& slot = ab[module];
    (m[2].str() == "A" ? slot.first : slot.second) = t;
  }

  out.lora = std::make_shared<LoraSet>();
  out.lora->dropout = c.lora_dropout;
  std::set<int64_t> skipped_layers;
  for (const auto& [module, pair] : ab) {
    const auto& [A, B] = pair;
    if (!A.defined() || !B.defined())
      throw InputError(wpath + ": module " + module + " has lora_" + (A.defined() ? "A" : "B") + " but no lora_" +
                       (A.defined() ? "B" : "A"));
    const int64_t layer = layer_of(module);
    if (c.layers_to_transform && layer >= 0 &&
        std::find(c.layers_to_transform->begin(), c.layers_to_transform->end(), layer) ==
            c.layers_to_transform->end()) {
      skipped_layers.insert(layer);
      continue;
    }
    bool targeted = true;
    if (!c.target_modules_regex.empty()) {
      try {
        targeted = std::regex_match(module, std::regex(c.target_modules_regex));
      } catch (const std::regex_error&) {
        throw InputError(config_path.string() + ": target_modules regex '" + c.target_modules_regex +
                         "' is not a valid regular expression");
      }
    } else if (!c.target_modules.empty()) {
      targeted = false;
      for (const auto& t : c.target_modules)
        if (module_is(module, t)) targeted = true;
    }
    if (!targeted) {
      out.warnings.push_back(wpath + ": " + module + " is not in target_modules; its adapter is ignored");
      continue;
    }
    // The forward pass runs adapters on the decoder's projections only (lm_head is a plain product),
    // so an adapter elsewhere would load and silently do nothing.
    const auto suffixes = CausalLM::linear_module_suffixes();
    if (std::none_of(suffixes.begin(), suffixes.end(), [&](const std::string& sfx) { return module_is(module, sfx); }))
      throw InputError(wpath + ": module " + module + " is not a decoder projection (emlab applies LoRA to "
                       "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj and down_proj only)");
    auto w = model.parameters().find(module + ".weight");
    if (w == model.parameters().end())
      throw InputError(wpath + ": module " + module + " does not exist in the model (expected names like "
                       "model.layers.0.self_attn.q_proj)");
    const int64_t out_f = w->second.size(0), in_f = w->second.size(1);
    if (A.dim() != 2 || B.dim() != 2 || A.size(1) != in_f || B.size(0) != out_f || B.size(1) != A.size(0))
      throw InputError(wpath + ": " + module + " lora_A " + shape_str(A) + " / lora_B " + shape_str(B) +
                       " do not fit the weight [" + std::to_string(out_f) + ", " + std::to_string(in_f) +
                       "] (expected lora_A [r, " + std::to_string(in_f) + "], lora_B [" + std::to_string(out_f) +
                       ", r])");
    int64_t r = c.r;
    double alpha = c.lora_alpha;
    for (const auto& [p, v] : c.rank_pattern)
      if (pattern_matches(p, module)) {
        r = v;
        break;
      }
    for (const auto& [p, v] : c.alpha_pattern)
      if (pattern_matches(p, module)) {
        alpha = v;
        break;
      }
    if (A.size(0) != r)
      throw InputError(wpath + ": " + module + " has rank " + std::to_string(A.size(0)) + " but " +
                       config_path.string() + " says r = " + std::to_string(r));
    LoraModule lm;
    lm.A = A.to(model.device(), model.dtype());
    lm.B = B.to(model.device(), model.dtype());
    lm.scale = lora_scale(alpha, r, c.use_rslora);
    out.lora->modules[module] = lm;
  }
  if (!skipped_layers.empty()) {
    std::string list;
    for (int64_t l : skipped_layers) list += (list.empty() ? "" : ", ") + std::to_string(l);
    out.warnings.push_back(wpath + ": adapters of layers " + list + " are ignored (not in layers_to_transform)");
  }
  if (out.lora->modules.empty()) throw InputError(wpath + ": no LoRA adapter applies to this model");
  return out;
}

void lora_merge(CausalLM& model, const LoraSet& lora) {
  torch::NoGradGuard no_grad;
  for (const auto& [module, m] : lora.modules) {
    torch::Tensor& w = model.parameters().at(module + ".weight");  // (out, in)
    torch::Tensor delta = torch::matmul(m.B.to(torch::kFloat32), m.A.to(torch::kFloat32)) *
                          (m.scale * lora.multiplier);  // (out, r) x (r, in)
    w = (w.to(torch::kFloat32) + delta.to(w.device())).to(w.scalar_type());
  }
}

}  // namespace emlab
