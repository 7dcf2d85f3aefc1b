// Engine benchmark: prefill and decode tokens/s at batch 1 and 64 on a ~25M-parameter random
// Llama-shaped model (or a model directory), and the achieved FLOP/s as a fraction of this
// machine's matmul rate measured in the same process (the reference).
// Usage: engine_bench [--threads N] [--device D] [--dtype T] [--model DIR] [--prompt P] [--gen G]
//                     [--batches 1,16,64]
// With --prompt/--gen/--batches it measures what llama.cpp's llama-batched-bench does with
// -npp P -ntg G -npl B: per batch size, B distinct random prompts of P tokens prefilled in one call,
// then G decode steps of one token per sequence (greedy, no sampler). At batch 1 on the CPU, decode
// also runs through torch's ops instead of the fused step ("dec-ops"), and the ratio is printed, and
// a plain sum over the weights' bytes measures the bandwidth a step that reads each once can reach.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench_memory.h"
#include "bench_model.h"
#include "bench_timing.h"
#include "emlab/generator.h"
#include "emlab/model.h"
#include "emlab/runtime.h"

using namespace emlab;
using namespace emlab::bench;

int main(int argc, char** argv) {
  int threads = 0;
  std::string device_name = "cpu", dtype_name = "float32", model_dir;
  int64_t prompt_arg = 0, gen_arg = 0;
  std::vector<int64_t> batches = {1, 64};
  for (int i = 1; i + 1 < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--device")) device_name = argv[++i];
    else if (!std::strcmp(argv[i], "--dtype")) dtype_name = argv[++i];
    else if (!std::strcmp(argv[i], "--model")) model_dir = argv[++i];
    else if (!std::strcmp(argv[i], "--prompt")) prompt_arg = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--gen")) gen_arg = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--batches")) batches = int_list(argv[++i]);
  }
  runtime_set_threads(threads);
  torch::NoGradGuard no_grad;
  LoadOptions lo;
  lo.device = device_name;
  lo.dtype = dtype_name;
  auto model = model_dir.empty() ? CausalLM::init_random(bench::engine_model_config(), 0, lo)
                                 : CausalLM::load(model_dir, lo);
  const torch::Device device = model->device();
  const int64_t params = model->num_parameters();
  const ModelConfig& mc = model->config();
  const int64_t C = mc.hidden_size, L = mc.num_hidden_layers, V = mc.vocab_size;
  const int64_t D = mc.num_attention_heads * (mc.head_dim > 0 ? mc.head_dim : C / mc.num_attention_heads);  // query width
  // Matmul FLOPs per token: 2 x (linear weights of the layers) (+ lm_head where computed).
  const int64_t embed_params = (mc.tie_word_embeddings ? 1 : 2) * V * C;
  const double layer_flops = 2.0 * (params - embed_params - (2 * L + 1) * C);
  const double head_flops = 2.0 * V * C;

  double peak = matmul_flops(device, model->dtype());
  std::printf("model: %.1fM parameters, %s, %s, %d threads\n", params / 1e6, device.str().c_str(),
              dtype_to_string(model->dtype()).c_str(), torch::get_num_threads());
  std::printf("reference matmul (1024^3, same process): %.1f GFLOP/s; CPU bf16 instructions: %s\n", peak / 1e9,
              cpu_bf16_name(cpu_bf16_support()).c_str());
  // Decode at small batch is bound by reading the weights once per step, not by FLOPs: the last
  // column is that weight traffic (bytes of all parameters per forward call).
  const double weight_bytes = static_cast<double>(params) * torch::elementSize(model->dtype());
  std::printf("%-8s %5s %6s %12s %10s %8s %12s\n", "phase", "batch", "tokens", "tokens/s", "GFLOP/s", "of peak",
              "weights GB/s");

  for (int64_t B : batches) {
    const int64_t prompt = prompt_arg > 0 ? prompt_arg : 128;
    const int64_t steps = gen_arg > 0 ? gen_arg : (B == 1 ? 64 : 32);
    torch::Tensor ids = torch::randint(0, V, {B, prompt}, torch::TensorOptions().dtype(torch::kLong).device(device));
    // Prefill: the whole prompt in one call; logits of the last position only (as generation does).
    double best = 1e30;
    KVCache cache;
    for (int rep = 0; rep < 3; ++rep) {
      cache = KVCache{};
      cache.capacity = prompt + steps;
      ForwardArgs args;
      args.cache = &cache;
      args.last_logits_only = true;
      auto t = Clock::now();
      model->forward(ids, args);
      sync(device);
      best = std::min(best, seconds_since(t));
    }
    double attn_flops = 2.0 * 2 * L * D * (prompt / 2.0);  // QK^T and PV over an average prompt/2 keys
    double pre_flops = B * prompt * (layer_flops + attn_flops) + B * head_flops;
    std::printf("%-8s %5lld %6lld %12.0f %10.1f %7.1f%% %12.1f\n", "prefill", (long long)B, (long long)prompt,
                B * prompt / best, pre_flops / best / 1e9, 100 * pre_flops / best / peak, weight_bytes / best / 1e9);
    // Decode: one token per sequence per call, attending to the growing cache. The greedy pick:
    // emlab's sampler at temperature 0 (what `emlab generate --temperature 0` runs; 0.4-0.8 ms on
    // 64 x 151936 logits, where torch's max(-1), used here before, took ~6 ms in fp32 and more in
    // bf16: bench/sampler_bench.cpp). llama-batched-bench picks nothing (fixed tokens). Each run
    // starts from a copy of the prefilled cache; `fused` as ForwardArgs::fused_decode.
    SampleOptions greedy;
    greedy.temperature = 0.0;
    auto decode = [&](bool fused) {
      KVCache c = cache;
      for (auto* side : {&c.k, &c.v})
        for (auto& t : *side) t = t.clone();
      torch::Tensor next = ids.narrow(1, prompt - 1, 1);
      ForwardArgs args;
      args.cache = &c;
      args.last_logits_only = true;
      args.fused_decode = fused;
      auto t = Clock::now();
      for (int64_t s = 0; s < steps; ++s)
        next = sample_tokens(model->forward(next, args).select(1, 0), greedy, torch::Tensor()).unsqueeze(1);
      sync(device);
      return seconds_since(t);
    };
    double dec_flops = B * steps * (layer_flops + head_flops + 2.0 * 2 * L * D * (prompt + steps / 2.0));
    auto report = [&](const char* phase, double secs) {
      std::printf("%-8s %5lld %6lld %12.0f %10.1f %7.1f%% %12.1f\n", phase, (long long)B, (long long)(steps),
                  B * steps / secs, dec_flops / secs / 1e9, 100 * dec_flops / secs / peak,
                  weight_bytes * steps / secs / 1e9);
    };
    if (B > 1 || !device.is_cpu()) {
      report("decode", decode(true));
      continue;
    }
    // Batch 1 on the CPU: the fused step (the default) and torch's ops, alternated three times, the
    // best of each; their ratio. Then the bandwidth ceiling: a plain sum over every weight's bytes.
    double fused = 1e30, ops = 1e30;
    for (int rep = 0; rep < 3; ++rep) {
      ops = std::min(ops, decode(false));
      fused = std::min(fused, decode(true));
    }
    report("decode", fused);
    report("dec-ops", ops);
    std::printf("decode at batch 1, fused step / torch's ops: %.2fx\n", ops / fused);
    volatile float sink = 0;
    const double sum_ms = best_ms(5, [&] {
      for (const auto& [name, t] : model->parameters()) sink = sink + plain_sum(t);
    });
    const double sum_gbs = weight_bytes / (sum_ms * 1e-3) / 1e9;
    std::printf("plain sum over the weights' bytes: %.1f GB/s; decode at batch 1 reads them at %.2fx that\n", sum_gbs,
                weight_bytes * steps / fused / 1e9 / sum_gbs);
  }
  return 0;
}
