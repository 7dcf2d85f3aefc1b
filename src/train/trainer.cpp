// The training loop: data plan, micro-batches over accumulation steps and processes, loss + KL,
// all-reduce, clipping, AdamW, logging, checkpoints and resume.
//
// Determinism (what makes --resume bit-exact): the batch of step s is a pure function of (seed, s)
// (sft_epoch_batches), the KL batch likewise, the dropout generator is reseeded from
// (seed, s, rank) at the start of every step, and a checkpoint holds the float32 trainable values,
// the AdamW moments and step count; so restoring them and starting at step s replays the same
// arithmetic as the uninterrupted run.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "emlab/chat_template.h"
#include "emlab/error.h"
#include "emlab/jsonl.h"
#include "emlab/model.h"
#include "emlab/progress.h"
#include "emlab/runtime.h"
#include "emlab/tokenizer.h"
#include "emlab/train.h"
#include "train/distributed.h"
#include "train/tensor_io.h"
#include "train/train_parts.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace emlab {

using namespace train_detail;

namespace {

// Options that may differ between an interrupted run and its resumption.
const std::vector<std::string> kResumeFree = {"resume", "stop_after", "save_every", "eval_every", "out", "device"};

std::string step_dir_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%06lld", static_cast<long long>(step));
  return buf;
}

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

// Splits rows into `parts` contiguous pieces as evenly as possible (first ones one larger).
std::vector<int64_t> part_of(const std::vector<int64_t>& rows, int64_t parts, int64_t k) {
  const int64_t n = static_cast<int64_t>(rows.size());
  const int64_t base = n / parts, extra = n % parts;
  const int64_t begin = k * base + std::min(k, extra);
  const int64_t len = base + (k < extra ? 1 : 0);
  return std::vector<int64_t>(rows.begin() + begin, rows.begin() + begin + len);
}

std::vector<int64_t> lengths_of(const SftDataset& d) {
  std::vector<int64_t> l;
  l.reserve(d.examples.size());
  for (const auto& e : d.examples) l.push_back(static_cast<int64_t>(e.ids.size()));
  return l;
}

// The batches of a dataset by global step index, over as many epochs as needed (one epoch's plan cached).
class BatchSchedule {
 public:
  BatchSchedule(const SftDataset& data, int64_t global_batch, uint64_t seed, int64_t bucket_factor)
      : lengths_(lengths_of(data)), global_batch_(global_batch), seed_(seed), bucket_(bucket_factor) {
    per_epoch_ = (static_cast<int64_t>(lengths_.size()) + global_batch - 1) / global_batch;
  }
  int64_t per_epoch() const { return per_epoch_; }
  const std::vector<int64_t>& batch(int64_t index) {
    const int64_t epoch = index / per_epoch_;
    if (epoch != cached_epoch_) {
      plan_ = sft_epoch_batches(lengths_, global_batch_, seed_, epoch, bucket_);
      cached_epoch_ = epoch;
    }
    return plan_[index % per_epoch_];
  }

 private:
  std::vector<int64_t> lengths_;
  int64_t global_batch_;
  uint64_t seed_;
  int64_t bucket_;
  int64_t per_epoch_ = 1;
  int64_t cached_epoch_ = -1;
  std::vector<std::vector<int64_t>> plan_;
};

