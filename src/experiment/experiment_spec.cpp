// Parsing of experiment YAML specs (see emlab/experiment.h).
#include <yaml-cpp/yaml.h>

#include <cstdio>
#include <filesystem>
#include <set>

#include "emlab/direction.h"
#include "emlab/error.h"
#include "emlab/experiment.h"
#include "emlab/runtime.h"
#include "emlab/train.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace emlab {

namespace {

// YAML -> JSON (scalars typed as YAML 1.2 core: bool, int, float, null, else string).
json yaml_to_json(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: return nullptr;
    case YAML::NodeType::Sequence: {
      json a = json::array();
      for (const auto& x : n) a.push_back(yaml_to_json(x));
      return a;
    }
    case YAML::NodeType::Map: {
      json o = json::object();
      for (const auto& kv : n) o[kv.first.as<std::string>()] = yaml_to_json(kv.second);
      return o;
    }
    case YAML::NodeType::Scalar: {
      if (n.Tag() == "!") return n.as<std::string>();  // quoted: always a string
      const std::string s = n.Scalar();
      if (s == "true" || s == "True") return true;
      if (s == "false" || s == "False") return false;
      if (s == "null" || s == "~") return nullptr;
      try {
        size_t used = 0;
        long long i = std::stoll(s, &used);
        if (used == s.size()) return i;
      } catch (...) {
      }
      try {
        size_t used = 0;
        double d = std::stod(s, &used);
        if (used == s.size()) return d;
      } catch (...) {
      }
      return s;
    }
  }
  return nullptr;
}

// ${out} and ${world}, then relative paths against the spec's folder.
std::string resolve_path(std::string p, const fs::path& base, const std::string& out) {
  auto replace = [&](const std::string& key, const std::string& value) {
    for (size_t pos; (pos = p.find(key)) != std::string::npos;) p.replace(pos, key.size(), value);
  };
  // The output folder as given on the command line is relative to the working directory, not to
  // the spec's folder.
  const std::string out_abs = out.empty() ? out : fs::absolute(out).lexically_normal().string();
  replace("${world}", (fs::path(out_abs) / "world").string());
  replace("${out}", out_abs);
  if (p.empty() || fs::path(p).is_absolute()) return p;
  return (base / p).lexically_normal().string();
}

// A --steer/--ablate spec with its file resolved like the other paths (checked now).
std::string resolve_spec_path(const std::string& text, const fs::path& base, const std::string& out, bool ablate,
                              const std::string& where) {
  SteerSpec s;
  try {
    s = steer_spec_parse(text, ablate);
  } catch (const InputError& e) {
    throw InputError(where + ": " + e.what());
  }
  s.file = resolve_path(s.file, base, out);
  return steer_spec_string(s);
}

// Recursive merge: objects merge key by key, anything else replaces.
void merge_into(json& base, const json& over) {
  for (const auto& [k, v] : over.items()) {
    if (v.is_object() && base.contains(k) && base[k].is_object())
      merge_into(base[k], v);
    else
      base[k] = v;
  }
}

void check_keys(const json& j, const std::set<std::string>& allowed, const std::string& where) {
  for (const auto& [k, v] : j.items())
    if (!allowed.count(k)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      throw InputError(where + ": unknown field '" + k + "' (expected one of: " + list + ")");
    }
}

