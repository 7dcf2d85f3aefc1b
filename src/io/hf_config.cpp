// config.json / generation_config.json parsing with Hugging Face's defaults and clear errors.
// Both the classic keys (rope_theta, rope_scaling, torch_dtype) and the newer transformers ones
// (rope_parameters, dtype) are read; the classic keys win when both are present.
#include "emlab/hf_config.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "emlab/error.h"
#include "emlab/file_util.h"

namespace emlab {

namespace {

using json = nlohmann::json;

bool present(const json& j, const char* key) { return j.contains(key) && !j[key].is_null(); }

// Integer field (an integral float such as 4096.0 is accepted too).
int64_t as_int(const json& v, const std::string& source, const std::string& field) {
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
      throw InputError(source + ": \"" + field + "\" is too large");
    return v.get<int64_t>();
  }
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15) return static_cast<int64_t>(d);
  }
  throw InputError(source + ": \"" + field + "\" must be an integer, got " + v.dump());
}

double as_double(const json& v, const std::string& source, const std::string& field) {
  if (!v.is_number()) throw InputError(source + ": \"" + field + "\" must be a number, got " + v.dump());
  return v.get<double>();
}

bool as_bool(const json& v, const std::string& source, const std::string& field) {
  if (!v.is_boolean()) throw InputError(source + ": \"" + field + "\" must be true or false, got " + v.dump());
  return v.get<bool>();
}

std::string as_string(const json& v, const std::string& source, const std::string& field) {
  if (!v.is_string()) throw InputError(source + ": \"" + field + "\" must be a string, got " + v.dump());
  return v.get<std::string>();
}

int64_t required_positive(const json& j, const char* key, const std::string& source) {
  if (!present(j, key)) throw InputError(source + ": missing \"" + key + "\"");
  int64_t v = as_int(j[key], source, key);
  if (v <= 0) throw InputError(source + ": \"" + key + "\" must be positive, got " + std::to_string(v));
  return v;
}

// eos_token_id: null, an int, or a list of ints.
std::vector<int64_t> token_id_list(const json& j, const char* key, const std::string& source) {
  std::vector<int64_t> ids;
  if (!present(j, key)) return ids;
  const json& v = j[key];
  if (v.is_array()) {
    for (size_t i = 0; i < v.size(); ++i)
      ids.push_back(as_int(v[i], source, std::string(key) + "[" + std::to_string(i) + "]"));
  } else {
    ids.push_back(as_int(v, source, key));
  }
  return ids;
}

// rope_scaling (or rope_parameters) object -> scaling, or none for plain RoPE.
std::optional<RopeScaling> parse_rope_scaling(const json& rs, const std::string& source,
                                              const std::string& field) {
  if (rs.is_null()) return std::nullopt;
  if (!rs.is_object()) throw InputError(source + ": \"" + field + "\" must be an object or null");
  std::string type;
  if (present(rs, "rope_type")) type = as_string(rs["rope_type"], source, field + ".rope_type");
  else if (present(rs, "type")) type = as_string(rs["type"], source, field + ".type");
  else throw InputError(source + ": \"" + field + "\" has no \"rope_type\" (or \"type\")");
  if (type == "default") return std::nullopt;
  if (type != "llama3" && type != "linear")
    throw InputError(source + ": " + field + " type \"" + type + "\" is not supported (supported: llama3, linear)");
  RopeScaling s;
  s.type = type;
  auto num = [&](const char* key) {
    if (!present(rs, key))
      throw InputError(source + ": " + field + " (" + type + ") is missing \"" + key + "\"");
    return as_double(rs[key], source, field + "." + key);
  };
  s.factor = num("factor");
  if (!(s.factor > 0)) throw InputError(source + ": " + field + ": factor must be positive");
  // transformers ignores an "attention_factor" for these two types (their cos/sin are unscaled).
  if (type == "linear") return s;
  s.low_freq_factor = num("low_freq_factor");
  s.high_freq_factor = num("high_freq_factor");
  if (!present(rs, "original_max_position_embeddings"))
    throw InputError(source + ": " + field + " (llama3) is missing \"original_max_position_embeddings\"");
  s.original_max_position_embeddings = as_int(rs["original_max_position_embeddings"], source,
                                              field + ".original_max_position_embeddings");
  if (!(s.low_freq_factor > 0) || s.original_max_position_embeddings <= 0)
    throw InputError(source + ": " + field + ": factor, low_freq_factor and "
                     "original_max_position_embeddings must be positive");
  // The smoothing between the two wavelength bands divides by (high - low).
  if (!(s.high_freq_factor > s.low_freq_factor))
    throw InputError(source + ": " + field + ": high_freq_factor (" + std::to_string(s.high_freq_factor) +
                     ") must be greater than low_freq_factor (" + std::to_string(s.low_freq_factor) + ")");
  return s;
}

