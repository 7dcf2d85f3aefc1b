// config.json / generation_config.json parsing with Hugging Face's defaults and clear errors.
// Both the classic keys (rope_theta, rope_scaling, torch_dtype) and the newer transformers ones
// (rope_parameters, dtype) are read; the classic keys win when both are present.
#include "emlab/hf_config.h"

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
  if (type != "llama3")
    throw InputError(source + ": " + field + " type \"" + type + "\" is not supported (supported: llama3)");
  RopeScaling s;
  s.type = type;
  auto num = [&](const char* key) {
    if (!present(rs, key)) throw InputError(source + ": " + field + " (llama3) is missing \"" + key + "\"");
    return as_double(rs[key], source, field + "." + key);
  };
  s.factor = num("factor");
  s.low_freq_factor = num("low_freq_factor");
  s.high_freq_factor = num("high_freq_factor");
  if (!present(rs, "original_max_position_embeddings"))
    throw InputError(source + ": " + field + " (llama3) is missing \"original_max_position_embeddings\"");
  s.original_max_position_embeddings = as_int(rs["original_max_position_embeddings"], source,
                                              field + ".original_max_position_embeddings");
  if (!(s.factor > 0) || !(s.low_freq_factor > 0) || s.original_max_position_embeddings <= 0)
    throw InputError(source + ": " + field + ": factor, low_freq_factor and "
                     "original_max_position_embeddings must be positive");
  // The smoothing between the two wavelength bands divides by (high - low).
  if (!(s.high_freq_factor > s.low_freq_factor))
    throw InputError(source + ": " + field + ": high_freq_factor (" + std::to_string(s.high_freq_factor) +
                     ") must be greater than low_freq_factor (" + std::to_string(s.low_freq_factor) + ")");
  return s;
}

}  // namespace

ModelConfig ModelConfig::from_json(const json& j, const std::string& source) {
  if (!j.is_object()) throw InputError(source + ": expected a JSON object (config.json)");
  ModelConfig c;
  c.raw = j;
  if (present(j, "model_type")) c.model_type = as_string(j["model_type"], source, "model_type");
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

  if (present(j, "rms_norm_eps")) {
    c.rms_norm_eps = as_double(j["rms_norm_eps"], source, "rms_norm_eps");
    if (!(c.rms_norm_eps > 0)) throw InputError(source + ": \"rms_norm_eps\" must be positive");
  }

  // Newer transformers nest rope_theta and the scaling in rope_parameters.
  const json* rope_params = present(j, "rope_parameters") ? &j["rope_parameters"] : nullptr;
  if (rope_params && !rope_params->is_object())
    throw InputError(source + ": \"rope_parameters\" must be an object");
  if (present(j, "rope_theta")) c.rope_theta = as_double(j["rope_theta"], source, "rope_theta");
  else if (rope_params && present(*rope_params, "rope_theta"))
    c.rope_theta = as_double((*rope_params)["rope_theta"], source, "rope_parameters.rope_theta");
  if (!(c.rope_theta > 0)) throw InputError(source + ": \"rope_theta\" must be positive");
  if (j.contains("rope_scaling")) c.rope_scaling = parse_rope_scaling(j["rope_scaling"], source, "rope_scaling");
  else if (rope_params) c.rope_scaling = parse_rope_scaling(*rope_params, source, "rope_parameters");

  if (present(j, "max_position_embeddings"))
    c.max_position_embeddings = required_positive(j, "max_position_embeddings", source);
  if (present(j, "tie_word_embeddings"))
    c.tie_word_embeddings = as_bool(j["tie_word_embeddings"], source, "tie_word_embeddings");
  if (present(j, "attention_bias"))
    c.attention_bias = as_bool(j["attention_bias"], source, "attention_bias");

  // Qwen2/Qwen3 carry a sliding_window value but disable it with use_sliding_window: false.
  bool use_sliding = true;
  if (present(j, "use_sliding_window"))
    use_sliding = as_bool(j["use_sliding_window"], source, "use_sliding_window");
  if (use_sliding && present(j, "sliding_window")) {
    c.sliding_window = as_int(j["sliding_window"], source, "sliding_window");
    if (*c.sliding_window <= 0)
      throw InputError(source + ": \"sliding_window\" must be positive or null, got " +
                       std::to_string(*c.sliding_window));
  }

  c.eos_token_ids = token_id_list(j, "eos_token_id", source);
  if (present(j, "bos_token_id")) c.bos_token_id = as_int(j["bos_token_id"], source, "bos_token_id");
  if (present(j, "torch_dtype")) c.torch_dtype = as_string(j["torch_dtype"], source, "torch_dtype");
  else if (present(j, "dtype")) c.torch_dtype = as_string(j["dtype"], source, "dtype");
  return c;
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
  j["rope_theta"] = rope_theta;
  json scaling = nullptr;
  if (rope_scaling) {
    scaling = {{"rope_type", rope_scaling->type},
               {"factor", rope_scaling->factor},
               {"low_freq_factor", rope_scaling->low_freq_factor},
               {"high_freq_factor", rope_scaling->high_freq_factor},
               {"original_max_position_embeddings", rope_scaling->original_max_position_embeddings}};
  }
  j["rope_scaling"] = scaling;
  if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) {
    // Keep the nested form consistent with the classic keys written above.
    json& rp = j["rope_parameters"];
    rp["rope_theta"] = rope_theta;
    if (rope_scaling) {
      for (auto it = scaling.begin(); it != scaling.end(); ++it) rp[it.key()] = it.value();
    } else {
      rp["rope_type"] = "default";
    }
  }
  j["max_position_embeddings"] = max_position_embeddings;
  j["tie_word_embeddings"] = tie_word_embeddings;
  if (attention_bias) j["attention_bias"] = *attention_bias;
  if (sliding_window) {
    j["sliding_window"] = *sliding_window;
    if (j.contains("use_sliding_window")) j["use_sliding_window"] = true;
  } else if (j.contains("sliding_window") || j.contains("use_sliding_window")) {
    j["sliding_window"] = nullptr;
  }
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
