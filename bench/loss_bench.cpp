// The SFT loss's head: forward + backward of sft_loss_sum with the head and cross-entropy in
// chunks whose gradients are computed while their logits are at hand (the default) against the
// whole (N, V) logits through autograd (chunk_rows = -1: the path small vocabularies took before),
// in one run. Every position is a target (a pretraining batch), full finetuning (the head weight,
// tied to the embedding, gets a gradient). One layer only, so that the head is most of the time;
// the layer's part is the same in both columns. Shapes: the toy world's (hidden 128, vocab 2048) and
// a Qwen2.5-0.5B-like head (hidden 896, vocab 151936), float32 and bf16.
// Usage: loss_bench [--threads N] [--shape toy|qwen]
#include <cstdio>
#include <cstring>
#include <random>
#include <string>

#include "bench_timing.h"
#include "emlab/batch.h"
#include "emlab/hf_config.h"
#include "emlab/model.h"
#include "emlab/runtime.h"

using namespace emlab;
using namespace emlab::bench;

namespace {

struct Shape {
  const char* key;   // --shape
  const char* name;
  int64_t hidden, heads, kv_heads, intermediate, vocab, B, T;
};

}  // namespace

int main(int argc, char** argv) {
  int threads = 1;
  std::string only;  // "toy" or "qwen": that shape only
  for (int i = 1; i + 1 < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--shape")) only = argv[++i];
  }
  runtime_set_threads(threads);
  std::printf("torch %s, %d threads; bf16 on this CPU: %s; forward + backward of the SFT loss, best of 5 (2 for the large vocabulary)\n",
              TORCH_VERSION, torch::get_num_threads(), cpu_bf16_name(cpu_bf16_support()).c_str());
  std::printf("%-28s %-9s %6s %12s %12s %8s %10s %10s\n", "shape", "dtype", "N", "whole ms", "chunked ms", "ratio",
              "loss rel.", "grad rel.");
  const Shape shapes[] = {{"toy", "toy world (128, V 2048)", 128, 4, 4, 384, 2048, 32, 170},
                          {"qwen", "Qwen2.5-0.5B (896, V 151936)", 896, 14, 2, 4864, 151936, 1, 512}};
  for (const Shape& s : shapes) {
    if (!only.empty() && only != s.key) continue;
    const int reps = s.vocab > 100000 ? 2 : 5;
    for (const char* dtype : {"float32", "bfloat16"}) {
      const nlohmann::json cfg = {{"model_type", "llama"},          {"vocab_size", s.vocab},
                                  {"hidden_size", s.hidden},        {"intermediate_size", s.intermediate},
                                  {"num_hidden_layers", 1},         {"num_attention_heads", s.heads},
                                  {"num_key_value_heads", s.kv_heads}, {"max_position_embeddings", s.T},
                                  {"tie_word_embeddings", true},    {"rms_norm_eps", 1e-5}};
      LoadOptions lo;
      lo.dtype = dtype;
      auto model = CausalLM::init_random(ModelConfig::from_json(cfg, "bench"), 0, lo);
      for (auto& [name, t] : model->parameters()) t.requires_grad_(true);
      SftDataset ds;
      std::mt19937 rng(0);
      std::uniform_int_distribution<int32_t> tok(3, static_cast<int32_t>(s.vocab - 1));
      std::vector<int64_t> rows;
      for (int64_t r = 0; r < s.B; ++r) {
        SftExample e;
        for (int64_t t = 0; t < s.T; ++t) {
          e.ids.push_back(tok(rng));
          e.mask.push_back(1);
        }
        ds.examples.push_back(std::move(e));
        rows.push_back(r);
      }
      const Batch batch = collate(ds, rows, torch::kCPU);
      const torch::Tensor& head = model->head_weight();
      double loss[2] = {0, 0}, ms[2] = {0, 0};
      torch::Tensor grad[2];
      for (int fused = 0; fused < 2; ++fused) {
        ms[fused] = best_ms(reps, [&] {
          for (auto& [name, t] : model->parameters()) t.mutable_grad() = torch::Tensor();
          torch::Tensor l = sft_loss_sum(*model, batch, ForwardArgs{}, fused ? 0 : -1);
          (l / static_cast<double>(batch.targets)).backward();
          loss[fused] = l.item<double>();
        });
        grad[fused] = head.grad().to(torch::kFloat32);
      }
      const double grad_rel = ((grad[1] - grad[0]).norm() / grad[0].norm()).item<double>();
      std::printf("%-28s %-9s %6ld %12.1f %12.1f %7.2fx %10.1e %10.1e\n", s.name, dtype, (long)batch.targets, ms[0],
                  ms[1], ms[0] / ms[1], std::abs(loss[1] - loss[0]) / std::abs(loss[0]), grad_rel);
    }
  }
  return 0;
}