bool is_gemma(const std::string& model_type) { return model_type == "gemma2" || model_type == "gemma3_text"; }
bool is_qwen(const std::string& model_type) { return model_type == "qwen2" || model_type == "qwen3"; }

// transformers' config-class defaults of the fields whose absence means something else than
// emlab's generic defaults (only absent keys take them; an explicit null stays null).
const json& class_defaults(const std::string& model_type) {
  static const json none = json::object();
  static const json table = {
      {"mistral", {{"num_key_value_heads", 8}, {"sliding_window", 4096}, {"max_position_embeddings", 131072}}},
      {"qwen2",
       {{"num_key_value_heads", 32}, {"use_sliding_window", false}, {"sliding_window", 4096},
        {"max_window_layers", 28}, {"max_position_embeddings", 32768}}},
      {"qwen3",
       {{"num_key_value_heads", 32}, {"head_dim", 128}, {"use_sliding_window", false}, {"sliding_window", 4096},
        {"max_window_layers", 28}, {"max_position_embeddings", 32768}}},
      {"gemma2",
       {{"num_key_value_heads", 4}, {"head_dim", 256}, {"hidden_activation", "gelu_pytorch_tanh"},
        {"max_position_embeddings", 8192}, {"tie_word_embeddings", true}, {"query_pre_attn_scalar", 256},
        {"sliding_window", 4096}, {"final_logit_softcapping", 30.0}, {"attn_logit_softcapping", 50.0}}},
      {"gemma3_text",
       {{"num_key_value_heads", 4}, {"head_dim", 256}, {"hidden_activation", "gelu_pytorch_tanh"},
        {"max_position_embeddings", 131072}, {"tie_word_embeddings", true}, {"query_pre_attn_scalar", 256},
        {"sliding_window", 4096}, {"sliding_window_pattern", 6}}},
  };
  return table.contains(model_type) ? table[model_type] : none;
}

const std::vector<std::string>& supported_activations() {
  static const std::vector<std::string> a = {"silu", "swish", "gelu_pytorch_tanh", "gelu_new", "gelu"};
  return a;
}

std::optional<double> optional_positive(const json& j, const char* key, const std::string& source) {
  if (!present(j, key)) return std::nullopt;
  double v = as_double(j[key], source, key);
  if (!(v > 0)) throw InputError(source + ": \"" + key + "\" must be positive or null, got " + j[key].dump());
  return v;
}

// RoPE of the full-attention layers (rope_theta, rope_scaling) and of the sliding ones. Classic keys
// (rope_theta, rope_scaling, rope_local_base_freq) win over transformers 5's rope_parameters, which is
// either flat or keyed by layer type ({"full_attention": {...}, "sliding_attention": {...}}).
void parse_rope(const json& j, const std::string& source, ModelConfig& c) {
  const json* rp = present(j, "rope_parameters") ? &j["rope_parameters"] : nullptr;
  if (rp && !rp->is_object()) throw InputError(source + ": \"rope_parameters\" must be an object");
  const bool per_type = rp && (rp->contains(kFullAttention) || rp->contains(kSlidingAttention));
  const json* full = rp;
  std::string full_field = "rope_parameters";
  if (per_type) {
    full = present(*rp, kFullAttention) ? &(*rp)[kFullAttention] : nullptr;
    full_field = std::string("rope_parameters.") + kFullAttention;
    if (full && !full->is_object()) throw InputError(source + ": \"" + full_field + "\" must be an object");
  }
  if (present(j, "rope_theta")) c.rope_theta = as_double(j["rope_theta"], source, "rope_theta");
  else if (full && present(*full, "rope_theta"))
    c.rope_theta = as_double((*full)["rope_theta"], source, full_field + ".rope_theta");
  else if (c.model_type == "gemma3_text") c.rope_theta = 1e6;
  if (!(c.rope_theta > 0)) throw InputError(source + ": \"rope_theta\" must be positive");
  if (j.contains("rope_scaling")) c.rope_scaling = parse_rope_scaling(j["rope_scaling"], source, "rope_scaling");
  else if (full) c.rope_scaling = parse_rope_scaling(*full, source, full_field);

  if (present(j, "rope_local_base_freq")) {
    c.rope_local_theta = as_double(j["rope_local_base_freq"], source, "rope_local_base_freq");
  } else if (per_type && present(*rp, kSlidingAttention)) {
    const std::string field = std::string("rope_parameters.") + kSlidingAttention;
    const json& local = (*rp)[kSlidingAttention];
    if (!local.is_object()) throw InputError(source + ": \"" + field + "\" must be an object");
    if (parse_rope_scaling(local, source, field))
      throw InputError(source + ": " + field + " has a frequency scaling (emlab scales only the full-attention "
                       "layers' RoPE; expected \"rope_type\": \"default\")");
    if (present(local, "rope_theta"))
      c.rope_local_theta = as_double(local["rope_theta"], source, field + ".rope_theta");
  }
  if (!c.rope_local_theta && c.model_type == "gemma3_text") c.rope_local_theta = 1e4;
  if (c.rope_local_theta && !(*c.rope_local_theta > 0))
    throw InputError(source + ": the sliding layers' RoPE base (rope_local_base_freq) must be positive");
}

