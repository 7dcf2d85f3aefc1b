// One decoding step at batch 1 on the CPU as one fused pass (ForwardArgs::fused_decode).
//
// A step of one token reads every weight once; on a small model the products are over in ~2 ms,
// and the ~30 tensor operations per layer around them (each allocating its output and going
// through torch's dispatch) cost ~0.5 ms more (bench/RESULTS.md, "Decode at batch 1 as one fused
// step"). Here the same kernels run on raw memory: the AVX-512 row products, RMSNorm, RoPE, SwiGLU
// and the attention products of src/model, with every sum and rounding as CausalLM::forward
// computes it (bf16: each op's result rounded to bf16 where a torch op would store it), so the
// logits are bit-identical (tests/model/decode_step_test.cpp). Torch still computes the RoPE
// tables (its cos/sin) and the attention softmax (its exp), once per step and per layer.
#include <c10/util/BFloat16.h>

#include <algorithm>
#include <atomic>
#include <array>
#include <cmath>
#include <cstring>
#include <optional>
#include <vector>

#include "emlab/error.h"
#include "emlab/lora.h"
#include "emlab/model.h"
#include "model/avx512.h"
#include "model/decode_step.h"
#include "model/matvec.h"
#include "model/rms_norm.h"
#include "model/rope.h"
#include "model/swiglu.h"

namespace emlab {

namespace {
std::atomic<int64_t> fused_steps{0};
}  // namespace

int64_t model_detail::fused_decode_steps() { return fused_steps.load(); }

#if defined(__x86_64__)

namespace {

// An activation vector in the model dtype (float32 or bf16), as the torch op's output would hold it.
class Vec {
 public:
  void resize(int64_t n) { data_.resize(static_cast<size_t>(n)); }
  void* data() { return data_.data(); }
  const void* data() const { return data_.data(); }

