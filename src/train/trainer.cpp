// The training loop: data plan, micro-batches over accumulation steps and processes, loss + KL,
// all-reduce, clipping, AdamW, logging, checkpoints and resume.
//
// Determinism (what makes --resume bit-exact): the batch of step s is a pure function of (seed, s)
// (sft_epoch_batches), the KL batch likewise, the dropout generator is reseeded from
// (seed, s, rank) at the start of every step, and a checkpoint holds the float32 trainable values,
// the AdamW moments and step count; so restoring them and starting at step s replays the same
// arithmetic as the uninterrupted run. Micro-batches run side by side (options.parallel_micro_batches)
// add their gradients in the order backward() would accumulate them, so that changes no number.
#include <algorithm>
#include <chrono>
#include <numeric>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>

#include "emlab/chat_template.h"
#include "emlab/direction.h"
#include "emlab/error.h"
#include "emlab/hash.h"
#include "emlab/file_util.h"
#include "emlab/tensor_io.h"
#include "emlab/jsonl.h"
#include "emlab/model.h"
#include "emlab/progress.h"
#include "emlab/runtime.h"
#include "emlab/tokenizer.h"
#include "emlab/train.h"
#include "train/distributed.h"
#include "train/train_parts.h"
#include "train/train_steps.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace emlab {

using namespace train_detail;

namespace {

// Options that may differ between an interrupted run and its resumption.
const std::vector<std::string> kResumeFree = {"resume", "stop_after", "save_every", "eval_every", "out", "device"};

// Newest complete checkpoint (trainer_state.json written last), or "" when none.
std::string newest_checkpoint(const fs::path& out, int64_t* step) {
  const fs::path root = out / "checkpoints";
  std::string best;
  *step = -1;
  if (!fs::is_directory(root)) return best;
  for (const auto& e : fs::directory_iterator(root)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("step-", 0) != 0 || n.find('.') != std::string::npos) continue;
    if (!fs::exists(e.path() / "trainer_state.json")) continue;
    int64_t s = std::stoll(n.substr(5));
    if (s > *step) {
      *step = s;
      best = e.path().string();
    }
  }
  return best;
}

void check_resume_options(const fs::path& saved, const TrainOptions& o) {
  if (!fs::exists(saved)) return;
  json a = json_read_file(saved.string()), b = train_options_to_json(o);
  const json defaults = train_options_to_json(TrainOptions{});
  std::string diff;
  for (auto& [k, v] : b.items()) {
    if (std::find(kResumeFree.begin(), kResumeFree.end(), k) != kResumeFree.end()) continue;
    if (!a.contains(k) && v == defaults[k]) continue;  // an option added since, left at its default
    if (!a.contains(k) || a[k] != v) diff += (diff.empty() ? "" : ", ") + k;
  }
  if (!diff.empty())
    throw InputError("--resume: options differ from " + saved.string() + " (" + diff +
                     "); resume with the same options or use another --out");
}

// Keeps the rows of train_log.jsonl up to `step` (a resumed run rewrites what came after).
void trim_log(const fs::path& path, int64_t step) {
  if (!fs::exists(path)) return;
  JsonlReadOptions ro;
  ro.allow_torn_last_line = true;
  auto rows = jsonl_read_values(path.string(), ro);
  std::vector<json> keep;
  for (auto& r : rows)
    if (r.value("step", int64_t{0}) <= step) keep.push_back(r);
  if (keep.size() != rows.size()) jsonl_write_all(path.string(), keep);
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// The device of a run: under torchrun (LOCAL_RANK set) plain "cuda" is this process's own GPU.
torch::Device train_device(const std::string& name) {
  torch::Device device = device_from_name(name);
  if (device.is_cuda() && !device.has_index() && std::getenv("LOCAL_RANK"))
    device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(env_int("LOCAL_RANK", 0)));
  return device;
}

}  // namespace