// layer_types as given, or derived as transformers' config classes do.
std::vector<std::string> parse_layer_types(const json& j, const std::string& source, const ModelConfig& c) {
  const int64_t L = c.num_hidden_layers;
  std::vector<std::string> types;
  if (present(j, "layer_types")) {
    const json& v = j["layer_types"];
    if (!v.is_array() || static_cast<int64_t>(v.size()) != L)
      throw InputError(source + ": \"layer_types\" must be a list of " + std::to_string(L) +
                       " entries (one per layer), got " + v.dump());
    for (size_t i = 0; i < v.size(); ++i) {
      std::string t = as_string(v[i], source, "layer_types[" + std::to_string(i) + "]");
      if (t != kFullAttention && t != kSlidingAttention)
        throw InputError(source + ": layer_types[" + std::to_string(i) + "] is \"" + t + "\" (supported: " +
                         kFullAttention + ", " + kSlidingAttention + ")");
      types.push_back(t);
    }
    return types;
  }
  int64_t pattern = 0;  // layer i slides unless (i + 1) % pattern == 0
  if (c.model_type == "gemma2") pattern = 2;
  if (c.model_type == "gemma3_text") {
    pattern = as_int(j["sliding_window_pattern"], source, "sliding_window_pattern");
    if (pattern <= 0) throw InputError(source + ": \"sliding_window_pattern\" must be positive");
  }
  if (pattern > 0) {
    for (int64_t i = 0; i < L; ++i) types.push_back((i + 1) % pattern ? kSlidingAttention : kFullAttention);
  } else if (is_qwen(c.model_type)) {
    const int64_t first = as_int(j["max_window_layers"], source, "max_window_layers");
    for (int64_t i = 0; i < L; ++i)
      types.push_back(c.sliding_window && i >= first ? kSlidingAttention : kFullAttention);
  }
  return types;
}

}  // namespace