void check_resume_options(const fs::path& saved, const TrainOptions& o) {
  if (!fs::exists(saved)) return;
  json a = json_read_file(saved.string()), b = train_options_to_json(o);
  std::string diff;
  for (auto& [k, v] : b.items()) {
    if (std::find(kResumeFree.begin(), kResumeFree.end(), k) != kResumeFree.end()) continue;
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

}  // namespace

TrainResult train_run(const TrainOptions& options) {
  TrainOptions o = options;
  train_options_validate(o);
  using clock = std::chrono::steady_clock;
  torch::Device device = device_from_name(o.device);
  // torchrun starts one process per GPU and sets LOCAL_RANK: plain "cuda" is this process's own GPU.
  if (device.is_cuda() && !device.has_index() && std::getenv("LOCAL_RANK"))
    device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(env_int("LOCAL_RANK", 0)));
  auto dist = Distributed::from_env(device);
  const int rank = dist->rank(), world = dist->world();
  const bool writer = rank == 0;
  if (!writer) Progress::set_enabled(false);  // one progress bar per run
  const fs::path out(o.out);
  TrainResult result;

  // Data.
  auto tokenizer = Tokenizer::load(o.tokenizer.empty() ? o.model : o.tokenizer);
  ChatTemplate tmpl = o.chat_template.empty() ? ChatTemplate::from_source(tokenizer->chat_template_source())
                                              : ChatTemplate::by_name(o.chat_template);
  SftDataset train = sft_dataset_load(o.data, tmpl, *tokenizer, o.data_options);
  SftDataset heldout;
  sft_split(&train, &heldout, o.holdout_fraction, o.seed);
  result.train_examples = static_cast<int64_t>(train.examples.size());
  result.truncated = train.truncated;
  result.skipped_lines = static_cast<int64_t>(train.problems.size());
  if (writer)
    for (const auto& p : train.problems) std::cerr << "emlab train: skipped " << p << "\n";
  SftDataset kl;
  if (!o.kl_data.empty()) {
    SftDataOptions ko = o.data_options;
    ko.pack = false;
    ko.max_examples = 0;
    kl = sft_dataset_load(o.kl_data, tmpl, *tokenizer, ko);
  }

  // Model and trainable state.
  LoadOptions lo;
  lo.device = device.str();
  lo.dtype = o.dtype;
  auto model = CausalLM::load(o.model, lo);
  if (tokenizer->vocab_size() > model->config().vocab_size)
    throw InputError("tokenizer has " + std::to_string(tokenizer->vocab_size()) + " tokens but " + o.model +
                     " has vocab_size " + std::to_string(model->config().vocab_size));
  Trainable trainable(*model, o);
  AdamW adam(o.adam_beta1, o.adam_beta2, o.adam_eps, o.weight_decay);

  // Plan: a global batch = batch_size x grad_accum x processes examples, split into that many
  // contiguous micro-batches (rank r takes parts r*accum .. r*accum+accum-1).
  const int64_t parts = o.grad_accum * world;
  BatchSchedule sft_plan(train, o.batch_size * parts, o.seed, o.bucket_factor);
  const int64_t kl_micro = o.kl_batch_size > 0 ? o.kl_batch_size : o.batch_size;
  std::unique_ptr<BatchSchedule> kl_plan;
  if (!o.kl_data.empty()) kl_plan = std::make_unique<BatchSchedule>(kl, kl_micro * parts, sft_mix_seed(o.seed, 77), o.bucket_factor);
  const int64_t total = o.max_steps > 0 ? o.max_steps : o.epochs * sft_plan.per_epoch();
  result.total_steps = total;

  // Resume.
  int64_t start = 0;
  if (!o.resume && fs::is_directory(out / "checkpoints") && !fs::is_empty(out / "checkpoints"))
    throw InputError(o.out + ": holds checkpoints of an earlier run; continue it with --resume or use another --out");
  double elapsed_before = 0;
  if (o.resume) {
    check_resume_options(out / "train_options.json", o);
    int64_t step = 0;
    const std::string ckpt = newest_checkpoint(out, &step);
    if (!ckpt.empty()) {
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
      start = step;
      elapsed_before = st.value("elapsed_seconds", 0.0);
    }
  }
  result.steps = start;

  std::unique_ptr<JsonlAppender> log;
  if (writer) {
    fs::create_directories(out);
    json_write_file((out / "train_options.json").string(), train_options_to_json(o));
    if (o.resume) trim_log(out / "train_log.jsonl", start);
    else if (fs::exists(out / "train_log.jsonl")) fs::remove(out / "train_log.jsonl");
    log = std::make_unique<JsonlAppender>((out / "train_log.jsonl").string());
  }

  auto& params = trainable.params();
  int64_t numel = 0;
  for (const auto& p : params) numel += p.master.numel();

  auto evaluate = [&]() -> double {
    if (heldout.examples.empty()) return -1.0;
    torch::NoGradGuard no_grad;
    ForwardArgs args = trainable.args(false);
    torch::Tensor acc = torch::zeros({2}, torch::TensorOptions().dtype(torch::kFloat64).device(device));
    const int64_t n = static_cast<int64_t>(heldout.examples.size());
    for (int64_t b = 0, i = 0; b < n; b += o.batch_size, ++i) {
      if (i % world != rank) continue;
      std::vector<int64_t> rows;
      for (int64_t k = b; k < std::min(n, b + o.batch_size); ++k) rows.push_back(k);
      Batch batch = collate(heldout, rows, device);
      acc[0] += sft_loss_sum(*model, batch, args).to(torch::kFloat64);
      acc[1] += static_cast<double>(batch.targets);
    }
    dist->all_reduce_sum(acc);
    return (acc[0] / acc[1]).item<double>();
  };

  auto save_checkpoint = [&](int64_t steps_done, double elapsed) {
    if (!writer) return;
    const fs::path final_dir = out / "checkpoints" / step_dir_name(steps_done);
    const fs::path tmp = out / "checkpoints" / (step_dir_name(steps_done) + ".tmp");
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
  };

  Progress progress("train", total, "step");
  progress.set(start);
  const auto t_run = clock::now();
  int64_t tokens_run = 0;
  torch::Device dev = device;
  for (int64_t step = start; step < total; ++step) {
    const auto t0 = clock::now();
    torch::manual_seed(sft_mix_seed(sft_mix_seed(o.seed, static_cast<uint64_t>(step)), static_cast<uint64_t>(rank)));
    const std::vector<int64_t> global = sft_plan.batch(step);
    const double n_sft = static_cast<double>(count_targets(train, global));
    std::vector<int64_t> kl_global;
    double n_kl = 1;
    if (kl_plan) {
      kl_global = kl_plan->batch(step);
      n_kl = std::max<double>(1.0, static_cast<double>(count_targets(kl, kl_global)));
    }
    double ce_local = 0, kl_local = 0, tokens_local = 0;
    for (int64_t a = 0; a < o.grad_accum; ++a) {
      const int64_t k = rank * o.grad_accum + a;
      Batch b = collate(train, part_of(global, parts, k), dev);
      if (!b.empty()) {
        torch::Tensor ce = sft_loss_sum(*model, b, trainable.args(true));
        (ce / n_sft).backward();
        ce_local += ce.item<double>();
        tokens_local += static_cast<double>(b.tokens);
      }
      if (kl_plan) {
        Batch kb = collate(kl, part_of(kl_global, parts, k), dev);
        if (!kb.empty()) {
          torch::Tensor kv;
          if (o.kl_weight > 0) {
            kv = kl_sum(*model, kb, trainable.args(true), trainable.reference_args());
            (kv * (o.kl_weight / n_kl)).backward();
          } else {  // measured only
            torch::NoGradGuard no_grad;
            kv = kl_sum(*model, kb, trainable.args(true), trainable.reference_args());
          }
          kl_local += kv.item<double>();
          tokens_local += static_cast<double>(kb.tokens);
        }
      }
    }
    // One all-reduce for every gradient plus the step's statistics.
    std::vector<torch::Tensor> flat;
    flat.reserve(params.size() + 1);
    for (auto& p : params) {
      const torch::Tensor& g = p.param.grad();
      flat.push_back(g.defined() ? g.to(torch::kFloat32).reshape({-1}) : torch::zeros({p.master.numel()}, p.master.options()));
    }
    flat.push_back(torch::tensor({ce_local, kl_local, tokens_local}, torch::TensorOptions().dtype(torch::kFloat32)).to(dev));
    torch::Tensor buf = torch::cat(flat);
    dist->all_reduce_sum(buf);
    torch::Tensor stats = buf.narrow(0, numel, 3).to(torch::kCPU, torch::kFloat64);
    torch::Tensor gflat = buf.narrow(0, 0, numel);
    const double grad_norm = gflat.norm().item<double>();
    if (o.max_grad_norm > 0) {
      const double coef = o.max_grad_norm / (grad_norm + 1e-6);
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
    const double lr = lr_at_step(o, step, total);
    adam.step(params, grads, lr);

    const double sft = stats[0].item<double>() / std::max(1.0, n_sft);
    const double klv = kl_plan ? stats[1].item<double>() / n_kl : 0.0;
    const double loss = sft + o.kl_weight * klv;
    const int64_t tokens = static_cast<int64_t>(stats[2].item<double>());
    tokens_run += tokens;
    const double step_seconds = std::chrono::duration<double>(clock::now() - t0).count();
    const double run_seconds = std::chrono::duration<double>(clock::now() - t_run).count();
    const int64_t done = step + 1;
    result.steps = done;
    result.last_loss = loss;

    json row = {{"step", done},
                {"epoch", static_cast<double>(done) / static_cast<double>(sft_plan.per_epoch())},
                {"loss", loss},
                {"sft_loss", sft},
                {"kl", kl_plan ? json(klv) : json(nullptr)},
                {"lr", lr},
                {"grad_norm", grad_norm},
                {"tokens", tokens},
                {"seconds", step_seconds},
                {"elapsed", elapsed_before + run_seconds}};
    const bool stopping = o.stop_after > 0 && done == o.stop_after && done < total;
    if (o.eval_every > 0 && done % o.eval_every == 0 && done < total) row["eval_loss"] = evaluate();
    if (done == total) {
      result.eval_loss = evaluate();
      if (result.eval_loss >= 0) row["eval_loss"] = result.eval_loss;
    }
    if (log) log->append(row);
    progress.advance(1, "loss " + fmt("%.4f", loss) + " lr " + fmt("%.2e", lr) + " " +
                            fmt("%.0f", static_cast<double>(tokens_run) / std::max(1e-9, run_seconds)) + " tok/s");
    if ((o.save_every > 0 && (done % o.save_every == 0 || done == total)) || stopping)
      save_checkpoint(done, elapsed_before + run_seconds);
    if (stopping) break;
  }
  progress.finish();
  result.finished = result.steps >= total;
  if (result.finished && writer) {
    trainable.save(out.string(), o);
    json_write_file((out / "train_options.json").string(), train_options_to_json(o));
  }
  dist->barrier();
  return result;
}

}  // namespace emlab
