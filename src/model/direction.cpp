// Direction files and the --steer / --ablate specs (see emlab/direction.h).
#include "emlab/direction.h"

#include <ATen/CPUGeneratorImpl.h>

#include <sstream>

#include "emlab/error.h"
#include "emlab/tensor_io.h"

using nlohmann::json;

namespace emlab {

namespace {

constexpr const char* kFormat = "emlab-direction/1";

void check_matrix(const torch::Tensor& t, const std::string& what) {
  if (t.dim() != 2 || t.size(0) < 1 || t.size(1) < 1)
    throw InputError(what + ": expected a (layers, hidden) matrix, got shape " + c10::str(t.sizes()));
}

}  // namespace

torch::Tensor Direction::at(int64_t layer, const std::string& source) const {
  if (layer < 0 || layer >= layers())
    throw InputError(source + ": no layer " + std::to_string(layer) + " (the direction has layers 0.." +
                     std::to_string(layers() - 1) + ")");
  return vectors[layer];
}

void direction_save(const std::string& path, const Direction& d) {
  check_matrix(d.vectors, path);
  Direction out = d;
  std::vector<double> norms;
  torch::Tensor n = d.vectors.to(torch::kCPU, torch::kFloat64).norm(2, {1});
  for (int64_t l = 0; l < n.size(0); ++l) norms.push_back(n[l].item<double>());
  out.info["norms"] = norms;
  std::map<std::string, torch::Tensor> tensors = {{"directions", d.vectors.to(torch::kCPU, torch::kFloat32)}};
  for (const auto& [name, t] : d.extra) {
    if (t.sizes() != d.vectors.sizes())
      throw Error(path + ": extra vectors '" + name + "' have shape " + c10::str(t.sizes()) + ", not " +
                  c10::str(d.vectors.sizes()));
    tensors[name] = t.to(torch::kCPU, torch::kFloat32);
  }
  tensors_save(path, tensors, {{"format", kFormat}, {"info", out.info.dump()}});
}

Direction direction_load(const std::string& path) {
  std::map<std::string, std::string> meta;
  auto tensors = tensors_load(path, &meta);
  if (meta["format"] != kFormat)
    throw InputError(path + ": not an emlab direction file (metadata format '" + meta["format"] + "', expected " +
                     kFormat + "; import other files with `emlab direction import`)");
  auto it = tensors.find("directions");
  if (it == tensors.end()) throw InputError(path + ": no tensor \"directions\"");
  Direction d;
  d.vectors = it->second.to(torch::kFloat32);
  check_matrix(d.vectors, path + ": tensor \"directions\"");
  for (auto& [name, t] : tensors) {
    if (name == "directions") continue;
    if (t.sizes() != d.vectors.sizes())
      throw InputError(path + ": tensor \"" + name + "\" has shape " + c10::str(t.sizes()) + ", expected " +
                       c10::str(d.vectors.sizes()));
    d.extra[name] = t.to(torch::kFloat32);
  }
  d.info = json::parse(meta["info"].empty() ? "{}" : meta["info"], nullptr, false);
  if (d.info.is_discarded() || !d.info.is_object()) throw InputError(path + ": metadata \"info\" is not a JSON object");
  return d;
}

LayerNumbering layer_numbering_from_name(const std::string& name) {
  if (name == "decoder") return LayerNumbering::Decoder;
  if (name == "hidden_states") return LayerNumbering::HiddenStates;
  throw InputError("layer numbering '" + name + "' (expected decoder or hidden_states)");
}

Direction direction_import(const std::string& path, const std::string& tensor, LayerNumbering numbering) {
  auto tensors = tensors_load(path);
  torch::Tensor t;
  if (tensor.empty()) {
    if (tensors.size() != 1)
      throw InputError(path + ": holds " + std::to_string(tensors.size()) + " tensors; name one (--tensor)");
    t = tensors.begin()->second;
  } else {
    auto it = tensors.find(tensor);
    if (it == tensors.end()) throw InputError(path + ": no tensor \"" + tensor + "\"");
    t = it->second;
  }
  check_matrix(t, path);
  Direction d;
  if (numbering == LayerNumbering::HiddenStates) {
    if (t.size(0) < 2) throw InputError(path + ": hidden_states numbering needs the embedding row and >= 1 layer");
    t = t.narrow(0, 1, t.size(0) - 1);  // row 0 is the embedding output
  }
  d.vectors = t.to(torch::kFloat32).contiguous();
  d.info = {{"imported_from", path},
            {"numbering", numbering == LayerNumbering::Decoder ? "decoder" : "hidden_states"}};
  return d;
}

SteerSpec steer_spec_parse(const std::string& text, bool ablate) {
  const std::string flag = ablate ? "--ablate" : "--steer";
  auto fail = [&](const std::string& what) -> void { throw InputError(flag + " '" + text + "': " + what); };
  std::vector<std::string> parts;
  std::stringstream ss(text);
  for (std::string p; std::getline(ss, p, ':');) parts.push_back(p);
  if (parts.empty() || parts[0].empty()) fail("expected FILE[:key=value...] or random:seed=N:like=FILE");
  SteerSpec s;
  s.ablate = ablate;
  size_t i = 0;
  if (parts[0] == "random") {
    s.random_seed = 0;  // set by seed=
    i = 1;
  } else {
    s.file = parts[0];
    i = 1;
  }
  bool seed_given = false;
  auto integer = [&](const std::string& key, const std::string& v) -> int64_t {
    size_t used = 0;
    int64_t x = 0;
    try {
      x = std::stoll(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != v.size()) fail(key + "=" + v + " is not an integer");
    return x;
  };
  for (; i < parts.size(); ++i) {
    const size_t eq = parts[i].find('=');
    if (eq == std::string::npos) fail("'" + parts[i] + "' is not key=value");
    const std::string key = parts[i].substr(0, eq), value = parts[i].substr(eq + 1);
    if (key == "layer") {
      if (ablate && value == "all") s.layer.reset();
      else s.layer = integer(key, value);
      if (s.layer && *s.layer < 0) fail("layer must be >= 0");
    } else if (key == "scale" && !ablate) {
      size_t used = 0;
      try {
        s.scale = std::stod(value, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != value.size()) fail("scale=" + value + " is not a number");
    } else if (key == "positions" && !ablate) {
      s.positions = hook_positions_from_name(value, flag + " '" + text + "'");
    } else if (key == "from" && ablate) {
      s.from = integer(key, value);
    } else if (key == "seed" && s.random_seed) {
      s.random_seed = static_cast<uint64_t>(integer(key, value));
      seed_given = true;
    } else if (key == "like" && s.random_seed) {
      s.file = value;
    } else {
      fail("unknown field '" + key + "' (" +
           std::string(ablate ? "layer=L|all, from=K" : "layer=L, scale=S, positions=all|prompt|response") +
           (s.random_seed ? ", seed=N, like=FILE" : "") + ")");
    }
  }
  if (s.random_seed && !seed_given) fail("random needs seed=N");
  if (s.file.empty()) fail("random needs like=FILE (the direction whose norms it copies)");
  return s;
}

std::string steer_spec_string(const SteerSpec& s) {
  std::ostringstream o;
  if (s.random_seed) o << "random:seed=" << *s.random_seed << ":like=" << s.file;
  else o << s.file;
  if (s.ablate) {
    o << ":layer=" << (s.layer ? std::to_string(*s.layer) : "all");
    if (s.from) o << ":from=" << *s.from;
  } else {
    if (s.layer) o << ":layer=" << *s.layer;
    o << ":scale=" << s.scale << ":positions=" << hook_positions_name(s.positions);
  }
  return o.str();
}

std::shared_ptr<ResidualHooks> steering_hooks(const std::vector<SteerSpec>& specs, int64_t layers, int64_t hidden,
                                              const torch::Device& device) {
  auto hooks = std::make_shared<ResidualHooks>();
  steering_hooks_add(specs, layers, hidden, device, hooks.get());
  return hooks;
}

void steering_hooks_add(const std::vector<SteerSpec>& specs, int64_t layers, int64_t hidden, const torch::Device& device,
                        ResidualHooks* hooks) {
  std::map<std::string, Direction> files;
  for (const auto& s : specs) {
    const std::string where = (s.ablate ? "--ablate " : "--steer ") + steer_spec_string(s);
    auto it = files.find(s.file);
    if (it == files.end()) it = files.emplace(s.file, direction_load(s.file)).first;
    const Direction& d = it->second;
    if (d.hidden() != hidden)
      throw InputError(where + ": the direction has width " + std::to_string(d.hidden()) + " but the model's hidden_size is " +
                       std::to_string(hidden));
    if (d.layers() != layers)
      throw InputError(where + ": the direction has " + std::to_string(d.layers()) + " layers but the model has " +
                       std::to_string(layers));
    auto gen = at::make_generator<at::CPUGeneratorImpl>(s.random_seed.value_or(0));
    auto gaussian = [&]() { return torch::randn({hidden}, gen, torch::TensorOptions().dtype(torch::kFloat32)); };
    if (!s.ablate) {
      int64_t layer = -1;
      if (s.layer) layer = *s.layer;
      else if (d.info.contains("best_layer") && d.info["best_layer"].is_number_integer()) layer = d.info["best_layer"];
      else throw InputError(where + ": give :layer=L (the file names no best_layer)");
      torch::Tensor v = d.at(layer, where);
      if (s.random_seed) {
        torch::Tensor g = gaussian();
        v = g * (v.norm() / g.norm());
      }
      hooks->add(HookSite::LayerOutput, layer, v.to(device), s.scale, s.positions);
    } else {
      if (s.layer && *s.layer >= layers)
        throw InputError(where + ": no layer " + std::to_string(*s.layer) + " (the model has " + std::to_string(layers) + ")");
      const int64_t first = s.layer ? *s.layer : 0, last = s.layer ? *s.layer : layers - 1;
      // The random control draws one direction when a single one (from=K) is projected out.
      const torch::Tensor shared = s.random_seed && s.from ? gaussian() : torch::Tensor();
      for (int64_t l = first; l <= last; ++l) {
        torch::Tensor u = shared.defined() ? shared : s.random_seed ? gaussian() : d.at(s.from.value_or(l), where);
        if (u.norm().item<double>() == 0.0) continue;  // nothing to project out
        hooks->ablate(u.to(device), l, HookSite::LayerOutput);
      }
    }
  }
}

}  // namespace emlab
