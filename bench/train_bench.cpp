// Training benchmark: tokens/s of `train_run` (the real trainer: data, forward, loss, backward,
// clipping, AdamW, logging) on the ~25M-parameter Llama-shaped benchmark model (the engine
// benchmark's config), full finetuning and LoRA (r=32, alpha=64, rsLoRA, all projections), and the
// achieved model FLOP/s as a fraction of this machine's fp32 matmul rate measured in the same
// process. bench/train_bench.sh runs it beside the same step in Python PyTorch (train_bench.py).
// Usage: train_bench [--threads N] [--device D] [--dtype T] [--batch B] [--seq T] [--steps S] [--method full|lora|both]
//                    [--accum A] [--one-after-another] [--compare-dtypes]
// --accum A: a step's batch is A micro-batches of B/A rows (gradient accumulation; with 2 threads
// on the CPU the trainer runs them side by side; --one-after-another: in turn).
// Prints one "RESULT ..." line per method for the script. With --compare-dtypes it trains each
// method twice on the same data, float32 and then bfloat16 (bf16 weights and matmuls, float32
// master weights, AdamW state, norms, softmax and loss), and prints tokens/s of both, their ratio
// and how far bf16's loss curve is from fp32's (10-step moving averages).
// The documents are letters from a fixed Markov chain (each letter has 3 equally likely
// successors), so the loss has something to learn: from ln 8000 = 9.0 toward ln 3 = 1.1.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include <unistd.h>

#include "emlab/byte_level.h"
#include "emlab/jsonl.h"
#include "bench_model.h"
#include "bench_timing.h"
#include "emlab/model.h"
#include "emlab/progress.h"
#include "emlab/runtime.h"
#include "emlab/train.h"

using namespace emlab;
using namespace emlab::bench;
namespace fs = std::filesystem;

