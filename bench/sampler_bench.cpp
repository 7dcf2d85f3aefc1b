// Sampler benchmark: one sampling step (temperature 1; no filter, top-p 0.95 / top-k 50 / both)
// over a Qwen2.5-sized vocabulary (151936) at batch 1, 16 and 64, through `sample_tokens` (partial
// selection: topk over rounds of candidates; without a filter, a walk over each row) against the
// pipeline it replaced (sort the whole vocabulary, softmax, cumulative sum, cut, draw; without a
// filter: softmax, cumulative sum and search in token order), same logits and uniforms; also checks
// that both pick the same tokens. Three logit shapes: Zipf-like with exponent 2 (logit of rank r =
// -2 log r: the top token has 61% of the mass, the 0.95-nucleus ~30 tokens, as in trained models
// at temperature 1), exponent 1.2 (a heavy tail: the 0.95-nucleus is most of the vocabulary) and
// flat (N(0, 0.5²) logits, a random model); and "mixed": half the rows zipf-2, half flat. Rows
// "greedy" (temperature 0, float32 and bf16 logits): against torch's copy to float32 and argmax
// (what sample_tokens ran before its own pass over each row).
// Usage: sampler_bench [--threads N] [--vocab V] [--reps R]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "bench_timing.h"
#include "emlab/generator.h"
#include "emlab/runtime.h"

using namespace emlab;
using emlab::bench::best_ms;

namespace {

// The full-sort pipeline (the reference): sort, keep the first k, renormalise, drop every
// candidate with mass >= p before it, inverse-CDF draw. Without a filter, torch's pipeline in token
// order: softmax, cumulative sum, search (what sample_tokens ran before its row walk).
torch::Tensor full_sort_sample(const torch::Tensor& logits, double top_p, int64_t top_k, const torch::Tensor& u) {
  if (top_p >= 1.0 && top_k == 0) {
    torch::Tensor cdf = torch::softmax(logits, -1).cumsum(-1);
    return torch::searchsorted(cdf, u.unsqueeze(-1) * cdf.narrow(-1, cdf.size(-1) - 1, 1), false, true)
        .clamp_max(cdf.size(-1) - 1)
        .squeeze(-1);
  }
  auto [sx, order] = logits.sort(-1, /*descending=*/true);
  if (top_k > 0) sx = sx.narrow(-1, 0, top_k), order = order.narrow(-1, 0, top_k);
  torch::Tensor p = torch::softmax(sx, -1);
  torch::Tensor drop = (p.cumsum(-1) - p) >= top_p;
  drop.narrow(-1, 0, 1).fill_(false);
  p = p.masked_fill(drop, 0.0);
  torch::Tensor cdf = p.cumsum(-1);
  torch::Tensor pick = torch::searchsorted(cdf, u.unsqueeze(-1) * cdf.narrow(-1, cdf.size(-1) - 1, 1), false, true)
                           .clamp_max(cdf.size(-1) - 1);
  return order.gather(-1, pick).squeeze(-1);
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 0, reps = 5;
  int64_t V = 151936;
  for (int i = 1; i + 1 < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--vocab")) V = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[++i]);
  }
  runtime_set_threads(threads);
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  std::printf("vocabulary %lld, %d threads, best of %d\n", static_cast<long long>(V), torch::get_num_threads(), reps);
  std::printf("%-8s %-14s %5s %14s %14s %8s %10s\n", "logits", "filter", "batch", "full sort ms", "sampler ms",
              "ratio", "same picks");
  for (const char* shape : {"zipf-2", "zipf-1.2", "flat", "mixed"}) {
    for (int64_t B : {int64_t{1}, int64_t{16}, int64_t{64}}) {
      torch::Tensor logits;
      // Logit of the token of rank r: -s log r, in a random order per row.
      auto zipf = [&](double s) {
        torch::Tensor base = -s * torch::log(torch::arange(1, V + 1, torch::kFloat32));
        return torch::stack(std::vector<torch::Tensor>(B, base)).gather(1, torch::argsort(torch::rand({B, V}), int64_t{-1}));
      };
      const std::string sh = shape;
      if (sh == "zipf-2") logits = zipf(2.0);
      else if (sh == "zipf-1.2") logits = zipf(1.2);
      else if (sh == "flat") logits = torch::randn({B, V}) * 0.5;
      else logits = torch::cat({zipf(2.0).narrow(0, 0, (B + 1) / 2), torch::randn({B / 2, V}) * 0.5});
      torch::Tensor u = torch::rand({B});
      // One row: the reference pipeline against sample_tokens(x, o, u), timed and compared.
      auto measure = [&](const char* name, const torch::Tensor& x, const SampleOptions& o, const auto& reference) {
        torch::Tensor a, b;
        const double ref = best_ms(reps, [&] { a = reference(); });
        const double ours = best_ms(reps, [&] { b = sample_tokens(x, o, u); });
        std::printf("%-8s %-14s %5lld %14.2f %14.2f %7.1fx %6lld/%lld\n", shape, name, static_cast<long long>(B), ref,
                    ours, ref / ours, static_cast<long long>(a.eq(b).sum().item<int64_t>()), static_cast<long long>(B));
      };
      struct Filter {
        const char* name;
        double top_p;
        int64_t top_k;
      };
      for (const Filter& f : {Filter{"none", 1.0, 0}, Filter{"top-p 0.95", 0.95, 0}, Filter{"top-k 50", 1.0, 50},
                              Filter{"both", 0.95, 50}}) {
        SampleOptions o;
        o.top_p = f.top_p;
        o.top_k = f.top_k;
        measure(f.name, logits, o, [&] { return full_sort_sample(logits, f.top_p, f.top_k, u); });
      }
      for (auto dt : {torch::kFloat32, torch::kBFloat16}) {
        const torch::Tensor x = logits.to(dt);
        SampleOptions o;
        o.temperature = 0.0;
        measure(dt == torch::kFloat32 ? "greedy" : "greedy bf16", x, o,
                [&] { return x.to(torch::kFloat32).argmax(-1); });
      }
    }
  }
  return 0;
}
