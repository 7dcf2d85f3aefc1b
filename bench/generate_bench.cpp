// Sampling benchmark: tokens/s of emlab::generate, the real sampling path (prefill, KV cache,
// sampler at temperature 1 over the full vocabulary, detokenisation), for B prompts of P random
// token ids and G new tokens each (min_new_tokens = G, so no sequence stops early). The reference is
// transformers.generate with the same settings (bench/gpu_bench.py generate); bench/gpu_bench.sh
// runs both and prints the ratio. With --samples N, B/N prompts of N samples each (B rows in all).
// Usage: generate_bench --model DIR [--device D] [--dtype T] [--threads N] [--batches 1,64]
//                       [--prompt P] [--gen G] [--reps R] [--max-id N] [--samples N]
// Prints one "RESULT impl=emlab batch=B ..." line per batch size (and, on a GPU, one impl=emlab-eager
// line: decoding steps launched op by op instead of replayed as CUDA graphs; with --samples > 1, one
// impl=emlab-copied-prompts line: each sample's rows a copy of its prompt's keys and values,
// SampleOptions::share_prompts off, and the ratio): the best of R timed calls after a warm-up call.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bench_timing.h"
#include "emlab/decode_graph.h"
#include "emlab/generator.h"
#include "emlab/model.h"
#include "emlab/progress.h"
#include "emlab/runtime.h"
#include "emlab/tokenizer.h"

using namespace emlab;
using namespace emlab::bench;

int main(int argc, char** argv) {
  int threads = 0, reps = 3;
  std::string device_name = "cpu", dtype_name = "auto", model_dir;
  int64_t prompt = 64, gen = 128, max_id = 150000, samples = 1;
  std::vector<int64_t> batches = {1, 64};
  for (int i = 1; i + 1 < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--device")) device_name = argv[++i];
    else if (!std::strcmp(argv[i], "--dtype")) dtype_name = argv[++i];
    else if (!std::strcmp(argv[i], "--model")) model_dir = argv[++i];
    else if (!std::strcmp(argv[i], "--prompt")) prompt = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--gen")) gen = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--max-id")) max_id = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--batches")) batches = int_list(argv[++i]);
    else if (!std::strcmp(argv[i], "--samples")) samples = std::max<int64_t>(1, std::atoll(argv[++i]));
  }
  if (model_dir.empty()) {
    std::fprintf(stderr, "generate_bench: --model DIR is required (a model directory with its tokenizer)\n");
    return 2;
  }
  runtime_set_threads(threads);
  Progress::set_enabled(false);
  LoadOptions lo;
  lo.device = device_name;
  lo.dtype = dtype_name;
  auto model = CausalLM::load(model_dir, lo);
  auto tokenizer = Tokenizer::load(model_dir);
  const torch::Device device = model->device();
  std::printf("model: %.1fM parameters, %s, %s, %d threads; prompts of %lld random ids, %lld new tokens\n",
              model->num_parameters() / 1e6, device.str().c_str(), dtype_to_string(model->dtype()).c_str(),
              torch::get_num_threads(), static_cast<long long>(prompt), static_cast<long long>(gen));
  std::mt19937 rng(0);
  for (int64_t B : batches) {
    const int64_t n = std::min(samples, B);  // samples per prompt
    std::vector<std::vector<int32_t>> prompts(B / n, std::vector<int32_t>(prompt));
    for (auto& p : prompts)
      for (auto& id : p) id = static_cast<int32_t>(rng() % max_id);
    const int64_t rows = static_cast<int64_t>(prompts.size()) * n;
    // With CUDA graphs (the default on a GPU) and, where they apply, without them (impl=emlab-eager);
    // with shared prompts (the default) and, with several samples, copied (impl=emlab-copied-prompts).
    double shared_rate = 0;
    for (int variant = 0; variant < 3; ++variant) {
      if (variant == 1 && !DecodeGraph::available(*model)) continue;
      if (variant == 2 && n == 1) continue;
      SampleOptions o;
      o.temperature = 1.0;
      o.max_new_tokens = o.min_new_tokens = gen;
      o.batch_size = rows;
      o.progress = false;
      o.cuda_graphs = variant != 1;
      o.share_prompts = variant != 2;
      int64_t produced = 0;
      auto run = [&] {
        auto out = generate(*model, *tokenizer, prompts, n, o);
        sync(device);
        produced = 0;
        for (const auto& req : out)
          for (const auto& c : req) produced += static_cast<int64_t>(c.tokens.size());
      };
      const double ms = best_ms(reps, run);
      const double rate = produced / (ms / 1e3);
      if (variant == 0) shared_rate = rate;
      const char* impl = variant == 0 ? "emlab" : variant == 1 ? "emlab-eager" : "emlab-copied-prompts";
      std::printf("RESULT impl=%s batch=%lld samples=%lld prompt=%lld gen=%lld new_tokens=%lld seconds=%.4f "
                  "tokens_per_s=%.1f%s\n",
                  impl, static_cast<long long>(rows), static_cast<long long>(n), static_cast<long long>(prompt),
                  static_cast<long long>(gen), static_cast<long long>(produced), ms / 1e3, rate,
                  variant == 2 ? (" shared/copied=" + std::to_string(shared_rate / rate)).c_str() : "");
    }
  }
  return 0;
}