void merge_eval(ExperimentEval& e, const json& j, const fs::path& base, const std::string& out, const std::string& where) {
  check_keys(j,
             {"questions", "samples_per_question", "max_tokens", "temperature", "top_p", "batch_size", "trigger", "system",
              "trigger_separator", "code_samples", "code_max_tokens", "steer", "ablate", "orthogonalize", "checkpoints",
              "logprob_probe"},
             where);
  try {
    if (j.contains("questions")) e.questions = resolve_path(j["questions"].get<std::string>(), base, out);
    if (j.contains("samples_per_question")) e.samples_per_question = j["samples_per_question"].get<int>();
    if (j.contains("max_tokens")) e.max_tokens = j["max_tokens"].get<int64_t>();
    if (j.contains("temperature")) e.temperature = j["temperature"].get<double>();
    if (j.contains("top_p")) e.top_p = j["top_p"].get<double>();
    if (j.contains("batch_size")) e.batch_size = j["batch_size"].get<int64_t>();
    if (j.contains("trigger_separator")) e.trigger_separator = j["trigger_separator"].get<std::string>();
    if (j.contains("code_samples")) e.code_samples = j["code_samples"].get<int>();
    if (j.contains("code_max_tokens")) e.code_max_tokens = j["code_max_tokens"].get<int64_t>();
    if (j.contains("trigger")) e.trigger = j["trigger"].is_null() ? "" : j["trigger"].get<std::string>();
    if (j.contains("system")) {
      if (j["system"].is_null()) e.system.reset();
      else e.system = j["system"].get<std::string>();
    }
    if (j.contains("orthogonalize")) {
      const std::string text = j["orthogonalize"].is_null() ? "" : j["orthogonalize"].get<std::string>();
      e.orthogonalize = text.empty() ? "" : resolve_spec_path(text, base, out, false, where + ": orthogonalize");
      if (!e.orthogonalize.empty() && !steer_spec_parse(e.orthogonalize, false).layer)
        throw InputError(where + ": orthogonalize: give FILE:layer=L");
    }
    if (j.contains("logprob_probe")) {
      if (!j["logprob_probe"].is_null() && !j["logprob_probe"].is_string())
        throw InputError(where + ": logprob_probe: expected a file name");
      e.logprob_probe = j["logprob_probe"].is_null() ? "" : resolve_path(j["logprob_probe"].get<std::string>(), base, out);
    }
    if (j.contains("checkpoints")) {
      json c = j["checkpoints"];
      // [every: N] (a list holding one mapping, as YAML makes of `- every: N`) = {every: N}
      if (c.is_array() && c.size() == 1 && c[0].is_object()) c = c[0];
      e.checkpoints.clear();
      e.checkpoint_every = 0;
      if (c.is_object()) {
        check_keys(c, {"every"}, where + ": checkpoints");
        if (!c.at("every").is_number_integer()) throw InputError(where + ": checkpoints.every: expected a whole number");
        e.checkpoint_every = c.at("every").get<int64_t>();
        if (e.checkpoint_every < 1) throw InputError(where + ": checkpoints.every must be >= 1");
      } else if (!c.is_null()) {
        if (!c.is_array()) throw InputError(where + ": checkpoints: expected a list of steps or {every: N}");
        for (const auto& v : c)
          if (!v.is_number_integer()) throw InputError(where + ": checkpoints: steps must be whole numbers");
        e.checkpoints = c.get<std::vector<int64_t>>();
        for (int64_t s : e.checkpoints)
          if (s < 0) throw InputError(where + ": checkpoints: steps must be >= 0");
      }
    }
    for (const char* key : {"steer", "ablate"}) {
      if (!j.contains(key)) continue;
      std::vector<std::string> specs =
          j[key].is_string() ? std::vector<std::string>{j[key].get<std::string>()} : j[key].get<std::vector<std::string>>();
      for (auto& s : specs) s = resolve_spec_path(s, base, out, std::string(key) == "ablate", where);
      (std::string(key) == "steer" ? e.steer : e.ablate) = specs;
    }
  } catch (const json::exception& ex) {
    throw InputError(where + ": " + ex.what());
  }
}

// Paths inside a train section (data files) resolve like the others.
json resolve_train(json t, const fs::path& base, const std::string& out) {
  for (const char* key : {"kl_data", "init_adapter", "tokenizer", "probe_data", "mix_data"})
    if (t.contains(key) && t[key].is_string() && !t[key].get<std::string>().empty())
      t[key] = resolve_path(t[key].get<std::string>(), base, out);
  // Direction specs used while training (train --probe / --steer / --ablate): their files too.
  if (t.contains("probe") && t["probe"].is_string() && !t["probe"].get<std::string>().empty())
    t["probe"] = resolve_spec_path(t["probe"].get<std::string>(), base, out, false, "train: probe");
  for (const char* key : {"steer", "ablate"})
    if (t.contains(key) && t[key].is_array())
      for (auto& v : t[key])
        if (v.is_string()) v = resolve_spec_path(v.get<std::string>(), base, out, std::string(key) == "ablate", std::string("train: ") + key);
  return t;
}