namespace train_detail {

TrainData train_data_load(const TrainOptions& o, const Tokenizer& tokenizer, const ChatTemplate& tmpl) {
  TrainData d;
  d.train = sft_dataset_load(o.data, tmpl, tokenizer, o.data_options);
  sft_split(&d.train, &d.heldout, o.holdout_fraction, o.seed);
  if (!o.mix_data.empty()) {
    // k mixed examples make up mix_fraction of the training split: k = f n / (1 - f), drawn in a
    // seeded order (a shuffled pass over the file, repeated if it is shorter than k).
    SftDataOptions mo = o.data_options;
    mo.max_examples = 0;
    SftDataset mix = sft_dataset_load(o.mix_data, tmpl, tokenizer, mo);
    const double n = static_cast<double>(d.train.examples.size());
    const int64_t k = static_cast<int64_t>(std::llround(o.mix_fraction * n / (1.0 - o.mix_fraction)));
    std::vector<int64_t> order;
    for (uint64_t pass = 0; static_cast<int64_t>(order.size()) < k; ++pass) {
      std::vector<int64_t> idx(mix.examples.size());
      std::iota(idx.begin(), idx.end(), 0);
      uint64_t state = sft_mix_seed(sft_mix_seed(o.seed, 0x6d6978), pass);
      for (size_t i = idx.size(); i > 1; --i) std::swap(idx[i - 1], idx[splitmix64_next(state) % i]);
      order.insert(order.end(), idx.begin(), idx.end());
    }
    for (int64_t i = 0; i < k; ++i) d.train.examples.push_back(mix.examples[order[i]]);
    d.mixed = k;
  }
  if (!o.kl_data.empty()) {
    SftDataOptions ko = o.data_options;
    ko.pack = false;
    ko.max_examples = 0;
    d.kl = sft_dataset_load(o.kl_data, tmpl, tokenizer, ko);
  }
  return d;
}

BatchSchedule::BatchSchedule(const SftDataset& data, int64_t global_batch, uint64_t seed, int64_t bucket_factor)
    : global_batch_(global_batch), seed_(seed), bucket_(bucket_factor) {
  lengths_.reserve(data.examples.size());
  for (const auto& e : data.examples) lengths_.push_back(static_cast<int64_t>(e.ids.size()));
  per_epoch_ = (static_cast<int64_t>(lengths_.size()) + global_batch - 1) / global_batch;
}

const std::vector<int64_t>& BatchSchedule::batch(int64_t index) {
  const int64_t epoch = index / per_epoch_;
  if (epoch != cached_epoch_) {
    plan_ = sft_epoch_batches(lengths_, global_batch_, seed_, epoch, bucket_);
    cached_epoch_ = epoch;
  }
  return plan_[index % per_epoch_];
}

std::vector<int64_t> part_of(const std::vector<int64_t>& rows, int64_t parts, int64_t k) {
  const int64_t n = static_cast<int64_t>(rows.size());
  const int64_t base = n / parts, extra = n % parts;
  const int64_t begin = k * base + std::min(k, extra);
  const int64_t len = base + (k < extra ? 1 : 0);
  return std::vector<int64_t>(rows.begin() + begin, rows.begin() + begin + len);
}

namespace {

// One backward of a step: a micro-batch's SFT loss or its KL term, divided by the step's count of
// trained tokens of its kind.
struct BackwardUnit {
  const SftDataset* data;
  std::vector<int64_t> rows;
  double count;  // the step's trained tokens of this kind (n_sft or n_kl)
  bool kl;
};

struct UnitResult {
  double value = 0;                   // the loss sum (cross-entropy or KL) over the unit's tokens
  double tokens = 0;                  // real tokens processed
  std::vector<torch::Tensor> grads;   // per leaf (undefined: none reached it); empty when not asked
};

// Forward and backward of one unit. leaves null: the gradients accumulate into .grad (backward());
// else they are returned, one per leaf, and .grad is left alone.
UnitResult run_unit(const StepInputs& in, const BackwardUnit& u, const ForwardArgs& args, const ForwardArgs& reference,
                    const std::vector<torch::Tensor>* leaves) {
  UnitResult r;
  Batch b = collate(*u.data, u.rows, in.device);
  if (b.empty()) return r;
  r.tokens = static_cast<double>(b.tokens);
  const bool train = !u.kl || in.options.kl_weight > 0;
  std::optional<torch::NoGradGuard> no_grad;
  if (!train) no_grad.emplace();  // the KL term measured only
  torch::Tensor sum = u.kl ? kl_sum(in.model, b, args, reference) : sft_loss_sum(in.model, b, args);
  r.value = sum.item<double>();
  if (!train) return r;
  torch::Tensor loss = u.kl ? sum * (in.options.kl_weight / u.count) : sum / u.count;
  if (leaves) r.grads = torch::autograd::grad({loss}, *leaves, {}, /*retain_graph=*/false, /*create_graph=*/false,
                                              /*allow_unused=*/true);
  else loss.backward();
  return r;
}

}  // namespace

StepStats train_step(const StepInputs& in, int64_t step, int64_t total) {
  const TrainOptions& o = in.options;
  const int rank = in.dist.rank();
  const int64_t parts = o.grad_accum * in.dist.world();
  torch::manual_seed(sft_mix_seed(sft_mix_seed(o.seed, static_cast<uint64_t>(step)), static_cast<uint64_t>(rank)));
  const std::vector<int64_t> global = in.sft_plan.batch(step);
  const double n_sft = static_cast<double>(count_targets(in.data.train, global));
  std::vector<int64_t> kl_global;
  double n_kl = 1;
  if (in.kl_plan) {
    kl_global = in.kl_plan->batch(step);
    n_kl = std::max<double>(1.0, static_cast<double>(count_targets(in.data.kl, kl_global)));
  }
  // This rank's micro-batches (rank r takes parts r*accum .. r*accum+accum-1): backward of each,
  // the SFT loss and then the KL term, their gradients summed in that order.
  std::vector<BackwardUnit> units;
  for (int64_t a = 0; a < o.grad_accum; ++a) {
    const int64_t k = rank * o.grad_accum + a;
    units.push_back({&in.data.train, part_of(global, parts, k), n_sft, false});
    if (in.kl_plan) units.push_back({&in.data.kl, part_of(kl_global, parts, k), n_kl, true});
  }
  const ForwardArgs args = in.trainable.args(true), reference = in.trainable.reference_args();
  double ce_local = 0, kl_local = 0, tokens_local = 0;
  const int side_by_side = o.parallel_micro_batches && in.device.is_cpu() && in.trainable.forward_is_pure()
                               ? static_cast<int>(std::min<int64_t>(torch::get_num_threads(), units.size()))
                               : 1;
  if (side_by_side < 2) {
    for (const BackwardUnit& u : units) {
      const UnitResult r = run_unit(in, u, args, reference, nullptr);
      (u.kl ? kl_local : ce_local) += r.value;
      tokens_local += r.tokens;
    }
  } else {
    // Each thread runs whole units with one intra-op thread; each unit's gradients come back as
    // tensors and are added in the units' order, which is what backward() accumulating into .grad
    // does one unit after another: the same sums, bit for bit.
    std::vector<torch::Tensor> leaves;
    for (auto& p : in.trainable.params()) leaves.push_back(p.param);
    std::vector<torch::Tensor> acc(leaves.size());
    for (size_t first = 0; first < units.size(); first += side_by_side) {
      const size_t n = std::min(units.size() - first, static_cast<size_t>(side_by_side));
      std::vector<UnitResult> done(n);
      runtime_side_by_side(n, [&](size_t i) { done[i] = run_unit(in, units[first + i], args, reference, &leaves); });
      for (size_t i = 0; i < n; ++i) {
        (units[first + i].kl ? kl_local : ce_local) += done[i].value;
        tokens_local += done[i].tokens;
        for (size_t j = 0; j < done[i].grads.size(); ++j) {
          const torch::Tensor& g = done[i].grads[j];
          if (!g.defined()) continue;
          if (!acc[j].defined()) acc[j] = g.contiguous();  // (an expanded gradient is not added into)
          else acc[j].add_(g);
        }
      }
    }
    for (size_t j = 0; j < acc.size(); ++j) in.trainable.params()[j].param.mutable_grad() = acc[j];
  }
  // One all-reduce for every gradient plus the step's statistics.
  auto& params = in.trainable.params();
  int64_t numel = 0;
  for (const auto& p : params) numel += p.master.numel();
  std::vector<torch::Tensor> flat;
  flat.reserve(params.size() + 1);
  for (auto& p : params) {
    const torch::Tensor& g = p.param.grad();
    flat.push_back(g.defined() ? g.to(torch::kFloat32).reshape({-1}) : torch::zeros({p.master.numel()}, p.master.options()));
  }
  flat.push_back(torch::tensor({ce_local, kl_local, tokens_local}, torch::TensorOptions().dtype(torch::kFloat32)).to(in.device));
  torch::Tensor buf = torch::cat(flat);
  in.dist.all_reduce_sum(buf);
  torch::Tensor stats = buf.narrow(0, numel, 3).to(torch::kCPU, torch::kFloat64);
  torch::Tensor gflat = buf.narrow(0, 0, numel);
  StepStats r;
  r.micro_batches_at_once = side_by_side;
  r.grad_norm = gflat.norm().item<double>();
  if (o.max_grad_norm > 0) {
    const double coef = o.max_grad_norm / (r.grad_norm + 1e-6);
    if (coef < 1.0) gflat.mul_(coef);
  }
  std::vector<torch::Tensor> grads;
  grads.reserve(params.size());
  int64_t off = 0;
  for (auto& p : params) {
    grads.push_back(gflat.narrow(0, off, p.master.numel()).view(p.master.sizes()));
    off += p.master.numel();
    p.param.mutable_grad() = torch::Tensor();
  }
  r.lr = lr_at_step(o, step, total);
  in.adam.step(params, grads, r.lr);
  r.sft = stats[0].item<double>() / std::max(1.0, n_sft);
  r.kl = in.kl_plan ? stats[1].item<double>() / n_kl : 0.0;
  r.loss = r.sft + o.kl_weight * r.kl;
  r.tokens = static_cast<int64_t>(stats[2].item<double>());
  return r;
}

double heldout_loss(const StepInputs& in) {
  if (in.data.heldout.examples.empty()) return -1.0;
  torch::NoGradGuard no_grad;
  const int64_t batch_size = in.options.batch_size;
  ForwardArgs args = in.trainable.args(false);
  torch::Tensor acc = torch::zeros({2}, torch::TensorOptions().dtype(torch::kFloat64).device(in.device));
  const int64_t n = static_cast<int64_t>(in.data.heldout.examples.size());
  for (int64_t b = 0, i = 0; b < n; b += batch_size, ++i) {
    if (i % in.dist.world() != in.dist.rank()) continue;
    std::vector<int64_t> rows;
    for (int64_t k = b; k < std::min(n, b + batch_size); ++k) rows.push_back(k);
    Batch batch = collate(in.data.heldout, rows, in.device);
    acc[0] += sft_loss_sum(in.model, batch, args).to(torch::kFloat64);
    acc[1] += static_cast<double>(batch.targets);
  }
  in.dist.all_reduce_sum(acc);
  return (acc[0] / acc[1]).item<double>();
}

Probe::Probe(const TrainOptions& o, const Tokenizer& tokenizer, const ChatTemplate& tmpl, const SftDataset& train,
             const CausalLM& model) {
  const SteerSpec spec = steer_spec_parse(o.probe, false);
  const Direction d = direction_load(spec.file);
  if (spec.layer) layer_ = *spec.layer;
  else if (d.info.contains("best_layer") && d.info["best_layer"].is_number_integer()) layer_ = d.info["best_layer"];
  else throw InputError("--probe " + o.probe + ": give :layer=L (the file names no best_layer)");
  if (d.hidden() != model.config().hidden_size || layer_ >= model.config().num_hidden_layers)
    throw InputError("--probe " + o.probe + ": the direction (" + std::to_string(d.layers()) + " layers, width " +
                     std::to_string(d.hidden()) + ") does not fit the model");
  torch::Tensor v = d.at(layer_, "--probe " + o.probe);
  unit_ = (v / v.norm()).to(model.device());
  if (!o.probe_data.empty()) {
    SftDataOptions po = o.data_options;
    po.pack = false;
    set_ = sft_dataset_load(o.probe_data, tmpl, tokenizer, po);
  } else {
    set_.examples.assign(train.examples.begin(),
                         train.examples.begin() + std::min<size_t>(train.examples.size(), static_cast<size_t>(o.probe_examples)));
  }
  if (static_cast<int64_t>(set_.examples.size()) > o.probe_examples) set_.examples.resize(static_cast<size_t>(o.probe_examples));
  if (set_.examples.empty()) throw InputError("--probe: the probe set is empty");
}

namespace {

// Sums the projection onto `unit` of the layer output at masked positions, after `inner`'s hooks.
class ProjectionHooks : public Hooks {
 public:
  ProjectionHooks(Hooks* inner, int64_t layer, const torch::Tensor& unit) : inner_(inner), layer_(layer), unit_(unit) {}
  void set_mask(torch::Tensor mask) { mask_ = std::move(mask); }
  torch::Tensor apply(HookSite site, int64_t layer, torch::Tensor h) override {
    if (inner_) h = inner_->apply(site, layer, h);
    if (site == HookSite::LayerOutput && layer == layer_) {
      torch::Tensor p = torch::matmul(h.detach().to(torch::kFloat32), unit_);  // (B, T)
      sum += (p * mask_).sum().item<double>();
    }
    return h;
  }
  double sum = 0;

