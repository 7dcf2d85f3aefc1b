// Comparing trained solutions: loss, efficiency, stability, influence, direction (see emlab/solutions.h).
#include "emlab/solutions.h"

#include <cmath>
#include <filesystem>
#include <sstream>

#include "emlab/batch.h"
#include "emlab/chat_model.h"
#include "emlab/file_util.h"
#include "emlab/error.h"
#include "emlab/hash.h"
#include "emlab/model.h"
#include "emlab/peft.h"
#include "emlab/progress.h"

namespace fs = std::filesystem;

namespace emlab {

namespace {

// Adds a vector at one site of one layer (a steering-vector solution), then runs `inner`.
class AddVector : public Hooks {
 public:
  AddVector(HookSite site, int64_t layer, torch::Tensor v) : site_(site), layer_(layer), v_(std::move(v)) {}
  torch::Tensor apply(HookSite site, int64_t layer, torch::Tensor h) override {
    if (site == site_ && layer == layer_) h = h + v_.to(h.device(), h.scalar_type());
    return h;
  }

 private:
  HookSite site_;
  int64_t layer_;
  torch::Tensor v_;  // (C)
};

// Runs `inner` (may be null), then sums the residual stream at one layer's output over the
// batch's target positions (the tokens whose activations are averaged: mask = 1).
class CaptureMean : public Hooks {
 public:
  CaptureMean(Hooks* inner, int64_t layer, int64_t hidden)
      : inner_(inner), layer_(layer), sum_(torch::zeros({hidden}, torch::kFloat64)) {}
  void set_mask(torch::Tensor mask) { mask_ = std::move(mask); }  // (B, T) float32
  torch::Tensor apply(HookSite site, int64_t layer, torch::Tensor h) override {
    if (inner_) h = inner_->apply(site, layer, h);
    if (site == HookSite::LayerOutput && layer == layer_) {
      torch::NoGradGuard no_grad;
      torch::Tensor m = mask_.to(h.device(), torch::kFloat32);                       // (B, T)
      sum_ += torch::einsum("bt,btc->c", {m, h.detach().to(torch::kFloat32)}).to(torch::kCPU, torch::kFloat64);
      count_ += static_cast<int64_t>(m.sum().item<double>());
    }
    return h;
  }
  torch::Tensor mean() const { return count_ > 0 ? (sum_ / static_cast<double>(count_)).to(torch::kFloat32) : sum_.to(torch::kFloat32); }