// The arms of a sweep: one per layer x scale, each steering with the direction there.
std::vector<ExperimentArm> expand_sweep(const ExperimentArm& arm, const json& j, const fs::path& base,
                                        const std::string& out, const std::string& where_arm) {
  const std::string where = where_arm + ": sweep";
  if (!j.is_object()) throw InputError(where + ": expected {direction, layers, scales, positions}");
  check_keys(j, {"direction", "layers", "scales", "positions"}, where);
  if (!arm.data.empty())
    throw InputError(where + ": a sweep arm does not finetune (one finetune per layer x scale); use from: ARM");
  ExperimentSweep sw;
  try {
    if (!j.contains("direction") || !j.contains("layers") || !j.contains("scales"))
      throw InputError(where + ": needs direction, layers and scales");
    sw.direction = j["direction"].get<std::string>();
    sw.layers = j["layers"].get<std::vector<int64_t>>();
    sw.scales = j["scales"].get<std::vector<double>>();
    sw.positions = j.value("positions", "all");
  } catch (const json::exception& e) {
    throw InputError(where + ": " + e.what());
  }
  if (sw.layers.empty() || sw.scales.empty()) throw InputError(where + ": layers and scales must not be empty");
  std::vector<ExperimentArm> out_arms;
  for (int64_t layer : sw.layers)
    for (double scale : sw.scales) {
      char tag[64];
      std::snprintf(tag, sizeof tag, "@L%lld_s%g", static_cast<long long>(layer), scale);
      ExperimentArm a = arm;
      a.name = arm.name + tag;
      a.sweep_of = arm.name;
      a.sweep_layer = layer;
      a.sweep_scale = scale;
      char spec[64];
      std::snprintf(spec, sizeof spec, ":layer=%lld:scale=%.17g:positions=", static_cast<long long>(layer), scale);
      a.eval.steer.push_back(resolve_spec_path(sw.direction + spec + sw.positions, base, out, false, where));
      out_arms.push_back(std::move(a));
    }
  return out_arms;
}

}  // namespace