 private:
  Hooks* inner_;
  int64_t layer_;
  torch::Tensor unit_, mask_;
};

}  // namespace

double Probe::measure(const StepInputs& in) {
  torch::NoGradGuard no_grad;
  ForwardArgs args = in.trainable.args(false);
  ProjectionHooks hooks(args.hooks, layer_, unit_);
  args.hooks = &hooks;
  args.last_logits_only = true;
  double tokens = 0;
  const int64_t n = static_cast<int64_t>(set_.examples.size());
  for (int64_t b = 0; b < n; b += in.options.batch_size) {
    std::vector<int64_t> rows;
    for (int64_t k = b; k < std::min(n, b + in.options.batch_size); ++k) rows.push_back(k);
    Batch batch = collate(set_, rows, in.device);
    hooks.set_mask(batch.mask);
    in.model.forward(batch.ids, args);
    tokens += static_cast<double>(batch.targets);
  }
  return tokens > 0 ? hooks.sum / tokens : std::nan("");
}

}  // namespace train_detail

namespace {

// The newest checkpoint's step (0 when none), after restoring the trainable values and the
// optimizer from it; *elapsed gets the time the run had taken before.
int64_t resume_from_checkpoint(const fs::path& out, const TrainOptions& o, int64_t total, int world,
                               const torch::Device& device, Trainable& trainable, AdamW& adam, double* elapsed) {
  check_resume_options(out / "train_options.json", o);
  int64_t step = 0;
  const std::string ckpt = newest_checkpoint(out, &step);
  if (ckpt.empty()) return 0;
  json st = json_read_file((fs::path(ckpt) / "trainer_state.json").string());
  if (st.value("total_steps", int64_t{-1}) != total)
    throw InputError(ckpt + ": the checkpoint belongs to a run of " + std::to_string(st.value("total_steps", 0)) +
                     " steps but these options and data give " + std::to_string(total));
  // Each process takes batch_size rows: another process count is another global batch.
  if (st.value("world_size", 1) != world)
    throw InputError(ckpt + ": the checkpoint was made by " + std::to_string(st.value("world_size", 1)) +
                     " process(es) (WORLD_SIZE); resume it with the same number, not " + std::to_string(world));
  auto opt_tensors = tensors_load((fs::path(ckpt) / "optimizer.safetensors").string());
  for (auto& [k, t] : opt_tensors) t = t.to(device);
  trainable.load(ckpt, opt_tensors);
  adam.load_state(opt_tensors, st.at("adam_steps").get<int64_t>(), ckpt);
  *elapsed = st.value("elapsed_seconds", 0.0);
  return step;
}

// Writes out/checkpoints/step-N (via a .tmp folder renamed when complete).
void save_checkpoint(const fs::path& out, const TrainOptions& o, int64_t steps_done, int64_t total, int world,
                     double elapsed, const Trainable& trainable, const AdamW& adam) {
  const fs::path final_dir = out / "checkpoints" / train_checkpoint_name(steps_done);
  const fs::path tmp = out / "checkpoints" / (train_checkpoint_name(steps_done) + ".tmp");
  fs::remove_all(tmp);
  trainable.save(tmp.string(), o);
  auto tensors = adam.state_tensors();
  for (auto& [k, t] : trainable.separate_masters()) tensors[k] = t;
  tensors_save((tmp / "optimizer.safetensors").string(), tensors, {{"format", "emlab-optimizer"}});
  json st = {{"step", steps_done},        {"total_steps", total},         {"adam_steps", adam.steps()},
             {"elapsed_seconds", elapsed}, {"world_size", world},          {"method", train_method_name(o.method)},
             {"rng", "dropout generator reseeded from (seed, step, rank) each step"}};
  json_write_file((tmp / "trainer_state.json").string(), st);
  fs::remove_all(final_dir);
  fs::rename(tmp, final_dir);
}

}  // namespace