namespace {

// The tokenizer maps every byte to one token (GPT-2's byte-to-unicode characters), so a document
// of T ASCII characters is T tokens.
void write_tokenizer(const fs::path& dir) {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[emlab::text::byte_to_unicode()[b]] = b;
  nlohmann::json tok = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}},
                        {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}},
                        {"decoder", {{"type", "ByteLevel"}}},
                        {"added_tokens", {{{"id", 256}, {"content", "<|im_start|>"}, {"special", true}},
                                          {{"id", 257}, {"content", "<|im_end|>"}, {"special", true}}}}};
  std::ofstream(dir / "tokenizer.json") << tok.dump();
  nlohmann::json cfg = {{"eos_token", "<|im_end|>"}, {"chat_template", "<|im_start|>"}};
  std::ofstream(dir / "tokenizer_config.json") << cfg.dump();
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 0;
  int64_t batch = 8, seq = 128, steps = 6, accum = 1;
  std::string device_name = "cpu", method = "both", dtype = "float32";
  bool compare_dtypes = false, side_by_side = true;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--compare-dtypes")) compare_dtypes = true;
    else if (!std::strcmp(argv[i], "--one-after-another")) side_by_side = false;
    else if (i + 1 >= argc) break;
    else if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--device")) device_name = argv[++i];
    else if (!std::strcmp(argv[i], "--batch")) batch = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--seq")) seq = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--steps")) steps = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--accum")) accum = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--method")) method = argv[++i];
    else if (!std::strcmp(argv[i], "--dtype")) dtype = argv[++i];
  }
  if (accum < 1 || batch % accum != 0) {
    std::fprintf(stderr, "--accum %lld: expected a divisor of --batch %lld\n", static_cast<long long>(accum),
                 static_cast<long long>(batch));
    return 2;
  }
  runtime_set_threads(threads);
  Progress::set_enabled(false);
  const fs::path dir = fs::temp_directory_path() / ("emlab-train-bench-" + std::to_string(getpid()));
  fs::create_directories(dir);

  const nlohmann::json cfg = bench::engine_model_json();
  ModelConfig config = ModelConfig::from_json(cfg, "bench");
  const int64_t V = 8000, C = 512, L = 6;
  int64_t params = 0;
  {
    auto model = CausalLM::init_random(config, 0);
    params = model->num_parameters();
    model->save((dir / "model").string());
  }
  write_tokenizer(dir / "model");
  // batch x steps documents of exactly `seq` lowercase letters from the Markov chain.
  {
    std::mt19937 rng(0);
    int next[26][3];
    for (auto& row : next)
      for (int& n : row) n = static_cast<int>(rng() % 26);
    std::ofstream f(dir / "data.jsonl");
    for (int64_t d = 0; d < batch * steps; ++d) {
      std::string text;
      int c = static_cast<int>(rng() % 26);
      for (int64_t t = 0; t < seq; ++t) {
        text += static_cast<char>('a' + c);
        c = next[c][rng() % 3];
      }
      f << nlohmann::json{{"text", text}}.dump() << "\n";
    }
  }
  // Matmul parameters (embedding lookup and norms do no matmul).
  const double matmul_params = static_cast<double>(params - V * C - (2 * L + 1) * C);
  // The weights' products a training token costs, attention's own products (QKᵀ, PV) not counted:
  // - full: forward, input gradient and weight gradient of every weight, 6 x P;
  // - LoRA (the betley2025 preset: rank r on all seven projections): the frozen weights' forward and
  //   input gradient, 4 x P, less layer 0's q/k/v input gradient (their input, the embedding, is
  //   frozen), plus the adapters' 6 x r x (in + out) each, less the same input gradient of layer 0's
  //   q/k/v adapters.
  // Leaving attention's products out undercounts the work alike for emlab and PyTorch, so the bound
  // train_bench.sh derives from it (peak / PyTorch's rate) errs high.
  TrainOptions preset;  // every run's starting options
  train_preset_apply("betley2025", &preset);  // rsLoRA r=32 alpha=64 on all projections, AdamW
  const double flops_per_token_full = 6.0 * matmul_params;
  double flops_per_token_lora = 0;
  {
    if (preset.lora.targets.size() != 7) {
      std::fprintf(stderr, "train_bench: the LoRA FLOP count assumes the preset's 7 targets, it has %zu\n",
                   preset.lora.targets.size());
      return 1;
    }
    const double r = static_cast<double>(preset.lora.rank), I = static_cast<double>(config.intermediate_size),
                 c = static_cast<double>(C);
    const double q = static_cast<double>(config.num_attention_heads * config.head_dim),
                 kv = static_cast<double>(config.num_key_value_heads * config.head_dim);
    const double lora_per_layer = r * ((c + q) + 2 * (c + kv) + (q + c) + 2 * (c + I) + (I + c));
    flops_per_token_lora = 4.0 * matmul_params - 2.0 * c * (q + 2 * kv) + 6.0 * L * lora_per_layer - 2.0 * r * c * 3;
  }
  const double peak = matmul_flops(device_from_name(device_name));
  std::printf("model: %.1fM parameters (%.1fM in matmuls), batch %lld x %lld tokens, %s, %d threads\n", params / 1e6,
              matmul_params / 1e6, static_cast<long long>(batch), static_cast<long long>(seq), device_name.c_str(),
              torch::get_num_threads());
  std::printf("reference matmul (1024^3 fp32, same process): %.1f GFLOP/s; CPU bf16 instructions: %s\n", peak / 1e9,
              cpu_bf16_name(cpu_bf16_support()).c_str());
  double peak_bf16 = 0;
  if (compare_dtypes) {  // what bf16 products can give at most: a step made only of products
    peak_bf16 = matmul_flops(device_from_name(device_name), torch::kBFloat16);
    std::printf("reference matmul (1024^3 bf16, same process): %.1f GFLOP/s = %.2fx fp32's\n", peak_bf16 / 1e9,
                peak_bf16 / peak);
  }

  struct Run {
    double tokens_per_s = 0, seconds = 0;
    std::vector<double> losses;  // per step
  };
  auto run = [&](const std::string& m, const std::string& dt) {
    TrainOptions o = preset;
    o.model = (dir / "model").string();
    o.data = (dir / "data.jsonl").string();
    o.out = (dir / ("out-" + m + "-" + dt)).string();
    o.device = device_name;
    o.dtype = dt;
    o.method = m == "full" ? TrainMethod::Full : TrainMethod::Lora;
    o.grad_accum = accum;
    o.parallel_micro_batches = side_by_side;
    o.warmup_steps = 0;
    if (compare_dtypes) {  // a learning rate at which the curve moves within a few hundred steps
      o.lr = 1e-3;
      o.warmup_steps = 10;
    }
    o.batch_size = batch / accum;
    o.max_steps = steps;
    o.bucket_factor = 1;
    o.data_options.max_seq_len = seq;
    o.data_options.train_on_all_tokens = true;
    train_run(o);
    // Steps after the first (allocator warm-up), median seconds per step.
    auto rows = jsonl_read_values((fs::path(o.out) / "train_log.jsonl").string());
    std::vector<double> secs;
    Run r;
    double tokens = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      r.losses.push_back(rows[i]["loss"].get<double>());
      if (i == 0) continue;
      secs.push_back(rows[i]["seconds"].get<double>());
      tokens = rows[i]["tokens"].get<double>();
    }
    std::sort(secs.begin(), secs.end());
    r.seconds = secs[secs.size() / 2];
    r.tokens_per_s = tokens / r.seconds;
    return r;
  };

  for (const std::string m : {"full", "lora"}) {
    if (method != "both" && method != m) continue;
    if (compare_dtypes) {
      const Run f = run(m, "float32"), b = run(m, "bfloat16");
      // 10-step moving averages of both curves; the largest gap relative to fp32's loss.
      const size_t n = std::min(f.losses.size(), b.losses.size()), w = 10;
      double worst = 0, sum_f = 0, sum_b = 0;
      size_t worst_step = 0;
      for (size_t i = 0; i < n; ++i) {
        sum_f += f.losses[i], sum_b += b.losses[i];
        if (i >= w) sum_f -= f.losses[i - w], sum_b -= b.losses[i - w];
        if (i + 1 < w) continue;
        const double gap = std::abs(sum_b - sum_f) / sum_f;
        if (gap > worst) worst = gap, worst_step = i + 1;
      }
      // A bf16 step takes at least its products' time at the bf16 matmul rate, so bf16 / fp32 can reach
      // at most that rate over the fp32 step's (its products per token x its tokens/s).
      const double per_token = m == "full" ? flops_per_token_full : flops_per_token_lora;
      std::printf("%-5s fp32 %8.0f tokens/s, bf16 %8.0f tokens/s: bf16 / fp32 = %.2fx (at most %.2fx: bf16's matmul "
                  "rate over this fp32 step's)\n",
                  m.c_str(), f.tokens_per_s, b.tokens_per_s, b.tokens_per_s / f.tokens_per_s,
                  peak_bf16 / (per_token * f.tokens_per_s));
      std::printf("%-5s loss at steps 1 / %zu: fp32 %.4f / %.4f, bf16 %.4f / %.4f; largest gap of the 10-step moving "
                  "averages: %.2f%% of fp32's (step %zu)\n",
                  m.c_str(), n, f.losses[0], f.losses[n - 1], b.losses[0], b.losses[n - 1], 100 * worst, worst_step);
      std::printf("RESULT impl=emlab method=%s threads=%d fp32_tokens_per_s=%.1f bf16_tokens_per_s=%.1f "
                  "max_gap_pct=%.3f\n",
                  m.c_str(), torch::get_num_threads(), f.tokens_per_s, b.tokens_per_s, 100 * worst);
      continue;
    }
    const Run r = run(m, dtype);
    const double per_token = m == "full" ? flops_per_token_full : flops_per_token_lora;
    const double flops = per_token * r.tokens_per_s;
    std::printf("%-5s %10.0f tokens/s  %7.1f GFLOP/s (%.1fM FLOP/token)  %5.1f%% of matmul peak  (%.3f s/step)\n",
                m.c_str(), r.tokens_per_s, flops / 1e9, per_token / 1e6, 100.0 * flops / peak, r.seconds);
    std::printf("RESULT impl=emlab method=%s threads=%d accum=%lld tokens_per_s=%.1f gflops=%.2f peak_gflops=%.2f\n",
                m.c_str(), torch::get_num_threads(), static_cast<long long>(accum), r.tokens_per_s, flops / 1e9,
                peak / 1e9);
  }
  fs::remove_all(dir);
  return 0;
}