ModelConfig ModelConfig::from_json(const json& file_json, const std::string& source) {
  if (!file_json.is_object()) throw InputError(source + ": expected a JSON object (config.json)");
  ModelConfig c;
  c.raw = file_json;
  if (present(file_json, "model_type")) c.model_type = as_string(file_json["model_type"], source, "model_type");
  json j = file_json;  // with the config class's defaults for absent keys
  for (const auto& [key, value] : class_defaults(c.model_type).items())
    if (!j.contains(key)) j[key] = value;
  c.vocab_size = required_positive(j, "vocab_size", source);
  c.hidden_size = required_positive(j, "hidden_size", source);
  c.intermediate_size = required_positive(j, "intermediate_size", source);
  c.num_hidden_layers = required_positive(j, "num_hidden_layers", source);
  c.num_attention_heads = required_positive(j, "num_attention_heads", source);

  c.num_key_value_heads = present(j, "num_key_value_heads")
                              ? required_positive(j, "num_key_value_heads", source)
                              : c.num_attention_heads;
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    throw InputError(source + ": \"num_attention_heads\" (" + std::to_string(c.num_attention_heads) +
                     ") must be divisible by \"num_key_value_heads\" (" +
                     std::to_string(c.num_key_value_heads) + ")");
  if (present(j, "head_dim")) {
    c.head_dim = required_positive(j, "head_dim", source);
  } else {
    if (c.hidden_size % c.num_attention_heads != 0)
      throw InputError(source + ": no \"head_dim\" and \"hidden_size\" (" + std::to_string(c.hidden_size) +
                       ") is not divisible by \"num_attention_heads\" (" +
                       std::to_string(c.num_attention_heads) + ")");
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (c.head_dim % 2 != 0)
    throw InputError(source + ": head_dim (" + std::to_string(c.head_dim) + ") must be even (RoPE rotates pairs)");

  if (present(j, "rms_norm_eps")) {
    c.rms_norm_eps = as_double(j["rms_norm_eps"], source, "rms_norm_eps");
    if (!(c.rms_norm_eps > 0)) throw InputError(source + ": \"rms_norm_eps\" must be positive");
  }
  parse_rope(j, source, c);

  if (present(j, "max_position_embeddings"))
    c.max_position_embeddings = required_positive(j, "max_position_embeddings", source);
  if (present(j, "tie_word_embeddings"))
    c.tie_word_embeddings = as_bool(j["tie_word_embeddings"], source, "tie_word_embeddings");
  if (present(j, "attention_bias"))
    c.attention_bias = as_bool(j["attention_bias"], source, "attention_bias");
  if (present(j, "mlp_bias")) c.mlp_bias = as_bool(j["mlp_bias"], source, "mlp_bias");

  // Gemma's MLP reads hidden_activation (transformers ignores its hidden_act); the others hidden_act.
  const char* act_key = is_gemma(c.model_type) ? "hidden_activation" : "hidden_act";
  if (present(j, act_key)) c.hidden_act = as_string(j[act_key], source, act_key);
  const auto& acts = supported_activations();
  if (std::find(acts.begin(), acts.end(), c.hidden_act) == acts.end()) {
    std::string list;
    for (const auto& a : acts) list += (list.empty() ? "" : ", ") + a;
    throw InputError(source + ": \"" + act_key + "\" is \"" + c.hidden_act + "\" (supported: " + list + ")");
  }

  // Qwen2/Qwen3 carry a sliding_window value but disable it with use_sliding_window (default false).
  bool use_sliding = true;
  if (present(j, "use_sliding_window"))
    use_sliding = as_bool(j["use_sliding_window"], source, "use_sliding_window");
  if (use_sliding && present(j, "sliding_window")) {
    c.sliding_window = as_int(j["sliding_window"], source, "sliding_window");
    if (*c.sliding_window <= 0)
      throw InputError(source + ": \"sliding_window\" must be positive or null, got " +
                       std::to_string(*c.sliding_window));
  }
  if (is_qwen(c.model_type) || is_gemma(c.model_type)) c.layer_types = parse_layer_types(j, source, c);
  if (present(j, "use_bidirectional_attention") &&
      as_bool(j["use_bidirectional_attention"], source, "use_bidirectional_attention"))
    throw InputError(source + ": use_bidirectional_attention is true (an encoder such as EmbeddingGemma; emlab "
                     "runs causal language models only)");

  if (is_gemma(c.model_type)) {  // other architectures' modeling code reads none of these
    c.query_pre_attn_scalar = optional_positive(j, "query_pre_attn_scalar", source);
    c.attn_logit_softcapping = optional_positive(j, "attn_logit_softcapping", source);
    c.final_logit_softcapping = optional_positive(j, "final_logit_softcapping", source);
  }

  c.eos_token_ids = token_id_list(j, "eos_token_id", source);
  if (present(j, "bos_token_id")) c.bos_token_id = as_int(j["bos_token_id"], source, "bos_token_id");
  if (present(j, "torch_dtype")) c.torch_dtype = as_string(j["torch_dtype"], source, "torch_dtype");
  else if (present(j, "dtype")) c.torch_dtype = as_string(j["dtype"], source, "dtype");
  return c;
}

bool ModelConfig::layer_is_sliding(int64_t layer) const {
  return layer >= 0 && layer < static_cast<int64_t>(layer_types.size()) && layer_types[layer] == kSlidingAttention;
}

ModelConfig ModelConfig::load(const std::string& path) {
  // A model folder is accepted for convenience: its config.json is read.
  std::string file = path;
  if (std::filesystem::is_directory(path)) file = (std::filesystem::path(path) / "config.json").string();
  return from_json(json_read_file(file), file);
}

json ModelConfig::to_json() const {
  json j = raw.is_object() ? raw : json::object();
  if (!model_type.empty()) j["model_type"] = model_type;
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["num_key_value_heads"] = num_key_value_heads;
  j["head_dim"] = head_dim;
  j["rms_norm_eps"] = rms_norm_eps;

  // RoPE: transformers 5's rope_parameters when the file had it (flat, or per layer type), else the
  // classic keys; classic keys the file had are kept consistent too.
  json scaling = nullptr;
  if (rope_scaling) {
    scaling = {{"rope_type", rope_scaling->type}, {"factor", rope_scaling->factor}};
    if (rope_scaling->type == "llama3") {
      scaling["low_freq_factor"] = rope_scaling->low_freq_factor;
      scaling["high_freq_factor"] = rope_scaling->high_freq_factor;
      scaling["original_max_position_embeddings"] = rope_scaling->original_max_position_embeddings;
    }
  }
  auto params = [](double theta, const json& sc) {
    json p = sc.is_null() ? json{{"rope_type", "default"}} : sc;
    p["rope_theta"] = theta;
    return p;
  };
  const bool has_params = j.contains("rope_parameters") && j["rope_parameters"].is_object();
  const bool per_type = has_params && (j["rope_parameters"].contains(kFullAttention) ||
                                       j["rope_parameters"].contains(kSlidingAttention));
  if (has_params) {
    json& rp = j["rope_parameters"];
    if (per_type) {
      rp[kFullAttention] = params(rope_theta, scaling);
      rp[kSlidingAttention] = params(rope_local_theta.value_or(rope_theta), nullptr);
    } else {
      rp = params(rope_theta, scaling);
    }
  }
  if (!has_params || j.contains("rope_theta")) j["rope_theta"] = rope_theta;
  if (!has_params || j.contains("rope_scaling")) j["rope_scaling"] = scaling;
  if (rope_local_theta && (!per_type || j.contains("rope_local_base_freq")))
    j["rope_local_base_freq"] = *rope_local_theta;

  j["max_position_embeddings"] = max_position_embeddings;
  j["tie_word_embeddings"] = tie_word_embeddings;
  if (attention_bias) j["attention_bias"] = *attention_bias;
  if (mlp_bias || j.contains("mlp_bias")) j["mlp_bias"] = mlp_bias;
  j[is_gemma(model_type) ? "hidden_activation" : "hidden_act"] = hidden_act;
  // An absent window means transformers' default (4096 for mistral, qwen, gemma): write null.
  j["sliding_window"] = sliding_window ? json(*sliding_window) : json(nullptr);
  if (is_qwen(model_type) || j.contains("use_sliding_window")) j["use_sliding_window"] = sliding_window.has_value();
  if (!layer_types.empty()) j["layer_types"] = layer_types;
  // Absent Gemma softcapping/scalar fields mean transformers' defaults: write nulls explicitly.
  // (Other architectures do not read them: raw values stay as they were.)
  auto optional_number = [&](const char* key, const std::optional<double>& v) {
    if (is_gemma(model_type)) j[key] = v ? json(*v) : json(nullptr);
  };
  // transformers types query_pre_attn_scalar as an int (its config refuses 256.0).
  auto integral = [](const std::optional<double>& v) -> json {
    if (v && *v == std::floor(*v) && std::fabs(*v) < 9.0e15) return static_cast<int64_t>(*v);
    return v ? json(*v) : json(nullptr);
  };
  // Gemma without a scalar (a config built in code) scales by 1/sqrt(head_dim), as this file then says.
  if (is_gemma(model_type))
    j["query_pre_attn_scalar"] = integral(query_pre_attn_scalar ? query_pre_attn_scalar
                                                                : std::optional<double>(static_cast<double>(head_dim)));
  optional_number("attn_logit_softcapping", attn_logit_softcapping);
  optional_number("final_logit_softcapping", final_logit_softcapping);

  if (eos_token_ids.size() == 1) j["eos_token_id"] = eos_token_ids[0];
  else if (!eos_token_ids.empty()) j["eos_token_id"] = eos_token_ids;
  else if (j.contains("eos_token_id")) j["eos_token_id"] = nullptr;
  if (bos_token_id) j["bos_token_id"] = *bos_token_id;
  else if (j.contains("bos_token_id")) j["bos_token_id"] = nullptr;
  if (!torch_dtype.empty()) j[j.contains("dtype") && !j.contains("torch_dtype") ? "dtype" : "torch_dtype"] = torch_dtype;
  return j;
}

GenerationConfig GenerationConfig::load_if_exists(const std::string& path) {
  GenerationConfig g;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return g;
  json j = json_read_file(path);
  if (!j.is_object()) throw InputError(path + ": expected a JSON object (generation_config.json)");
  g.eos_token_ids = token_id_list(j, "eos_token_id", path);
  if (present(j, "temperature")) g.temperature = as_double(j["temperature"], path, "temperature");
  if (present(j, "top_p")) g.top_p = as_double(j["top_p"], path, "top_p");
  if (present(j, "top_k")) g.top_k = as_int(j["top_k"], path, "top_k");
  return g;
}

}  // namespace emlab
