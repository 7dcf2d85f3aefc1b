// Padded batches, packed or not: one training step's forward and backward (the SFT loss of full
// finetuning: every parameter gets a gradient) on a right-padded batch, with the forward packing
// the real tokens (the default: norms, projections and MLP on the real tokens only) against the
// same batch with ForwardArgs::pack = false (every padding position computed too), in one run.
// Row lengths are drawn uniformly from [lo * T, T] for a few lo (the padding share follows); the
// first row is always T long. The model is the shipped toy world's (its config, random weights).
// Usage: pack_bench [--threads N] [--model DIR] [--batch B] [--seq T]
#include <cstdio>
#include <cstring>
#include <random>
#include <string>

#include "bench_timing.h"
#include "emlab/batch.h"
#include "emlab/model.h"
#include "emlab/runtime.h"

using namespace emlab;
using namespace emlab::bench;

int main(int argc, char** argv) {
  int threads = 1;
  std::string model_dir = "models/toyworld";
  int64_t B = 32, T = 128;
  for (int i = 1; i + 1 < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--model")) model_dir = argv[++i];
    else if (!std::strcmp(argv[i], "--batch")) B = std::atol(argv[++i]);
    else if (!std::strcmp(argv[i], "--seq")) T = std::atol(argv[++i]);
  }
  runtime_set_threads(threads);
  auto model = CausalLM::load(model_dir);
  for (auto& [name, t] : model->parameters()) t.requires_grad_(true);
  const int64_t V = model->config().vocab_size;
  std::printf("torch %s, %d threads; %s (%.2fM parameters), batch %ld x %ld, forward + backward, best of 5\n",
              TORCH_VERSION, torch::get_num_threads(), model_dir.c_str(), model->num_parameters() / 1e6, (long)B, (long)T);
  std::printf("%-10s %9s %12s %12s %8s %12s\n", "lengths", "padding", "unpacked ms", "packed ms", "ratio", "loss rel.");
  std::mt19937 rng(0);
  for (double lo : {1.0, 0.8, 0.5, 0.25}) {
    SftDataset ds;
    std::uniform_int_distribution<int64_t> len(static_cast<int64_t>(lo * T), T);
    std::uniform_int_distribution<int32_t> tok(3, static_cast<int32_t>(V - 1));
    int64_t real = 0;
    for (int64_t r = 0; r < B; ++r) {
      const int64_t n = r == 0 ? T : len(rng);
      SftExample e;
      for (int64_t t = 0; t < n; ++t) {
        e.ids.push_back(tok(rng));
        e.mask.push_back(1);
      }
      real += n;
      ds.examples.push_back(std::move(e));
    }
    std::vector<int64_t> rows(B);
    for (int64_t r = 0; r < B; ++r) rows[r] = r;
    const Batch batch = collate(ds, rows, torch::kCPU);
    double loss[2] = {0, 0};
    double ms[2] = {0, 0};
    for (int packed = 0; packed < 2; ++packed) {
      ForwardArgs args;
      args.pack = packed == 1;
      ms[packed] = best_ms(5, [&] {
        for (auto& [name, t] : model->parameters()) t.mutable_grad() = torch::Tensor();
        torch::Tensor l = sft_loss_sum(*model, batch, args);
        l.backward();
        loss[packed] = l.item<double>();
      });
    }
    char label[32];
    std::snprintf(label, sizeof label, "[%.2fT,T]", lo);
    std::printf("%-10s %8.1f%% %12.1f %12.1f %7.2fx %12.1e\n", label, 100.0 * (1 - double(real) / double(B * T)),
                ms[0], ms[1], ms[0] / ms[1], std::abs(loss[1] - loss[0]) / std::abs(loss[0]));
  }
  return 0;
}