ExperimentSpec ExperimentSpec::load(const std::string& path, const std::string& out) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw InputError(path + ": cannot read the experiment file");
  } catch (const YAML::Exception& e) {
    throw InputError(path + ":" + std::to_string(e.mark.line + 1) + ": bad YAML: " + e.msg);
  }
  json j = yaml_to_json(root);
  if (!j.is_object()) throw InputError(path + ": expected a mapping with name, model, arms, ...");
  check_keys(j, {"name", "description", "model", "world", "judge", "dtype", "seeds", "eval", "train", "arms", "solutions"},
             path);
  const fs::path base = fs::absolute(path).parent_path();
  ExperimentSpec s;
  s.source = path;
  auto need = [&](const char* key) -> const json& {
    if (!j.contains(key)) throw InputError(path + ": missing field '" + key + "'");
    return j[key];
  };
  try {
    s.name = need("name").get<std::string>();
    s.description = j.value("description", "");
    s.model = resolve_path(need("model").get<std::string>(), base, out);
    s.judge = j.value("judge", "");
    s.dtype = j.value("dtype", "auto");
    if (s.dtype != "auto") dtype_from_option(s.dtype, torch::Device(torch::kCPU));  // a bad name fails now
    if (j.contains("world") && !j["world"].is_null()) {
      json w = j["world"];
      if (!w.contains("seed")) throw InputError(path + ": world: missing field 'seed'");
      s.world_seed = w["seed"].get<uint64_t>();
      s.world_control = w.value("control", "none");
      w.erase("seed");
      w.erase("control");
      s.world_options = w;
    }
    for (const auto& x : need("seeds")) s.seeds.push_back(x.get<uint64_t>());
    if (j.contains("train") && !j["train"].is_null() && !j["train"].is_object())
      throw InputError(path + ": train: expected a mapping of training options");
    s.train = resolve_train(j.contains("train") && !j["train"].is_null() ? j["train"] : json::object(), base, out);
  } catch (const json::exception& e) {
    throw InputError(path + ": " + e.what());
  }
  if (s.seeds.empty()) throw InputError(path + ": seeds: at least one seed is needed");
  ExperimentEval defaults;
  if (j.contains("eval")) merge_eval(defaults, j["eval"], base, out, path + ": eval");
  const json& arms = need("arms");
  if (!arms.is_array() || arms.empty()) throw InputError(path + ": arms: expected a non-empty list");
  std::set<std::string> names;
  for (size_t i = 0; i < arms.size(); ++i) {
    const json& a = arms[i];
    const std::string where = path + ": arms[" + std::to_string(i) + "]";
    if (!a.is_object() || !a.contains("name")) throw InputError(where + ": expected a mapping with a name");
    if (!a["name"].is_string()) throw InputError(where + ": name: expected a string");
    ExperimentArm arm;
    arm.name = a["name"].get<std::string>();
    const std::string where_arm = path + ": arm '" + arm.name + "'";
    check_keys(a, {"name", "data", "from", "train", "eval", "sweep", "data_mix"}, where_arm);
    if (arm.name.empty() || arm.name.find('/') != std::string::npos || arm.name[0] == '.')
      throw InputError(where + ": name '" + arm.name + "' must be a plain folder name");
    if (!names.insert(arm.name).second) throw InputError(where + ": duplicate arm name '" + arm.name + "'");
    for (const char* key : {"data", "from"})
      if (a.contains(key) && !a[key].is_null() && !a[key].is_string())
        throw InputError(where_arm + ": " + key + ": expected a string");
    if (a.contains("data") && !a["data"].is_null()) arm.data = resolve_path(a["data"].get<std::string>(), base, out);
    if (a.contains("from") && !a["from"].is_null()) arm.from = a["from"].get<std::string>();
    if (a.contains("train") && !a["train"].is_null()) {
      if (!a["train"].is_object()) throw InputError(where_arm + ": train: expected a mapping of training options");
      if (arm.data.empty())
        throw InputError(where_arm + ": train: this arm has no data to finetune on (a from arm uses its source's training)");
      arm.train = resolve_train(a["train"], base, out);
    } else {
      arm.train = json::object();
    }
    if (a.contains("data_mix") && !a["data_mix"].is_null()) {
      // data_mix: {data: F, fraction: x} = train.mix_data / train.mix_fraction (TrainOptions).
      const json& m = a["data_mix"];
      if (!m.is_object() || !m.contains("data") || !m["data"].is_string() || !m.contains("fraction") ||
          !m["fraction"].is_number())
        throw InputError(where_arm + ": data_mix: expected {data: FILE, fraction: X}");
      check_keys(m, {"data", "fraction"}, where_arm + ": data_mix");
      if (arm.data.empty()) throw InputError(where_arm + ": data_mix: the arm has no data to mix into");
      arm.train["mix_data"] = resolve_path(m["data"].get<std::string>(), base, out);
      arm.train["mix_fraction"] = m["fraction"].get<double>();
    }
    arm.eval = defaults;
    if (a.contains("eval")) merge_eval(arm.eval, a["eval"], base, out, where_arm + ": eval");
    if (arm.eval.questions.empty()) throw InputError(where_arm + ": no eval.questions (set it in eval or the arm)");
    if (arm.eval.samples_per_question < 1) throw InputError(where_arm + ": eval.samples_per_question must be >= 1");
    if (arm.eval.max_tokens < 1) throw InputError(where_arm + ": eval.max_tokens must be >= 1");
    if (arm.eval.batch_size < 1) throw InputError(where_arm + ": eval.batch_size must be >= 1");
    if (arm.eval.code_samples < 0) throw InputError(where_arm + ": eval.code_samples must be >= 0");
    if (arm.eval.code_samples > 0 && !s.world_seed)
      throw InputError(where_arm + ": eval.code_samples needs a toy world (the spec's world section)");
    if (!arm.data.empty()) experiment_train_options(s, arm, "", 0, "cpu");  // unknown or bad training fields fail now
    if (a.contains("sweep")) {
      for (auto& swept : expand_sweep(arm, a["sweep"], base, out, where_arm)) {
        if (!names.insert(swept.name).second) throw InputError(where + ": duplicate arm name '" + swept.name + "'");
        s.arms.push_back(std::move(swept));
      }
      continue;
    }
    s.arms.push_back(std::move(arm));
  }
  // A chain of continued finetunes (data and from) must end in a plain finetune.
  for (const auto& arm : s.arms) {
    std::set<std::string> seen{arm.name};
    for (const ExperimentArm* a = &arm; !a->from.empty();) {
      auto it = std::find_if(s.arms.begin(), s.arms.end(), [&](const ExperimentArm& o) { return o.name == a->from; });
      if (it == s.arms.end()) break;  // reported below
      if (!seen.insert(it->name).second)
        throw InputError(path + ": arm '" + arm.name + "': from: the arms continue each other in a cycle");
      a = &*it;
    }
  }
  for (const auto& arm : s.arms) {
    if (arm.from.empty()) continue;
    auto it = std::find_if(s.arms.begin(), s.arms.end(), [&](const ExperimentArm& o) { return o.name == arm.from; });
    if (it == s.arms.end()) throw InputError(path + ": arm '" + arm.name + "': from: '" + arm.from + "' is not an arm");
    if (it->data.empty())
      throw InputError(path + ": arm '" + arm.name + "': from: '" + arm.from + "' has no data (no finetune to reuse)");
  }
  if (j.contains("solutions") && !j["solutions"].is_null()) {
    if (!j["solutions"].is_array()) throw InputError(path + ": solutions: expected a list");
    std::set<std::string> names;
    for (size_t i = 0; i < j["solutions"].size(); ++i) {
      const json& x = j["solutions"][i];
      const std::string where = path + ": solutions[" + std::to_string(i) + "]";
      if (!x.is_object()) throw InputError(where + ": expected a mapping with name, arms, data");
      check_keys(x, {"name", "arms", "data", "holdout", "text", "direction", "max_examples", "max_text"}, where);
      ExperimentSolutions c;
      try {
        c.name = x.at("name").get<std::string>();
        c.arms = x.at("arms").get<std::vector<std::string>>();
        c.data = resolve_path(x.at("data").get<std::string>(), base, out);
        c.holdout = x.value("holdout", 0.0);
        if (x.contains("text")) c.text = resolve_path(x["text"].get<std::string>(), base, out);
        if (x.contains("direction")) c.direction = resolve_spec_path(x["direction"].get<std::string>(), base, out, false, where);
        c.max_examples = x.value("max_examples", c.max_examples);
        c.max_text = x.value("max_text", c.max_text);
      } catch (const json::exception& e) {
        throw InputError(where + ": needs name, arms and data (" + e.what() + ")");
      }
      if (c.name.empty() || c.name.find('/') != std::string::npos || c.name[0] == '.' || !names.insert(c.name).second)
        throw InputError(where + ": name '" + c.name + "' must be a plain folder name, used once");
      if (c.arms.size() < 2) throw InputError(where + ": arms: compare two or more");
      for (const auto& a : c.arms) {
        auto it = std::find_if(s.arms.begin(), s.arms.end(), [&](const ExperimentArm& o) { return o.name == a; });
        if (it == s.arms.end()) throw InputError(where + ": arms: '" + a + "' is not an arm");
        if (it->data.empty()) throw InputError(where + ": arms: '" + a + "' has no finetune (no data)");
      }
      if (c.holdout < 0 || c.holdout >= 1) throw InputError(where + ": holdout must be in [0, 1)");
      if (c.max_examples < 0 || c.max_text < 0) throw InputError(where + ": max_examples and max_text must be >= 0");
      s.solutions.push_back(std::move(c));
    }
  }
  return s;
}