 private:
  Hooks* inner_;
  int64_t layer_;
  torch::Tensor sum_;  // (C) float64
  int64_t count_ = 0;
  torch::Tensor mask_;
};

// Forward arguments with the solution on at `multiplier` (hooks owned by *hook), or off.
ForwardArgs solution_forward_args(CausalLM& model, const Solution* s, double multiplier, std::unique_ptr<Hooks>* hook) {
  ForwardArgs args;
  args.adapters = false;
  if (!s || multiplier == 0.0) return args;
  if (s->lora) {
    s->adapters->multiplier = multiplier;
    s->adapters->training = false;
    model.set_lora(s->adapters);
    args.adapters = true;
  } else {
    *hook = std::make_unique<AddVector>(s->steer.site, s->steer.layer,
                                        (multiplier * s->steer.scale * s->steer.vector).to(torch::kFloat32));
    args.hooks = hook->get();
  }
  return args;
}

template <typename F>
void for_batches(const SftDataset& data, int64_t batch_size, const torch::Device& device, F&& fn) {
  const int64_t n = static_cast<int64_t>(data.examples.size());
  for (int64_t b = 0; b < n; b += batch_size) {
    std::vector<int64_t> rows;
    for (int64_t k = b; k < std::min(n, b + batch_size); ++k) rows.push_back(k);
    fn(collate(data, rows, device));
  }
}

}  // namespace

Solution solution_load(const std::string& dir, const CausalLM& model) {
  Solution s;
  s.dir = dir;
  fs::path p = fs::path(dir).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  s.name = p.filename().string();
  // emlab run's layout, arms/<arm>/seed-<s>/adapter: name it <arm>/seed-<s>.
  if (s.name == "adapter" && p.parent_path().filename().string().rfind("seed-", 0) == 0)
    s.name = p.parent_path().parent_path().filename().string() + "/" + p.parent_path().filename().string();
  if (steering_exists(dir)) {
    s.steer = steering_load(dir, model.config().hidden_size);
    s.steer.vector = s.steer.vector.to(torch::kFloat32);
    if (s.steer.layer < 0 || s.steer.layer >= model.config().num_hidden_layers)
      throw InputError(dir + ": steering vector at layer " + std::to_string(s.steer.layer) + ", the model has " +
                       std::to_string(model.config().num_hidden_layers));
  } else if (fs::exists(fs::path(dir) / "adapter_config.json")) {
    s.lora = true;
    s.adapters = peft_load(dir, model).lora;
  } else {
    throw InputError(dir + ": neither a steering vector (steering_vector.json) nor a LoRA adapter (adapter_config.json)");
  }
  return s;
}

torch::Tensor solution_vector(const Solution& s) {
  if (!s.lora) return (s.steer.scale * s.steer.vector).to(torch::kCPU, torch::kFloat32).reshape({-1});
  std::vector<torch::Tensor> parts;
  for (const auto& [name, m] : s.adapters->modules) parts.push_back((m.scale * m.B).to(torch::kCPU, torch::kFloat32).reshape({-1}));
  return torch::cat(parts);
}

void solution_set_vector(Solution& s, const torch::Tensor& x) {
  const torch::Tensor flat = x.to(torch::kCPU, torch::kFloat32).reshape({-1});
  const int64_t size = solution_vector(s).numel();
  if (flat.numel() != size)
    throw InputError(s.dir + ": a vector of " + std::to_string(flat.numel()) + " values for a solution of " +
                     std::to_string(size));
  if (!s.lora) {
    s.steer.vector = (flat / s.steer.scale).to(s.steer.vector.device());
    return;
  }
  int64_t at = 0;
  for (auto& [name, m] : s.adapters->modules) {
    const int64_t n = m.B.numel();
    m.B = (flat.narrow(0, at, n) / m.scale).reshape(m.B.sizes()).to(m.B.device(), m.B.scalar_type());
    at += n;
  }
}

double solution_norm(const Solution& s) {
  if (!s.lora) return solution_vector(s).norm().item<double>();
  double sq = 0;
  for (const auto& [name, m] : s.adapters->modules) {
    torch::Tensor dw = torch::matmul(m.B.to(torch::kFloat64), m.A.to(torch::kFloat64)) * m.scale;  // (out, in)
    sq += dw.pow(2).sum().item<double>();
  }
  return std::sqrt(sq);
}

torch::Tensor solution_perturb(const torch::Tensor& x, double eps, uint64_t seed) {
  torch::Tensor xf = x.to(torch::kFloat64).reshape({-1});
  auto gen = at::detail::createCPUGenerator(seed);
  torch::Tensor y = at::normal(0.0, 1.0, {xf.numel()}, gen, torch::TensorOptions().dtype(torch::kFloat64));
  const double xx = torch::dot(xf, xf).item<double>();
  if (xx > 0) y = y - torch::dot(y, xf) / xx * xf;  // orthogonal to x
  y = y * (std::sqrt(xx) / std::max(1e-300, y.norm().item<double>()));
  return (std::sqrt(std::max(0.0, 1.0 - eps * eps)) * xf + eps * y).to(torch::kFloat32).reshape(x.sizes());
}

double solution_loss(CausalLM& model, const Solution* s, double multiplier, const SftDataset& data, int64_t batch_size) {
  torch::NoGradGuard no_grad;
  std::unique_ptr<Hooks> hook;
  const ForwardArgs args = solution_forward_args(model, s, multiplier, &hook);
  double sum = 0, n = 0;
  for_batches(data, batch_size, model.device(), [&](const Batch& b) {
    sum += sft_loss_sum(model, b, args).item<double>();
    n += static_cast<double>(b.targets);
  });
  if (n == 0) throw InputError("no target tokens to compute a loss on");
  return sum / n;
}

double solution_kl(CausalLM& model, const Solution& s, double multiplier, const SftDataset& data, int64_t batch_size) {
  torch::NoGradGuard no_grad;
  std::unique_ptr<Hooks> hook;
  const ForwardArgs args = solution_forward_args(model, &s, multiplier, &hook);
  ForwardArgs ref;
  ref.adapters = false;
  double sum = 0, n = 0;
  for_batches(data, batch_size, model.device(), [&](const Batch& b) {
    sum += kl_sum(model, b, args, ref).item<double>();
    n += static_cast<double>(b.targets);
  });
  if (n == 0) throw InputError("no target tokens to compute a KL on");
  return sum / n;
}

std::vector<SolutionResult> solutions_compare(CausalLM& model, std::vector<Solution>& solutions, const SftDataset& narrow,
                                              const SftDataset& text, const Direction* direction,
                                              const SolutionsCompareOptions& o) {
  if (solutions.size() < 1) throw InputError("solutions compare: no solution given");
  for (const auto& s : solutions)
    if (s.lora != solutions[0].lora)
      throw InputError(s.dir + ": solutions of one kind only (" + solutions[0].dir + " is a " +
                       (solutions[0].lora ? "LoRA adapter" : "steering vector") + ")");
  double target = o.norm;
  if (target <= 0) {
    for (const auto& s : solutions) target += solution_norm(s);
    target /= static_cast<double>(solutions.size());
  }
  int64_t layer = o.direction_layer;
  torch::Tensor unit;
  if (direction) {
    if (layer < 0)
      layer = direction->info.contains("best_layer") && direction->info["best_layer"].is_number_integer()
                  ? direction->info["best_layer"].get<int64_t>()
                  : direction->layers() / 2;
    unit = direction->at(layer, "the direction").to(torch::kFloat32);
    if (unit.numel() != model.config().hidden_size)
      throw InputError("the direction's width " + std::to_string(unit.numel()) + " is not the model's " +
                       std::to_string(model.config().hidden_size));
    unit = unit / unit.norm();
  }
  // The mean residual at `layer` over the narrow data's target tokens, with the solution at m.
  auto mean_residual = [&](const Solution* s, double m) {
    torch::NoGradGuard no_grad;
    std::unique_ptr<Hooks> hook;
    ForwardArgs args = solution_forward_args(model, s, m, &hook);
    CaptureMean capture(args.hooks, layer, model.config().hidden_size);
    args.hooks = &capture;
    args.last_logits_only = true;
    for_batches(narrow, o.batch_size, model.device(), [&](const Batch& b) {
      torch::Tensor mask = b.mask.clone();
      capture.set_mask(mask);
      model.forward(b.ids, args);
    });
    return capture.mean();
  };

  const double loss_base = solution_loss(model, nullptr, 0.0, narrow, o.batch_size);
  torch::Tensor base_mean = direction ? mean_residual(nullptr, 0.0) : torch::Tensor();
  const int64_t work = static_cast<int64_t>(solutions.size()) *
                       static_cast<int64_t>(o.scales.size() * (text.examples.empty() ? 1 : 2) + 1 +
                                            o.epsilons.size() * o.perturbation_seeds);
  Progress progress("solutions", work, "evals");
  std::vector<SolutionResult> out;
  for (auto& s : solutions) {
    SolutionResult r;
    r.name = s.name;
    r.kind = s.lora ? "lora" : "steering vector";
    r.original_norm = solution_norm(s);
    if (r.original_norm <= 0) throw InputError(s.dir + ": the solution is zero");
    const torch::Tensor x = solution_vector(s) * (target / r.original_norm);
    solution_set_vector(s, x);
    r.norm = solution_norm(s);
    r.loss_base = loss_base;
    r.loss = solution_loss(model, &s, 1.0, narrow, o.batch_size);
    progress.advance(1);
    for (double m : o.scales) {
      r.efficiency.push_back({m, m == 1.0 ? r.loss : solution_loss(model, &s, m, narrow, o.batch_size)});
      progress.advance(1);
    }
    for (size_t e = 0; e < o.epsilons.size(); ++e) {
      std::vector<double> rel;
      for (int64_t k = 0; k < o.perturbation_seeds; ++k) {
        solution_set_vector(s, solution_perturb(x, o.epsilons[e], splitmix64(splitmix64(o.seed + e) + static_cast<uint64_t>(k))));
        const double lp = solution_loss(model, &s, 1.0, narrow, o.batch_size);
        rel.push_back((lp - r.loss) / (loss_base - r.loss));
        progress.advance(1);
      }
      solution_set_vector(s, x);
      double mean = 0, var = 0;
      for (double v : rel) mean += v;
      mean /= static_cast<double>(rel.size());
      for (double v : rel) var += (v - mean) * (v - mean);
      r.stability.push_back({o.epsilons[e], mean, rel.size() > 1 ? std::sqrt(var / static_cast<double>(rel.size() - 1)) : 0.0});
    }
    if (!text.examples.empty())
      for (double m : o.scales) {
        r.influence.push_back({m, m == 0.0 ? 0.0 : solution_kl(model, s, m, text, o.batch_size)});
        progress.advance(1);
      }
    if (direction) {
      const torch::Tensor shift = (mean_residual(&s, 1.0) - base_mean).to(torch::kFloat64);
      r.shift_norm = shift.norm().item<double>();
      r.shift_projection = torch::dot(shift, unit.to(torch::kFloat64)).item<double>();
      r.shift_cosine = r.shift_norm > 0 ? r.shift_projection / r.shift_norm : NAN;
    }
    out.push_back(std::move(r));
  }
  progress.finish();
  return out;
}

SftDataset solutions_rows(const ChatModel& chat, const std::string& path, double holdout, uint64_t split_seed,
                          int64_t max_examples) {
  SftDataOptions o;
  o.max_seq_len = chat.model().config().max_position_embeddings;
  o.max_examples = holdout > 0 ? 0 : max_examples;  // the split needs every row
  SftDataset rows = sft_dataset_load(path, chat.chat_template(), chat.tokenizer(), o);
  if (holdout > 0) {
    SftDataset heldout;
    sft_split(&rows, &heldout, holdout, split_seed);
    rows = std::move(heldout);
    if (max_examples > 0 && static_cast<int64_t>(rows.examples.size()) > max_examples)
      rows.examples.resize(static_cast<size_t>(max_examples));
  }
  return rows;
}

void solutions_write(const std::string& dir, const std::vector<SolutionResult>& results) {
  fs::create_directories(dir);
  bool influence = false;
  for (const auto& r : results) influence = influence || !r.influence.empty();
  for (const char* which : {"efficiency", "stability", "influence"})
    if (std::string(which) != "influence" || influence)
      file_write_atomic((fs::path(dir) / (std::string(which) + ".csv")).string(), solutions_curves_csv(results, which));
  file_write_atomic((fs::path(dir) / "summary.csv").string(), solutions_summary_csv(results));
}

std::string solutions_summary_csv(const std::vector<SolutionResult>& results) {
  std::ostringstream os;
  os.precision(8);
  os << "solution,kind,original_norm,norm,loss,loss_base,stability_eps,stability_mean,stability_sd,"
        "shift_cosine,shift_projection,shift_norm\n";
  for (const auto& r : results) {
    // The stability at eps closest to 0.1 as the one-number summary (every eps: stability.csv).
    SolutionStability st{NAN, NAN, NAN};
    for (const auto& s : r.stability)
      if (!std::isfinite(st.eps) || std::abs(s.eps - 0.1) < std::abs(st.eps - 0.1)) st = s;
    os << r.name << "," << r.kind << "," << r.original_norm << "," << r.norm << "," << r.loss << "," << r.loss_base
       << "," << st.eps << "," << st.mean << "," << st.sd << "," << r.shift_cosine << "," << r.shift_projection << ","
       << r.shift_norm << "\n";
  }
  return os.str();
}

std::string solutions_curves_csv(const std::vector<SolutionResult>& results, const std::string& which) {
  std::ostringstream os;
  os.precision(8);
  if (which == "stability") {
    os << "solution,eps,relative_loss_increase_mean,sd\n";
    for (const auto& r : results)
      for (const auto& s : r.stability) os << r.name << "," << s.eps << "," << s.mean << "," << s.sd << "\n";
  } else if (which == "efficiency" || which == "influence") {
    os << "solution,scale," << (which == "efficiency" ? "loss" : "kl_per_token") << "\n";
    for (const auto& r : results)
      for (const auto& [m, v] : which == "efficiency" ? r.efficiency : r.influence) os << r.name << "," << m << "," << v << "\n";
  } else {
    throw Error("solutions_curves_csv: unknown table " + which);
  }
  return os.str();
}

}  // namespace emlab
