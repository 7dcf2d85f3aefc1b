// Attention over a KV cache at decode: softmax(q k^T * scale + bias) v for R query rows per (batch
// row, kv head), through torch::matmul (batched products: B x Hkv small BLAS calls each, the
// reference and emlab's path before) and through emlab's kernels (model/matvec.h:
// attention_scores, attention_values), on the same cache views (capacity > filled positions), in
// fp32 and bf16. Shapes: the toy world's evaluation (batch 100, 4 heads of 32, ~90 positions), the
// llama.cpp comparison model (4 heads / 2 kv heads of 64) at batch 1, 16 and 64 after 128
// positions, and Qwen2.5-0.5B (14 heads / 2 kv heads of 64) at batch 16 after 512. Prints ms per
// layer and step for each, matmul / emlab, and the largest difference between the two outputs.
//
// Then attention over whole sequences, forward and backward (training): the torch ops the model
// used before (batched products, scaling, bias, softmax; autograd) against the fused operation
// (model/causal_attention.h), float32, inputs laid out as the model makes them, right padding in
// one row. Shapes: a toy-world finetune batch and pretraining batch (one process's half), the
// training benchmark model's batch (bench/train_bench.cpp) and the LoRA memory benchmark's
// Qwen2.5-0.5B shape (batch 4 x 512). Prints ms per layer for forward + backward, the ratio, and the
// largest difference of the output and of q's gradient.
//
// Last, the same shapes in bf16: the fused operation with q, k, v widened to float32 and float32
// products (the reference, as before) against its bf16 products (AVX512-BF16 dot products, where
// the CPU has them), forward + backward and forward alone, and the largest difference of the
// output and of q's gradient between the two.
// Usage: attention_bench [--threads N]
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "bench_timing.h"
#include "emlab/runtime.h"
#include "model/causal_attention.h"
#include "model/matvec.h"

using emlab::bench::best_ms;