 private:
  std::vector<float> data_;  // n elements of either dtype fit in n floats
};

float get(const void* p, int64_t i, bool bf16) {
  return bf16 ? static_cast<float>(static_cast<const c10::BFloat16*>(p)[i]) : static_cast<const float*>(p)[i];
}
// Stores v rounded to the dtype (bf16: to nearest even, as torch rounds).
void put(void* p, int64_t i, float v, bool bf16) {
  if (bf16) static_cast<c10::BFloat16*>(p)[i] = c10::BFloat16(v);
  else static_cast<float*>(p)[i] = v;
}

// y = a + b elementwise over n, rounded to the dtype (a torch add of two tensors of that dtype).
void add(const void* a, const void* b, void* y, int64_t n, bool bf16) {
  for (int64_t i = 0; i < n; ++i) put(y, i, get(a, i, bf16) + get(b, i, bf16), bf16);
}

// The step's buffers, kept by the calling thread for its next steps.
struct Scratch {
  Vec h, x, q, qn, qr, k, kn, kr, v, att, o, gate, up, act;  // model dtype
  std::vector<float> xf, yf, qf, scores, probs, outf;  // float32
};

}  // namespace

torch::Tensor CausalLM::fused_decode_step(const torch::Tensor& input_ids, const ForwardArgs& args) const {
  using namespace model_detail;
  // Where it applies: one new token of one row into a CPU cache with room, nothing that needs
  // torch's ops (hooks, adapters, gradients, static-shape decoding, Gemma's extra steps).
  if (!args.cache || args.hooks || args.cache_position.defined() || args.hidden_only ||
      args.output_positions.defined())
    return {};
  if (input_ids.size(0) != 1 || input_ids.size(1) != 1 || !device_.is_cpu() || !cpu_has_avx512()) return {};
  if (dtype_ != torch::kFloat32 && dtype_ != torch::kBFloat16) return {};
  const ArchSpec& a = *arch_;
  if (a.embed_scale || a.sandwich_norms || inv_freq_local_.defined() ||
      config_.final_logit_softcapping || (a.attn_softcap && config_.attn_logit_softcapping))
    return {};
  if (config_.hidden_act != "silu" && config_.hidden_act != "swish") return {};
  if (args.adapters && lora_ && lora_->multiplier != 0.0 && !lora_->modules.empty()) return {};
  const bool grad = torch::GradMode::is_enabled();
  for (const auto& [name, t] : params_)
    if (!t.device().is_cpu() || t.scalar_type() != dtype_ || !t.is_contiguous() || (grad && t.requires_grad()))
      return {};
  KVCache& c = *args.cache;
  const int64_t L = config_.num_hidden_layers, past = c.length, S = past + 1;
  if (static_cast<int64_t>(c.k.size()) != L || static_cast<int64_t>(c.v.size()) != L || c.prefix_rows.defined())
    return {};
  const int64_t H = config_.num_attention_heads, Hkv = config_.num_key_value_heads, D = config_.head_dim;
  const int64_t G = H / Hkv, C = config_.hidden_size, F = config_.intermediate_size;
  const int64_t cap = c.k[0].size(2);
  if (S > cap || D % 2 != 0 || G > kAttentionRowsMax) return {};
  if (dtype_ == torch::kBFloat16 && G > kRowsKernelMax && !cpu_has_avx512_bf16()) return {};  // no scores kernel
  int64_t row = 0;  // the batch row's cache row
  if (c.rows.defined()) {
    if (c.rows.numel() != 1 || !c.rows.device().is_cpu() || c.rows.scalar_type() != torch::kLong) return {};
    row = c.rows.data_ptr<int64_t>()[0];
  } else if (c.k[0].size(0) != 1) {
    return {};
  }
  for (const auto* side : {&c.k, &c.v})
    for (const torch::Tensor& t : *side)
      if (!t.device().is_cpu() || t.scalar_type() != dtype_ || !t.is_contiguous() || t.dim() != 4 ||
          row < 0 || row >= t.size(0) || t.size(1) != Hkv || t.size(2) != cap || t.size(3) != D)
        return {};
  const torch::Tensor& embed = param("model.embed_tokens.weight");
  const int64_t id = input_ids.to(torch::kCPU, torch::kLong).item<int64_t>();
  if (id < 0 || id >= embed.size(0)) return {};  // forward's embedding reports it
  torch::Tensor mask;  // (S) int64 on the CPU, or undefined (all real)
  if (args.attention_mask.defined()) {
    if (args.attention_mask.dim() != 2 || args.attention_mask.size(0) != 1 || args.attention_mask.size(1) != S)
      return {};  // forward reports it
    mask = args.attention_mask.to(torch::kCPU, torch::kLong).contiguous().view({S});
  }
  if (args.position_ids.defined() && args.position_ids.numel() != 1) return {};  // forward reports it
  const torch::Tensor pos = args.position_ids.defined() ? args.position_ids.to(device_, torch::kLong).view({1, 1})
                                                        : torch::full({1, 1}, past, torch::kLong);
  const Rope rope = rope_tables(pos, inv_freq_);  // cos/sin (1, 1, 1, D) in the model dtype

  const bool bf16 = dtype_ == torch::kBFloat16;
  thread_local Scratch s;
  for (Vec* v : {&s.h, &s.x, &s.o}) v->resize(C);
  for (Vec* v : {&s.q, &s.qn, &s.qr, &s.att}) v->resize(H * D);
  for (Vec* v : {&s.k, &s.kn, &s.kr, &s.v}) v->resize(Hkv * D);
  for (Vec* v : {&s.gate, &s.up, &s.act}) v->resize(F);
  s.xf.resize(std::max({C, F, H * D}));
  s.yf.resize(std::max({C, 2 * F, H * D + 2 * Hkv * D}));  // the float32 sums of q, k and v (gate and up) together
  s.qf.resize(H * D);
  s.scores.resize(H * S);
  s.probs.resize(H * S);
  s.outf.resize(H * D);

  // For each part, y (out) float32 = x (in, model dtype) W^T, as small_rows_linear's row kernels
  // (bf16 rows widened to float32 only where the kernel reads float32), all in one parallel pass.
  auto products = [&](const void* x, int64_t in, const RowsProductPart* parts, int64_t n) {
    if (rows_product_reads_bf16(1, bf16)) {
      rows_products(parts, n, nullptr, 1, in, bf16, static_cast<const uint16_t*>(x));
      return;
    }
    const float* xp = static_cast<const float*>(x);
    if (bf16) {
      for (int64_t i = 0; i < in; ++i) s.xf[i] = get(x, i, true);
      xp = s.xf.data();
    }
    rows_products(parts, n, xp, 1, in, bf16);
  };
  // For each (module, y): y (out) = x (in) W^T + b in the model dtype, as linear_small_rows_aware:
  // the float32 sums, rounded to bf16, then the bias added (a bf16 add). The modules' products
  // (those of one input: q, k, v; gate, up) in one parallel pass.
  struct Linear {
    std::string module;
    void* y;
  };
  auto linears = [&](const void* x, std::initializer_list<Linear> modules) {
    std::array<RowsProductPart, 3> parts{};
    std::array<const torch::Tensor*, 3> biases{};
    int64_t n = 0, offset = 0, in = 0;
    for (const Linear& m : modules) {
      const torch::Tensor& w = param(m.module + ".weight");  // (out, in)
      in = w.size(1);
      float* y = bf16 ? s.yf.data() + offset : static_cast<float*>(m.y);  // bf16: rounded into m.y below
      parts.at(static_cast<size_t>(n)) = {w.data_ptr(), y, w.size(0)};
      biases.at(static_cast<size_t>(n)) = param_if(m.module + ".bias");
      offset += w.size(0);
      ++n;
    }
    products(x, in, parts.data(), n);
    int64_t i = 0;
    for (const Linear& m : modules) {
      const RowsProductPart& p = parts.at(static_cast<size_t>(i));
      if (bf16)
        for (int64_t j = 0; j < p.out; ++j) put(m.y, j, p.y[j], true);
      if (const torch::Tensor* b = biases.at(static_cast<size_t>(i))) add(m.y, b->data_ptr(), m.y, p.out, bf16);
      ++i;
    }
  };
  auto norm = [&](const void* x, const std::string& weight, void* y) {
    rms_norm_rows(x, param(weight).data_ptr(), y, 1, C, config_.rms_norm_eps, a.norm_plus_one, bf16);
  };
  const int64_t es = bf16 ? 2 : 4;  // element size
  const float scale = static_cast<float>(
      1.0 / std::sqrt(config_.query_pre_attn_scalar.value_or(static_cast<double>(D))));  // as torch's * scale
  const int64_t* m = mask.defined() ? mask.data_ptr<int64_t>() : nullptr;

  std::memcpy(s.h.data(), static_cast<const char*>(embed.data_ptr()) + id * C * es, C * es);  // (C)
  for (int64_t l = 0; l < L; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    // Attention: q (H, D), k and v (Hkv, D), (Qwen3) RMSNorm per head on q and k, RoPE on q and k,
    // k and v into the cache at `past`.
    norm(s.h.data(), p + "input_layernorm.weight", s.x.data());
    linears(s.x.data(), {{p + "self_attn.q_proj", s.q.data()},
                         {p + "self_attn.k_proj", s.k.data()},
                         {p + "self_attn.v_proj", s.v.data()}});
    const void* qin = s.q.data();
    const void* kin = s.k.data();
    if (a.qk_norm) {  // per head (Qwen3)
      rms_norm_rows(s.q.data(), param(p + "self_attn.q_norm.weight").data_ptr(), s.qn.data(), H, D,
                    config_.rms_norm_eps, a.norm_plus_one, bf16);
      rms_norm_rows(s.k.data(), param(p + "self_attn.k_norm.weight").data_ptr(), s.kn.data(), Hkv, D,
                    config_.rms_norm_eps, a.norm_plus_one, bf16);
      qin = s.qn.data();
      kin = s.kn.data();
    }
    rope_heads(qin, rope.cos.data_ptr(), rope.sin.data_ptr(), s.qr.data(), H, D, bf16);
    rope_heads(kin, rope.cos.data_ptr(), rope.sin.data_ptr(), s.kr.data(), Hkv, D, bf16);
    char* kc = static_cast<char*>(c.k[l].data_ptr()) + row * Hkv * cap * D * es;  // (Hkv, cap, D)
    char* vc = static_cast<char*>(c.v[l].data_ptr()) + row * Hkv * cap * D * es;
    for (int64_t h = 0; h < Hkv; ++h) {
      std::memcpy(kc + (h * cap + past) * D * es, static_cast<const char*>(s.kr.data()) + h * D * es, D * es);
      std::memcpy(vc + (h * cap + past) * D * es, static_cast<const char*>(s.v.data()) + h * D * es, D * es);
    }
    // Scores (Hkv, G, S) of the G query heads of each kv head; times the scale, plus the mask's
    // additive bias (0 or -1e30; a sliding window masks positions `window` or more back).
    const float* qf = static_cast<const float*>(s.qr.data());
    if (bf16) {
      for (int64_t i = 0; i < H * D; ++i) s.qf[i] = get(s.qr.data(), i, true);
      qf = s.qf.data();
    }
    const auto* qb = bf16 ? static_cast<const uint16_t*>(s.qr.data()) : nullptr;
    if (!attention_scores_row(qf, qb, kc, cap * D, Hkv, G, S, D, bf16, s.scores.data()))
      throw Error("fused decode step: no attention kernel for " + std::to_string(G) + " query heads per kv head");
    const std::optional<int64_t> window = layer_window(l);
    for (int64_t r = 0; r < H; ++r) {
      float* sc = s.scores.data() + r * S;
      for (int64_t j = 0; j < S; ++j) {
        const bool allowed = (!m || m[j] != 0) && (!window || past - j < *window);
        sc[j] = sc[j] * scale + (allowed ? 0.0f : -1e30f);
      }
    }
    torch::Tensor probs = torch::from_blob(s.probs.data(), {H, S}, torch::kFloat32);
    at::_softmax_out(probs, torch::from_blob(s.scores.data(), {H, S}, torch::kFloat32), -1, false);
    attention_values_row(s.probs.data(), vc, cap * D, Hkv, G, S, D, bf16, s.outf.data());  // (Hkv, G, D)
    for (int64_t i = 0; i < H * D; ++i) put(s.att.data(), i, s.outf[i], bf16);
    linears(s.att.data(), {{p + "self_attn.o_proj", s.o.data()}});
    add(s.h.data(), s.o.data(), s.h.data(), C, bf16);
    // MLP.
    norm(s.h.data(), p + "post_attention_layernorm.weight", s.x.data());
    linears(s.x.data(), {{p + "mlp.gate_proj", s.gate.data()}, {p + "mlp.up_proj", s.up.data()}});
    swiglu_range(s.gate.data(), s.up.data(), s.act.data(), F, bf16);
    linears(s.act.data(), {{p + "mlp.down_proj", s.o.data()}});
    add(s.h.data(), s.o.data(), s.h.data(), C, bf16);
  }
  c.length = S;
  ++fused_steps;
  // The head: float32 sums, then (bf16) rounded, as CausalLM::logits.
  norm(s.h.data(), "model.norm.weight", s.x.data());
  const torch::Tensor& head = head_weight();
  torch::Tensor logits = torch::empty({1, 1, head.size(0)}, torch::kFloat32);  // (1, 1, V)
  const RowsProductPart head_part{head.data_ptr(), logits.data_ptr<float>(), head.size(0)};
  products(s.x.data(), head.size(1), &head_part, 1);
  return bf16 ? logits.to(dtype_) : logits;
}

#else  // not x86-64: no AVX-512 kernels

torch::Tensor CausalLM::fused_decode_step(const torch::Tensor&, const ForwardArgs&) const { return {}; }

#endif

}  // namespace emlab