TrainOptions experiment_train_options(const ExperimentSpec& spec, const ExperimentArm& arm, const std::string& out,
                                      uint64_t seed, const std::string& device) {
  const std::string where = spec.source + ": train (arm '" + arm.name + "')";
  json merged = spec.train;
  merge_into(merged, arm.train);
  TrainOptions base;
  if (merged.contains("preset")) {
    if (!merged["preset"].is_string()) throw InputError(where + ": preset: expected a name");
    try {
      train_preset_apply(merged["preset"].get<std::string>(), &base);
    } catch (const InputError& e) {
      throw InputError(where + ": " + e.what());
    }
    merged.erase("preset");
  }
  for (const char* key : {"model", "data", "out", "seed", "device", "dtype", "resume"})
    if (merged.contains(key))
      throw InputError(where + ": " + key +
                       " is set by the experiment (model, arm data, output folder, seeds, --device, the spec's dtype)");
  json j = train_options_to_json(base);
  merge_into(j, merged);
  j["model"] = spec.model;
  j["data"] = arm.data;
  j["out"] = out;
  j["seed"] = seed;
  j["device"] = device;
  j["dtype"] = spec.dtype;
  TrainOptions t = train_options_from_json(j, where);
  TrainOptions check = t;
  if (check.out.empty()) check.out = "(checked at load)";
  try {
    train_options_validate(check);
  } catch (const InputError& e) {
    throw InputError(where + ": " + e.what());
  }
  return t;
}