namespace {

// Decode over a cache: matmul against attention_scores / attention_values.
void decode_attention() {
  torch::NoGradGuard no_grad;
  std::printf("%-28s %5s %4s %4s %4s %4s %5s %10s %9s %9s %9s\n", "shape", "dtype", "B", "Hkv", "R", "D", "S",
              "matmul ms", "emlab ms", "ratio", "max diff");
  struct Shape {
    const char* name;
    int64_t B, Hkv, R, D, S;
  } shapes[] = {{"toy world eval", 100, 4, 1, 32, 90},       {"llama.cpp model, batch 1", 1, 2, 2, 64, 128},
                {"llama.cpp model, batch 16", 16, 2, 2, 64, 128}, {"llama.cpp model, batch 64", 64, 2, 2, 64, 128},
                {"qwen2.5-0.5b, batch 16", 16, 2, 7, 64, 512}};
  for (const auto& s : shapes) {
    for (auto dt : {torch::kFloat32, torch::kBFloat16}) {
      const int64_t cap = s.S + 64;  // a cache with room left, as during decode
      torch::Tensor q = torch::randn({s.B, s.Hkv, s.R, s.D}).to(dt);
      torch::Tensor k = torch::randn({s.B, s.Hkv, cap, s.D}).to(dt).narrow(2, 0, s.S);
      torch::Tensor v = torch::randn({s.B, s.Hkv, cap, s.D}).to(dt).narrow(2, 0, s.S);
      torch::Tensor bias = torch::zeros({s.B, 1, 1, s.S});  // padding keys masked as the model does
      bias.narrow(3, 0, 3).fill_(-1e30);
      const double scale = 1.0 / std::sqrt(static_cast<double>(s.D));
      auto reference = [&] {
        torch::Tensor scores = torch::matmul(q, k.transpose(-1, -2)).to(torch::kFloat32) * scale;
        return torch::matmul(torch::softmax(scores + bias, -1).to(dt), v);
      };
      auto kernels = [&] {
        torch::Tensor scores = emlab::model_detail::attention_scores(q, k) * scale;
        return emlab::model_detail::attention_values(torch::softmax(scores + bias, -1), v);
      };
      if (!emlab::model_detail::attention_scores(q, k).defined()) {
        std::printf("%-28s %5s: the kernels do not take this case on this CPU\n", s.name,
                    dt == torch::kFloat32 ? "fp32" : "bf16");
        continue;
      }
      const double diff = (reference().to(torch::kFloat32) - kernels().to(torch::kFloat32)).abs().max().item<double>();
      const int reps = 30;
      const double ref_ms = best_ms(reps, reference), emlab_ms = best_ms(reps, kernels);
      std::printf("%-28s %5s %4lld %4lld %4lld %4lld %5lld %10.4f %9.4f %8.2fx %9.2e\n", s.name,
                  dt == torch::kFloat32 ? "fp32" : "bf16", static_cast<long long>(s.B), static_cast<long long>(s.Hkv),
                  static_cast<long long>(s.R), static_cast<long long>(s.D), static_cast<long long>(s.S), ref_ms,
                  emlab_ms, ref_ms / emlab_ms, diff);
    }
  }
}

// The shapes of the whole-sequence tables (as the model lays them out: (B, H, T, D) views of
// (B, T, H, D) projections).
struct SequenceShape {
  const char* name;
  int64_t B, H, Hkv, T, D;
};
const SequenceShape kSequenceShapes[] = {{"toy world finetune batch", 16, 4, 4, 110, 32},
                                         {"toy world pretraining batch", 16, 4, 4, 200, 32},
                                         {"training benchmark model", 8, 8, 4, 128, 64},
                                         {"qwen2.5-0.5b, batch 4 x 512", 4, 14, 2, 512, 64},
                                         {"engine prefill, batch 1 x 128", 1, 8, 4, 128, 64},
                                         {"engine prefill, batch 64 x 128", 64, 8, 4, 128, 64}};

// A whole-sequence table's title and columns: the reference's and the measured path's times.
void print_sequence_header(const char* title, const std::string& ref, const std::string& ours) {
  std::printf("\nwhole sequences, %s\n", title);
  std::printf("%-30s %4s %4s %4s %5s %4s %10s %9s %9s %9s %9s %10s %9s %9s\n", "shape", "B", "H", "Hkv", "T", "D",
              (ref + " ms").c_str(), (ours + " ms").c_str(), "ratio", "out diff", "dq diff", ("fwd " + ref).c_str(),
              ("fwd " + ours).c_str(), "ratio");
}

// One row: forward + backward ms, their ratio, the output's and q's gradient's largest differences,
// forward alone ms and its ratio.
void print_sequence_row(const SequenceShape& s, double ref_ms, double ms, double out_diff, double dq_diff,
                        double fwd_ref_ms, double fwd_ms) {
  std::printf("%-30s %4lld %4lld %4lld %5lld %4lld %10.3f %9.3f %8.2fx %9.2e %9.2e %10.3f %9.3f %8.2fx\n", s.name,
              static_cast<long long>(s.B), static_cast<long long>(s.H), static_cast<long long>(s.Hkv),
              static_cast<long long>(s.T), static_cast<long long>(s.D), ref_ms, ms, ref_ms / ms, out_diff, dq_diff,
              fwd_ref_ms, fwd_ms, fwd_ref_ms / fwd_ms);
}

// Whole sequences, forward and backward: the torch ops against causal_attention.
void sequence_attention() {
  print_sequence_header("float32, per layer: forward + backward, and forward alone without gradient", "torch",
                        "fused");
  for (const auto& s : kSequenceShapes) {
    const int64_t G = s.H / s.Hkv;
    // As the model makes them: (B, H, T, D) views of (B, T, H, D) projections.
    auto heads = [&](int64_t n) { return torch::randn({s.B, s.T, n, s.D}).transpose(1, 2).requires_grad_(); };
    torch::Tensor q = heads(s.H), k = heads(s.Hkv), v = heads(s.Hkv);
    torch::Tensor mask = torch::ones({s.B, s.T}, torch::kLong);
    mask[0].narrow(0, s.T - 7, 7).zero_();  // one row padded
    torch::Tensor i = torch::arange(s.T).unsqueeze(1), j = torch::arange(s.T).unsqueeze(0);
    torch::Tensor allowed = (j <= i).unsqueeze(0) & (mask != 0).unsqueeze(1);  // (B, T, T)
    torch::Tensor bias = torch::zeros({s.B, s.T, s.T}).masked_fill(allowed.logical_not(), -1e30).view({s.B, 1, 1, s.T, s.T});
    torch::Tensor grad = torch::randn({s.B, s.T, s.H * s.D});
    const double scale = 1.0 / std::sqrt(static_cast<double>(s.D));
    auto reference = [&] {
      torch::Tensor scores = torch::matmul(q.reshape({s.B, s.Hkv, G * s.T, s.D}), k.transpose(-1, -2));
      scores = scores.view({s.B, s.Hkv, G, s.T, s.T}) * scale;
      torch::Tensor probs = torch::softmax(scores + bias, -1).view({s.B, s.Hkv, G * s.T, s.T});
      return torch::matmul(probs, v).view({s.B, s.H, s.T, s.D}).transpose(1, 2).reshape({s.B, s.T, s.H * s.D});
    };
    auto fused = [&] {
      return emlab::model_detail::causal_attention(q, k, v, mask, 0, scale).transpose(1, 2).reshape({s.B, s.T, s.H * s.D});
    };
    if (!emlab::model_detail::causal_attention(q, k, v, mask, 0, scale).defined()) {
      std::printf("%-30s: the fused attention does not take this case on this CPU\n", s.name);
      continue;
    }
    auto run = [&](const auto& f) {  // forward + backward; returns the output and q's gradient
      q.mutable_grad() = torch::Tensor();
      torch::Tensor out = f();
      out.backward(grad);
      return std::make_pair(out.detach(), q.grad().clone());
    };
    const auto [ro, rg] = run(reference);
    const auto [fo, fg] = run(fused);
    const double out_diff = (ro - fo).abs().max().item<double>(), dq_diff = (rg - fg).abs().max().item<double>();
    const int reps = s.T >= 512 ? 3 : 10;
    const double ref_ms = best_ms(reps, [&] { run(reference); }), fused_ms = best_ms(reps, [&] { run(fused); });
    double fwd_ref_ms = 0, fwd_fused_ms = 0;  // prefill and scoring: no gradient
    {
      torch::NoGradGuard no_grad;
      fwd_ref_ms = best_ms(reps, reference);
      fwd_fused_ms = best_ms(reps, fused);
    }
    print_sequence_row(s, ref_ms, fused_ms, out_diff, dq_diff, fwd_ref_ms, fwd_fused_ms);
  }
}

// Whole sequences in bf16: the fused operation's widened float32 products against its bf16 ones.
void sequence_attention_bf16() {
  print_sequence_header("bf16, per layer: float32 products (q, k, v widened) against bf16 products", "f32", "bf16");
  for (const auto& s : kSequenceShapes) {
    auto heads = [&](int64_t n) {
      return torch::randn({s.B, s.T, n, s.D}).to(torch::kBFloat16).transpose(1, 2).requires_grad_();
    };
    torch::Tensor q = heads(s.H), k = heads(s.Hkv), v = heads(s.Hkv);
    torch::Tensor mask = torch::ones({s.B, s.T}, torch::kLong);
    mask[0].narrow(0, s.T - 7, 7).zero_();  // one row padded
    torch::Tensor grad = torch::randn({s.B, s.T, s.H * s.D}).to(torch::kBFloat16);
    const double scale = 1.0 / std::sqrt(static_cast<double>(s.D));
    auto attention = [&](bool bf16_products) {
      return [&, bf16_products] {
        return emlab::model_detail::causal_attention(q, k, v, mask, 0, scale, bf16_products)
            .transpose(1, 2)
            .reshape({s.B, s.T, s.H * s.D});
      };
    };
    const auto widened = attention(false), dot = attention(true);
    if (!widened().defined()) {
      std::printf("%-30s: the fused attention does not take this case on this CPU\n", s.name);
      continue;
    }
    auto run = [&](const auto& f) {
      q.mutable_grad() = torch::Tensor();
      torch::Tensor out = f();
      out.backward(grad);
      return std::make_pair(out.detach().to(torch::kFloat32), q.grad().to(torch::kFloat32));
    };
    const auto [wo, wg] = run(widened);
    const auto [bo, bg] = run(dot);
    const double out_diff = (wo - bo).abs().max().item<double>(), dq_diff = (wg - bg).abs().max().item<double>();
    const int reps = s.T >= 512 ? 3 : 10;
    const double w_ms = best_ms(reps, [&] { run(widened); }), b_ms = best_ms(reps, [&] { run(dot); });
    double fwd_w_ms = 0, fwd_b_ms = 0;
    {
      torch::NoGradGuard no_grad;
      fwd_w_ms = best_ms(reps, widened);
      fwd_b_ms = best_ms(reps, dot);
    }
    print_sequence_row(s, w_ms, b_ms, out_diff, dq_diff, fwd_w_ms, fwd_b_ms);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 0;
  for (int i = 1; i + 1 < argc; ++i)
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[++i]);
  emlab::runtime_set_threads(threads);
  std::printf("torch %s, %d threads\n", TORCH_VERSION, torch::get_num_threads());
  decode_attention();
  sequence_attention();
  sequence_attention_bf16();
  return 0;
}