std::string train_checkpoint_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%06lld", static_cast<long long>(step));
  return buf;
}

TrainResult train_run(const TrainOptions& options) {
  TrainOptions o = options;
  train_options_validate(o);
  using clock = std::chrono::steady_clock;
  const torch::Device device = train_device(o.device);
  auto dist = Distributed::from_env(device);
  const int rank = dist->rank(), world = dist->world();
  const bool writer = rank == 0;
  if (!writer) Progress::set_enabled(false);  // one progress bar per run
  const fs::path out(o.out);
  TrainResult result;

  // Set up: data, model, trainable state, optimizer, batch plans.
  auto tokenizer = Tokenizer::load(o.tokenizer.empty() ? o.model : o.tokenizer);
  ChatTemplate tmpl = o.chat_template.empty() ? ChatTemplate::from_tokenizer(*tokenizer)
                                              : ChatTemplate::by_name(o.chat_template);
  TrainData data = train_data_load(o, *tokenizer, tmpl);
  result.train_examples = static_cast<int64_t>(data.train.examples.size());
  result.truncated = data.train.truncated;
  result.skipped_lines = static_cast<int64_t>(data.train.problems.size());
  if (writer)
    for (const auto& p : data.train.problems) std::cerr << "emlab train: skipped " << p << "\n";
  LoadOptions lo;
  lo.device = device.str();
  lo.dtype = o.dtype;
  auto model = CausalLM::load(o.model, lo);
  if (tokenizer->vocab_size() > model->config().vocab_size)
    throw InputError("tokenizer has " + std::to_string(tokenizer->vocab_size()) + " tokens but " + o.model +
                     " has vocab_size " + std::to_string(model->config().vocab_size));
  Trainable trainable(*model, o);
  AdamW adam(o.adam_beta1, o.adam_beta2, o.adam_eps, o.weight_decay);
  // A global batch = batch_size x grad_accum x processes examples, split into that many
  // contiguous micro-batches.
  const int64_t parts = o.grad_accum * world;
  BatchSchedule sft_plan(data.train, o.batch_size * parts, o.seed, o.bucket_factor);
  const int64_t kl_micro = o.kl_batch_size > 0 ? o.kl_batch_size : o.batch_size;
  std::unique_ptr<BatchSchedule> kl_plan;
  if (!o.kl_data.empty())
    kl_plan = std::make_unique<BatchSchedule>(data.kl, kl_micro * parts, sft_mix_seed(o.seed, 77), o.bucket_factor);
  const int64_t total = o.max_steps > 0 ? o.max_steps : o.epochs * sft_plan.per_epoch();
  result.total_steps = total;
  StepInputs in{o, device, *model, trainable, adam, *dist, data, sft_plan, kl_plan.get()};
  std::unique_ptr<Probe> probe;
  if (!o.probe.empty()) probe = std::make_unique<Probe>(o, *tokenizer, tmpl, data.train, *model);
  const double stop_above = o.stop_when_projection_above.empty() ? std::nan("") : std::stod(o.stop_when_projection_above);
  result.probe_projection = std::nan("");

  // Resume.
  if (!o.resume && fs::is_directory(out / "checkpoints") && !fs::is_empty(out / "checkpoints"))
    throw InputError(o.out + ": holds checkpoints of an earlier run; continue it with --resume or use another --out");
  double elapsed_before = 0;
  const int64_t start = o.resume ? resume_from_checkpoint(out, o, total, world, device, trainable, adam, &elapsed_before) : 0;
  result.steps = start;
  std::unique_ptr<JsonlAppender> log;
  if (writer) {
    fs::create_directories(out);
    json_write_file((out / "train_options.json").string(), train_options_to_json(o));
    if (o.resume) trim_log(out / "train_log.jsonl", start);
    else if (fs::exists(out / "train_log.jsonl")) fs::remove(out / "train_log.jsonl");
    log = std::make_unique<JsonlAppender>((out / "train_log.jsonl").string());
  }

  // Loop.
  Progress progress("train", total, "step");
  progress.set(start);
  const auto t_run = clock::now();
  int64_t tokens_run = 0;
  double probe_start = probe && start < total ? probe->measure(in) : std::nan("");  // before this run's first step
  for (int64_t step = start; step < total; ++step) {
    const auto t0 = clock::now();
    const StepStats s = train_step(in, step, total);
    tokens_run += s.tokens;
    const double step_seconds = std::chrono::duration<double>(clock::now() - t0).count();
    const double run_seconds = std::chrono::duration<double>(clock::now() - t_run).count();
    const int64_t done = step + 1;
    result.steps = done;
    result.last_loss = s.loss;
    json row = {{"step", done},
                {"epoch", static_cast<double>(done) / static_cast<double>(sft_plan.per_epoch())},
                {"loss", s.loss},
                {"sft_loss", s.sft},
                {"kl", kl_plan ? json(s.kl) : json(nullptr)},
                {"lr", s.lr},
                {"grad_norm", s.grad_norm},
                {"tokens", s.tokens},
                {"micro_batches_at_once", s.micro_batches_at_once},
                {"seconds", step_seconds},
                {"elapsed", elapsed_before + run_seconds}};
    bool stopped_by_probe = false;
    if (probe) {
      if (!std::isnan(probe_start)) row["probe_projection_start"] = probe_start, probe_start = std::nan("");
      if (done % o.probe_every == 0 || done == total) {
        result.probe_projection = probe->measure(in);
        row["probe_projection"] = result.probe_projection;
        if (result.probe_projection > stop_above) {  // false while stop_above is NaN
          stopped_by_probe = done < total;
          row["stopped"] = "probe projection above " + o.stop_when_projection_above;
        }
      }
    }
    const bool stopping = o.stop_after > 0 && done == o.stop_after && done < total;
    if (o.eval_every > 0 && done % o.eval_every == 0 && done < total) row["eval_loss"] = heldout_loss(in);
    if (done == total) {
      result.eval_loss = heldout_loss(in);
      if (result.eval_loss >= 0) row["eval_loss"] = result.eval_loss;
    }
    if (log) log->append(row);
    progress.advance(1, "loss " + fmt("%.4f", s.loss) + " lr " + fmt("%.2e", s.lr) + " " +
                            fmt("%.0f", static_cast<double>(tokens_run) / std::max(1e-9, run_seconds)) + " tok/s");
    if (writer && ((o.save_every > 0 && (done % o.save_every == 0 || done == total)) || stopping))
      save_checkpoint(out, o, done, total, world, elapsed_before + run_seconds, trainable, adam);
    if (stopping) break;
    if (stopped_by_probe) {
      result.stopped_by_probe = true;
      break;
    }
  }
  progress.finish();

  // Save.
  result.finished = result.steps >= total || result.stopped_by_probe;
  if (result.finished && writer) {
    trainable.save(out.string(), o);
    json_write_file((out / "train_options.json").string(), train_options_to_json(o));
  }
  dist->barrier();
  return result;
}

}  // namespace emlab