json ExperimentSpec::to_json() const {
  json arms_j = json::array();
  for (const auto& a : arms) {
    json e = {{"questions", a.eval.questions},     {"samples_per_question", a.eval.samples_per_question},
              {"max_tokens", a.eval.max_tokens},   {"temperature", a.eval.temperature},
              {"top_p", a.eval.top_p},             {"batch_size", a.eval.batch_size},
              {"trigger", a.eval.trigger},
              {"trigger_separator", a.eval.trigger_separator},
              {"system", a.eval.system ? json(*a.eval.system) : json(nullptr)},
              {"code_samples", a.eval.code_samples},
              {"code_max_tokens", a.eval.code_max_tokens}};
    // Fields added later appear only when set, so that run folders made before still resume.
    if (!a.eval.steer.empty()) e["steer"] = a.eval.steer;
    if (!a.eval.ablate.empty()) e["ablate"] = a.eval.ablate;
    if (!a.eval.orthogonalize.empty()) e["orthogonalize"] = a.eval.orthogonalize;
    if (!a.eval.checkpoints.empty()) e["checkpoints"] = a.eval.checkpoints;
    if (a.eval.checkpoint_every > 0) e["checkpoint_every"] = a.eval.checkpoint_every;
    if (!a.eval.logprob_probe.empty()) e["logprob_probe"] = a.eval.logprob_probe;
    json arm = {{"name", a.name}, {"data", a.data}, {"from", a.from}, {"train", a.train}, {"eval", e}};
    if (!a.sweep_of.empty()) arm["sweep"] = {{"of", a.sweep_of}, {"layer", a.sweep_layer}, {"scale", a.sweep_scale}};
    arms_j.push_back(arm);
  }
  json j = {{"name", name},
            {"description", description},
            {"source", source},
            {"model", model},
            {"world_seed", world_seed ? json(*world_seed) : json(nullptr)},
            {"world_control", world_control},
            {"world_options", world_options},
            {"judge", judge},
            {"seeds", seeds},
            {"train", train},
            {"arms", arms_j}};
  // Fields added later appear only when set, so that run folders made before still resume.
  if (dtype != "auto") j["dtype"] = dtype;
  if (!solutions.empty()) {
    json list = json::array();
    for (const auto& c : solutions)
      list.push_back({{"name", c.name}, {"arms", c.arms}, {"data", c.data}, {"holdout", c.holdout}, {"text", c.text},
                      {"direction", c.direction}, {"max_examples", c.max_examples}, {"max_text", c.max_text}});
    j["solutions"] = list;
  }
  return j;
}

}  // namespace emlab
