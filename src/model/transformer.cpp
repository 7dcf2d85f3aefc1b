// Forward pass of the Llama-family decoder (see the glossary in emlab/model.h).
#include <cmath>

#include "emlab/error.h"
#include "emlab/hooks.h"
#include "emlab/lora.h"
#include "emlab/model.h"

namespace emlab {

namespace F = torch::nn::functional;

namespace {

std::string layer_prefix(int64_t layer) { return "model.layers." + std::to_string(layer) + "."; }

// rotate_half: (x1, x2) -> (-x2, x1) over the last dim (Hugging Face layout, no permutation).
torch::Tensor rotate_half(const torch::Tensor& x) {
  auto halves = x.chunk(2, -1);
  return torch::cat({-halves[1], halves[0]}, -1);
}

}  // namespace

CausalLM::CausalLM(ModelConfig config, const ArchSpec& arch, torch::Device device, torch::ScalarType dtype)
    : config_(std::move(config)), arch_(&arch), device_(device), dtype_(dtype) {
  init_rope();
}

std::vector<std::string> CausalLM::linear_module_suffixes() {
  return {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
          "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};
}

void CausalLM::init_rope() {
  const int64_t D = config_.head_dim;
  // inv_freq[i] = theta^(-2i/D), i < D/2 (float32 as in Hugging Face).
  torch::Tensor inv_freq =
      1.0 / torch::pow(config_.rope_theta, torch::arange(0, D, 2, torch::kFloat64) / static_cast<double>(D));
  if (config_.rope_scaling && config_.rope_scaling->type == "llama3") {
    // Llama 3.1: long wavelengths divided by `factor`, short ones kept, smooth in between.
    const RopeScaling& rs = *config_.rope_scaling;
    const double old_len = static_cast<double>(rs.original_max_position_embeddings);
    const double low_wavelen = old_len / rs.low_freq_factor;
    const double high_wavelen = old_len / rs.high_freq_factor;
    torch::Tensor wavelen = 2 * M_PI / inv_freq;
    torch::Tensor scaled = torch::where(wavelen > low_wavelen, inv_freq / rs.factor, inv_freq);
    torch::Tensor smooth = (old_len / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
    torch::Tensor smoothed = (1 - smooth) * scaled / rs.factor + smooth * scaled;
    torch::Tensor medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen);
    inv_freq = torch::where(medium, smoothed, scaled);
  }
  inv_freq_ = inv_freq.to(torch::kFloat32).to(device_);
}

const torch::Tensor* CausalLM::param_if(const std::string& name) const {
  auto it = params_.find(name);
  return it == params_.end() ? nullptr : &it->second;
}

const torch::Tensor& CausalLM::param(const std::string& name) const {
  const torch::Tensor* p = param_if(name);
  if (!p) throw Error("model has no tensor " + name);
  return *p;
}

int64_t CausalLM::num_parameters() const {
  int64_t n = 0;
  for (const auto& [name, t] : params_) n += t.numel();
  return n;
}

torch::Tensor CausalLM::linear(const torch::Tensor& x, const std::string& module, bool adapters) const {
  const torch::Tensor* bias = param_if(module + ".bias");
  return linear_lora(x, param(module + ".weight"), bias ? *bias : torch::Tensor(), module,
                     adapters ? lora_.get() : nullptr);
}

torch::Tensor CausalLM::rms_norm(const torch::Tensor& x, const std::string& weight_name) const {
  // As Hugging Face's LlamaRMSNorm: normalise in float32 (float64 models stay float64: gradient
  // tests), cast back, then scale.
  torch::Tensor xf = x.to(x.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32);
  xf = xf * torch::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + config_.rms_norm_eps);
  return param(weight_name) * xf.to(x.scalar_type());
}

torch::Tensor CausalLM::attention(int64_t layer, const torch::Tensor& x, const torch::Tensor& cos,
                                  const torch::Tensor& sin, const torch::Tensor& bias,
                                  const ForwardArgs& args, int64_t past) const {
  const std::string p = layer_prefix(layer) + "self_attn.";
  const int64_t B = x.size(0), T = x.size(1);
  const int64_t H = config_.num_attention_heads, Hkv = config_.num_key_value_heads, D = config_.head_dim;
  const int64_t G = H / Hkv;

  torch::Tensor q = linear(x, p + "q_proj", args.adapters).view({B, T, H, D});
  torch::Tensor k = linear(x, p + "k_proj", args.adapters).view({B, T, Hkv, D});
  torch::Tensor v = linear(x, p + "v_proj", args.adapters).view({B, T, Hkv, D});
  if (arch_->qk_norm) {
    q = rms_norm(q, p + "q_norm.weight");
    k = rms_norm(k, p + "k_norm.weight");
  }
  q = q.transpose(1, 2);  // (B, H, T, D)
  k = k.transpose(1, 2);  // (B, Hkv, T, D)
  v = v.transpose(1, 2);  // (B, Hkv, T, D)
  // RoPE; cos/sin: (B, 1, T, D)
  q = q * cos + rotate_half(q) * sin;
  k = k * cos + rotate_half(k) * sin;

  if (args.cache) {
    KVCache& c = *args.cache;
    torch::Tensor& kc = c.k[layer];
    torch::Tensor& vc = c.v[layer];
    kc.narrow(2, past, T).copy_(k);
    vc.narrow(2, past, T).copy_(v);
    k = kc.narrow(2, 0, past + T);  // (B, Hkv, S, D)
    v = vc.narrow(2, 0, past + T);
  }
  const int64_t S = k.size(2);

  // Grouped-query attention without copying k/v: queries as (B, Hkv, G, T, D).
  torch::Tensor qg = q.view({B, Hkv, G, T, D});
  torch::Tensor scores = torch::matmul(qg, k.unsqueeze(2).transpose(-1, -2));  // (B, Hkv, G, T, S)
  scores = scores.to(dtype_ == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32) * (1.0 / std::sqrt(static_cast<double>(D))) + bias;
  torch::Tensor probs = torch::softmax(scores, -1).to(v.scalar_type());
  torch::Tensor out = torch::matmul(probs, v.unsqueeze(2));  // (B, Hkv, G, T, D)
  out = out.reshape({B, H, T, D}).transpose(1, 2).reshape({B, T, H * D});
  (void)S;
  return linear(out, p + "o_proj", args.adapters);  // (B, T, C)
}

torch::Tensor CausalLM::forward(const torch::Tensor& input_ids, const ForwardArgs& args) const {
  TORCH_CHECK(input_ids.dim() == 2, "input_ids must be (B, T), got ", input_ids.sizes());
  const int64_t B = input_ids.size(0), T = input_ids.size(1);
  const int64_t L = config_.num_hidden_layers;
  const int64_t past = args.cache ? args.cache->length : 0;
  const int64_t S = past + T;
  torch::Tensor ids = input_ids.to(device_, torch::kLong);

  if (args.cache) {
    KVCache& c = *args.cache;
    if (c.k.empty() || c.length + T > c.k[0].size(2)) {
      // (Re)allocate with room for at least S positions, copying what is there.
      int64_t cap = std::max({c.capacity, S, c.k.empty() ? int64_t{0} : 2 * c.k[0].size(2)});
      auto opts = torch::TensorOptions().dtype(dtype_).device(device_);
      std::vector<torch::Tensor> nk(L), nv(L);
      for (int64_t l = 0; l < L; ++l) {
        nk[l] = torch::zeros({B, config_.num_key_value_heads, cap, config_.head_dim}, opts);
        nv[l] = torch::zeros_like(nk[l]);
        if (!c.k.empty() && c.length > 0) {
          nk[l].narrow(2, 0, c.length).copy_(c.k[l].narrow(2, 0, c.length));
          nv[l].narrow(2, 0, c.length).copy_(c.v[l].narrow(2, 0, c.length));
        }
      }
      c.k = std::move(nk);
      c.v = std::move(nv);
      c.capacity = cap;
    }
    TORCH_CHECK(c.k[0].size(0) == B, "KV cache holds ", c.k[0].size(0), " rows but the batch has ", B);
  }

  torch::Tensor pos = args.position_ids.defined()
                          ? args.position_ids.to(device_, torch::kLong)
                          : torch::arange(past, S, torch::TensorOptions().dtype(torch::kLong).device(device_))
                                .unsqueeze(0)
                                .expand({B, T});  // (B, T)

  // RoPE tables: freqs (B, T, D/2) -> cos/sin (B, 1, T, D) in the model dtype.
  torch::Tensor freqs = pos.to(torch::kFloat32).unsqueeze(-1) * inv_freq_;
  torch::Tensor emb = torch::cat({freqs, freqs}, -1);
  torch::Tensor cos = emb.cos().to(dtype_).unsqueeze(1);
  torch::Tensor sin = emb.sin().to(dtype_).unsqueeze(1);

  // Additive attention bias (B, 1, 1, T, S): causal in cache index space, padding keys masked,
  // optional sliding window. A finite minimum keeps fully masked (padding) rows NaN-free.
  auto iopts = torch::TensorOptions().dtype(torch::kLong).device(device_);
  torch::Tensor qi = torch::arange(past, S, iopts).unsqueeze(1);  // (T, 1)
  torch::Tensor kj = torch::arange(0, S, iopts).unsqueeze(0);     // (1, S)
  torch::Tensor allowed = (kj <= qi).unsqueeze(0);                // (1, T, S)
  if (arch_->sliding_window && config_.sliding_window && *config_.sliding_window > 0)
    allowed = allowed & (qi - kj < *config_.sliding_window).unsqueeze(0);
  if (args.attention_mask.defined()) {
    torch::Tensor am = args.attention_mask.to(device_);
    TORCH_CHECK(am.dim() == 2 && am.size(0) == B && am.size(1) == S, "attention_mask must be (B, S) = (",
                B, ", ", S, "), got ", am.sizes());
    allowed = allowed & (am != 0).unsqueeze(1);  // (B, T, S)
  }
  torch::Tensor bias = torch::zeros(allowed.sizes(), torch::TensorOptions().dtype(torch::kFloat32).device(device_))
                           .masked_fill(allowed.logical_not(), -1e30)
                           .unsqueeze(1)
                           .unsqueeze(1);  // (B|1, 1, 1, T, S)

  torch::Tensor h = F::embedding(ids, param("model.embed_tokens.weight"));  // (B, T, C)
  for (int64_t l = 0; l < L; ++l) {
    const std::string p = layer_prefix(l);
    torch::Tensor x = rms_norm(h, p + "input_layernorm.weight");
    h = h + attention(l, x, cos, sin, bias, args, past);
    x = rms_norm(h, p + "post_attention_layernorm.weight");
    torch::Tensor mlp = linear(F::silu(linear(x, p + "mlp.gate_proj", args.adapters)) *
                                   linear(x, p + "mlp.up_proj", args.adapters),
                               p + "mlp.down_proj", args.adapters);  // (B, T, C)
    if (args.hooks) mlp = args.hooks->apply(HookSite::MlpOutput, l, mlp);
    h = h + mlp;
    if (args.hooks) h = args.hooks->apply(HookSite::LayerOutput, l, h);
  }
  if (args.cache) args.cache->length = S;

  if (args.last_logits_only) h = h.narrow(1, T - 1, 1);  // (B, 1, C)
  h = rms_norm(h, "model.norm.weight");
  const torch::Tensor* head = config_.tie_word_embeddings ? nullptr : param_if("lm_head.weight");
  return F::linear(h, head ? *head : param("model.embed_tokens.weight"));  // (B, T, V)
}

void KVCache::select_rows(const torch::Tensor& rows) {
  for (auto& t : k) t = t.index_select(0, rows.to(t.device()));
  for (auto& t : v) t = t.index_select(0, rows.to(t.device()));
}

}  // namespace emlab
