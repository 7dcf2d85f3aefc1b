// Forward pass of the decoder (see the glossary in emlab/model.h): the Llama family, and Gemma 2/3
// through the traits of their ArchSpec (scaled embeddings, (1 + w) norms, sandwich norms, GeGLU,
// query_pre_attn_scalar, softcapping, sliding/global layers with their own RoPE bases).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>

#include "emlab/error.h"
#include "emlab/hooks.h"
#include "emlab/lora.h"
#include "emlab/model.h"
#include "model/causal_attention.h"
#include "model/rms_norm.h"
#include "model/rope.h"
#include "model/swiglu.h"
#include "model/matvec.h"

namespace emlab {

namespace F = torch::nn::functional;

namespace {

std::string layer_prefix(int64_t layer) { return "model.layers." + std::to_string(layer) + "."; }

// rotate_half: (x1, x2) -> (-x2, x1) over the last dim (Hugging Face layout, no permutation).
torch::Tensor rotate_half(const torch::Tensor& x) {
  auto halves = x.chunk(2, -1);
  return torch::cat({-halves[1], halves[0]}, -1);
}

// inv_freq[i] = theta^(-2i/D), i < D/2, in float32 as transformers computes it, then scaled:
// linear divides every frequency by `factor`; llama3 divides long wavelengths, keeps short ones and
// interpolates in between. (D/2) float32 on the CPU.
torch::Tensor rope_inv_freq(double theta, int64_t D, const std::optional<RopeScaling>& scaling) {
  torch::Tensor inv_freq = 1.0 / torch::pow(theta, torch::arange(0, D, 2, torch::kFloat32) / static_cast<double>(D));
  if (!scaling) return inv_freq;
  const RopeScaling& rs = *scaling;
  if (rs.type == "linear") return inv_freq / rs.factor;
  // llama3 (Llama 3.1).
  const double old_len = static_cast<double>(rs.original_max_position_embeddings);
  const double low_wavelen = old_len / rs.low_freq_factor;
  const double high_wavelen = old_len / rs.high_freq_factor;
  torch::Tensor wavelen = 2 * M_PI / inv_freq;
  torch::Tensor scaled = torch::where(wavelen > low_wavelen, inv_freq / rs.factor, inv_freq);
  torch::Tensor smooth = (old_len / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
  torch::Tensor smoothed = (1 - smooth) * scaled / rs.factor + smooth * scaled;
  torch::Tensor medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen);
  return torch::where(medium, smoothed, scaled);
}

// cap * tanh(x / cap): Gemma's soft capping of attention scores and logits.
torch::Tensor softcap(const torch::Tensor& x, double cap) { return torch::tanh(x / cap) * cap; }

// Packed rows: the real tokens of a padded (B, T) batch, in row-major order, as one row of N.
// pack: (B, T, ...) -> (1, N, ...); unpack: (1, N, ...) -> (B, T, ...) with zeros at the padding.
// Both differentiable (a gather and a scatter into zeros).
torch::Tensor pack_rows(const torch::Tensor& x, const torch::Tensor& index) {
  std::vector<int64_t> shape = {-1};
  for (int64_t d = 2; d < x.dim(); ++d) shape.push_back(x.size(d));
  return x.reshape(shape).index_select(0, index).unsqueeze(0);
}
torch::Tensor unpack_rows(const torch::Tensor& x, const torch::Tensor& index, int64_t B, int64_t T) {
  std::vector<int64_t> flat = {B * T}, shape = {B, T};
  for (int64_t d = 2; d < x.dim(); ++d) {
    flat.push_back(x.size(d));
    shape.push_back(x.size(d));
  }
  return torch::zeros(flat, x.options()).index_copy(0, index, x.squeeze(0)).view(shape);
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
  inv_freq_ = rope_inv_freq(config_.rope_theta, config_.head_dim, config_.rope_scaling).to(device_);
  if (arch_->local_rope && config_.rope_local_theta)
    inv_freq_local_ = rope_inv_freq(*config_.rope_local_theta, config_.head_dim, std::nullopt).to(device_);
}

std::optional<int64_t> CausalLM::layer_window(int64_t layer) const {
  if (!config_.sliding_window) return std::nullopt;
  switch (arch_->window) {
    case WindowLayers::All: return config_.sliding_window;
    case WindowLayers::LayerTypes:
      return config_.layer_is_sliding(layer) ? config_.sliding_window : std::nullopt;
    case WindowLayers::None: break;
  }
  return std::nullopt;
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
  // Normalise in float32 (float64 models stay float64: gradient tests). Llama's RMSNorm casts back,
  // then scales by w; Gemma's scales by (1 + w) in float32, then casts back. Fused on the CPU.
  const torch::Tensor& w = param(weight_name);
  torch::Tensor fused = model_detail::rms_norm_fused(x, w, config_.rms_norm_eps, arch_->norm_plus_one);
  if (fused.defined()) return fused;
  torch::Tensor xf = x.to(x.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32);
  xf = xf * torch::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + config_.rms_norm_eps);
  if (arch_->norm_plus_one) return (xf * (1 + w.to(xf.scalar_type()))).to(x.scalar_type());
  return w * xf.to(x.scalar_type());
}

torch::Tensor CausalLM::mlp(int64_t layer, const torch::Tensor& x, bool adapters) const {
  const std::string p = layer_prefix(layer) + "mlp.";
  torch::Tensor gate = linear(x, p + "gate_proj", adapters);  // (B, T, F)
  torch::Tensor up = linear(x, p + "up_proj", adapters);      // (B, T, F)
  const std::string& act = config_.hidden_act;
  torch::Tensor h;  // (B, T, F)
  if (act == "silu" || act == "swish") {
    h = model_detail::swiglu(gate, up);  // fused on the CPU; undefined where not taken
    if (!h.defined()) h = F::silu(gate) * up;
  } else if (act == "gelu") {
    h = torch::gelu(gate) * up;
  } else {
    h = torch::gelu(gate, "tanh") * up;  // gelu_pytorch_tanh, gelu_new (checked by ModelConfig)
  }
  return linear(h, p + "down_proj", adapters);  // (B, T, C)
}

torch::Tensor CausalLM::attention(int64_t layer, const torch::Tensor& x, const Rope& rope, const torch::Tensor& bias,
                                  const ForwardArgs& args, int64_t past, const Packing* packing,
                                  const torch::Tensor* rows) const {
  const std::string p = layer_prefix(layer) + "self_attn.";
  const int64_t H = config_.num_attention_heads, Hkv = config_.num_key_value_heads, D = config_.head_dim;
  const int64_t G = H / Hkv;
  const int64_t B0 = x.size(0), T0 = x.size(1);  // (B, T), or (1, N) packed

  torch::Tensor q = linear(x, p + "q_proj", args.adapters).view({B0, T0, H, D});
  torch::Tensor k = linear(x, p + "k_proj", args.adapters).view({B0, T0, Hkv, D});
  torch::Tensor v = linear(x, p + "v_proj", args.adapters).view({B0, T0, Hkv, D});
  if (arch_->qk_norm) {
    q = rms_norm(q, p + "q_norm.weight");
    k = rms_norm(k, p + "k_norm.weight");
  }
  // RoPE; cos/sin: (B0, T0, 1, D). Fused on the CPU (model/rope.h, the same values), else torch's ops.
  auto rotate = [&](const torch::Tensor& x) {
    torch::Tensor y = model_detail::rope(x, rope.cos, rope.sin);
    return y.defined() ? y : x * rope.cos + rotate_half(x) * rope.sin;
  };
  q = rotate(q);
  k = rotate(k);
  if (packing) {  // back to the padded (B, T, ...) for the attention itself
    q = unpack_rows(q, packing->index, packing->B, packing->T);
    k = unpack_rows(k, packing->index, packing->B, packing->T);
    v = unpack_rows(v, packing->index, packing->B, packing->T);
  }
  const int64_t B = q.size(0), T = q.size(1);
  q = q.transpose(1, 2);  // (B, H, T, D)
  k = k.transpose(1, 2);  // (B, Hkv, T, D)
  v = v.transpose(1, 2);  // (B, Hkv, T, D)
  // The output (B, T, H*D) into o_proj: at `rows` only (N, H*D), else packed again where the input was.
  auto project = [&](const torch::Tensor& out) {
    if (rows) return linear(out.reshape({B * T, H * D}).index_select(0, *rows), p + "o_proj", args.adapters);
    return linear(packing ? pack_rows(out, packing->index) : out, p + "o_proj", args.adapters);
  };

  // Whole sequences (training, scoring, and a prompt into an empty cache): one fused operation on
  // the CPU, which skips the masked half of the scores (model/causal_attention.h; undefined where it
  // does not apply).
  const double scale = 1.0 / std::sqrt(config_.query_pre_attn_scalar.value_or(static_cast<double>(D)));
  torch::Tensor fused;
  if (past == 0 && !args.cache_position.defined() && !(arch_->attn_softcap && config_.attn_logit_softcapping))
    fused = model_detail::causal_attention(q, k, v, args.attention_mask, layer_window(layer).value_or(0),
                                           scale);  // (B, H, T, D)

  if (args.cache) {
    KVCache& c = *args.cache;
    torch::Tensor& kc = c.k[layer];
    torch::Tensor& vc = c.v[layer];
    if (args.cache_position.defined()) {  // static shapes: write at the device-held index, read everything
      kc.index_copy_(2, args.cache_position, k);
      vc.index_copy_(2, args.cache_position, v);
    } else if (c.rows.defined()) {  // the batch's rows are cache rows c.rows
      const torch::Tensor r = c.rows.to(kc.device());
      kc.narrow(2, past, T).index_copy_(0, r, k);
      vc.narrow(2, past, T).index_copy_(0, r, v);
    } else {
      kc.narrow(2, past, T).copy_(k);
      vc.narrow(2, past, T).copy_(v);
    }
    // (Bc, Hkv, S, D): Bc = B without a row map; S = the capacity with cache_position
    k = args.cache_position.defined() ? kc : kc.narrow(2, 0, past + T);
    v = args.cache_position.defined() ? vc : vc.narrow(2, 0, past + T);
  }
  const torch::Tensor cache_rows = args.cache ? args.cache->rows : torch::Tensor();  // (B) or undefined
  if (fused.defined()) return project(fused.transpose(1, 2).reshape({B, T, H * D}));
  std::optional<model_detail::SharedPrefix> prefix_k, prefix_v;  // the cache's shared prefix (KVCache)
  if (args.cache && args.cache->prefix_rows.defined()) {
    const KVCache& c = *args.cache;
    prefix_k = model_detail::SharedPrefix{c.prefix_k[layer], c.prefix_rows, c.prefix_length};
    prefix_v = model_detail::SharedPrefix{c.prefix_v[layer], c.prefix_rows, c.prefix_length};
  }

  // Grouped-query attention without copying k/v: the G query heads of a kv head as G*T rows of one
  // product with that head's keys, (B, Hkv, G*T, D) x (B, Hkv, D, S). (Broadcasting k over G
  // instead would copy the whole cache G times per layer and step.)
  const int64_t S = k.size(2);
  // At decode (a few query rows per kv head, no gradient) both products run as one parallel kernel
  // over the (row, kv head) pairs instead of B x Hkv small BLAS calls (model/matvec.h).
  torch::Tensor qg = q.reshape({B, Hkv, G * T, D});
  torch::Tensor scores =  // (B, Hkv, G*T, S) float32, or undefined
      model_detail::attention_scores(qg, k, cache_rows, prefix_k ? &*prefix_k : nullptr);
  const bool kernels = scores.defined();
  if (!kernels && prefix_k) {  // matmul needs every position in the batch's own rows
    KVCache& c = *args.cache;
    c.unshare();
    k = c.k[layer].narrow(2, 0, S);
    v = c.v[layer].narrow(2, 0, S);
  }
  if (!kernels && cache_rows.defined()) {  // matmul needs the batch's rows gathered
    k = k.index_select(0, cache_rows.to(k.device()));
    v = v.index_select(0, cache_rows.to(v.device()));
  }
  if (!kernels) scores = torch::matmul(qg, k.transpose(-1, -2));
  scores = scores.view({B, Hkv, G, T, S}).to(dtype_ == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32) * scale;
  if (arch_->attn_softcap && config_.attn_logit_softcapping) scores = softcap(scores, *config_.attn_logit_softcapping);
  torch::Tensor probs = torch::softmax(scores + bias, -1).view({B, Hkv, G * T, S});  // float32|64
  torch::Tensor out = kernels ? model_detail::attention_values(probs, v, cache_rows, prefix_v ? &*prefix_v : nullptr)
                              : torch::Tensor();  // (B, Hkv, G*T, D)
  if (!out.defined()) out = torch::matmul(probs.to(v.scalar_type()), v);
  out = out.view({B, H, T, D}).transpose(1, 2).reshape({B, T, H * D});
  return project(out);  // (B, T, C), or (1, N, C) packed
}

CausalLM::Rope CausalLM::rope_tables(const torch::Tensor& pos, const torch::Tensor& inv_freq) const {
  torch::Tensor freqs = pos.to(torch::kFloat32).unsqueeze(-1) * inv_freq;  // (B, T, D/2)
  torch::Tensor emb = torch::cat({freqs, freqs}, -1);                      // (B, T, D)
  return Rope{emb.cos().to(dtype_).unsqueeze(2), emb.sin().to(dtype_).unsqueeze(2)};
}

torch::Tensor CausalLM::forward(const torch::Tensor& input_ids, const ForwardArgs& args) const {
  TORCH_CHECK(input_ids.dim() == 2, "input_ids must be (B, T), got ", input_ids.sizes());
  if (args.fused_decode)
    if (torch::Tensor logits = fused_decode_step(input_ids, args); logits.defined()) return logits;  // (1, 1, V)
  const int64_t B = input_ids.size(0), T = input_ids.size(1);
  const int64_t L = config_.num_hidden_layers;
  const int64_t past = args.cache ? args.cache->length : 0;
  const bool static_decode = args.cache_position.defined();  // ForwardArgs::cache_position
  if (static_decode)
    TORCH_CHECK(args.cache && !args.cache->k.empty() && past < args.cache->k[0].size(2) && T == 1 &&
                    !args.cache->rows.defined() && !args.cache->prefix_rows.defined() && !args.hooks &&
                    args.position_ids.defined() && args.attention_mask.defined(),
                "cache_position needs one token per row, an allocated cache with room, no row map or shared prefix, "
                "position_ids and attention_mask, and no hooks");
  const int64_t S = static_decode ? args.cache->k[0].size(2) : past + T;  // keys attended
  torch::Tensor ids = input_ids.to(device_, torch::kLong);

  if (args.cache) {
    KVCache& c = *args.cache;
    if (c.k.empty() || c.length + T > c.k[0].size(2)) {
      // (Re)allocate with room for at least S positions, copying what is there.
      c.unshare();
      int64_t cap = std::max({c.capacity, S, c.k.empty() ? int64_t{0} : 2 * c.k[0].size(2)});
      auto opts = torch::TensorOptions().dtype(dtype_).device(device_);
      std::vector<torch::Tensor> nk(L), nv(L);
      for (int64_t l = 0; l < L; ++l) {
        nk[l] = torch::zeros({B, config_.num_key_value_heads, cap, config_.head_dim}, opts);
        nv[l] = torch::zeros_like(nk[l]);
        if (!c.k.empty() && c.length > 0) {  // the batch's rows only
          nk[l].narrow(2, 0, c.length).copy_(c.at_batch_rows(c.k[l]).narrow(2, 0, c.length));
          nv[l].narrow(2, 0, c.length).copy_(c.at_batch_rows(c.v[l]).narrow(2, 0, c.length));
        }
      }
      c.k = std::move(nk);
      c.v = std::move(nv);
      c.capacity = cap;
      c.rows = torch::Tensor();
    }
    TORCH_CHECK(c.batch_rows() == B, "KV cache holds ", c.batch_rows(), " rows but the batch has ", B);
  }

  torch::Tensor pos = args.position_ids.defined()
                          ? args.position_ids.to(device_, torch::kLong)
                          : torch::arange(past, S, torch::TensorOptions().dtype(torch::kLong).device(device_))
                                .unsqueeze(0)
                                .expand({B, T});  // (B, T)
  torch::Tensor am;  // (B, S) on the device: the attention mask, or undefined
  if (args.attention_mask.defined()) {
    am = args.attention_mask.to(device_);
    TORCH_CHECK(am.dim() == 2 && am.size(0) == B && am.size(1) == S, "attention_mask must be (B, S) = (",
                B, ", ", S, "), got ", am.sizes());
  }

  // Packing: with padding and no cache, the position-wise work (embedding, norms, projections,
  // MLP, residual sums) runs on the real tokens only, as one row (1, N, C); each attention unpacks
  // its queries, keys and values to (B, T, ...) and packs its output again. Not with hooks (they
  // see (B, T, C)) nor for the last position only.
  std::optional<Packing> packing;
  if (args.pack && !args.cache && !args.hooks && !args.last_logits_only && am.defined()) {
    torch::Tensor index = am.reshape({-1}).nonzero().squeeze(1);  // (N); S = T without a cache
    if (index.numel() > 0 && index.numel() < B * T) packing = Packing{index, B, T};
  }
  if (packing) {
    ids = pack_rows(ids, packing->index);  // (1, N)
    pos = pack_rows(pos, packing->index);  // (1, N)
  }

  // RoPE tables (B, T, 1, D) ((1, N, 1, D) packed).
  const Rope rope = rope_tables(pos, inv_freq_);
  const Rope rope_local = inv_freq_local_.defined() ? rope_tables(pos, inv_freq_local_) : rope;

  // Additive attention bias (B|1, 1, 1, T, S): causal in cache index space, padding keys masked,
  // per layer a sliding window. A finite minimum keeps fully masked (padding) rows NaN-free.
  auto iopts = torch::TensorOptions().dtype(torch::kLong).device(device_);
  torch::Tensor qi = static_decode ? args.cache_position.to(iopts).view({1, 1})
                                   : torch::arange(past, S, iopts).unsqueeze(1);  // (T, 1): cache index of each query
  torch::Tensor kj = torch::arange(0, S, iopts).unsqueeze(0);     // (1, S)
  torch::Tensor allowed = (kj <= qi).unsqueeze(0);                // (1, T, S)
  if (am.defined()) allowed = allowed & (am != 0).unsqueeze(1);  // (B, T, S)
  auto additive = [&](const torch::Tensor& ok) {
    return torch::zeros(ok.sizes(), torch::TensorOptions().dtype(torch::kFloat32).device(device_))
        .masked_fill(ok.logical_not(), -1e30)
        .unsqueeze(1)
        .unsqueeze(1);  // (B|1, 1, 1, T, S)
  };
  const torch::Tensor full_bias = additive(allowed);
  std::map<int64_t, torch::Tensor> window_bias;  // window -> bias
  for (int64_t l = 0; l < L; ++l) {
    const std::optional<int64_t> w = layer_window(l);
    if (w && !window_bias.count(*w)) window_bias[*w] = additive(allowed & (qi - kj < *w).unsqueeze(0));
  }

  torch::Tensor h = F::embedding(ids, param("model.embed_tokens.weight"));  // (B, T, C)
  // Gemma: times sqrt(C) held as a float32 tensor cast to the model dtype (55.4256 -> 55.5 in bf16).
  if (arch_->embed_scale) {
    const double scale = std::sqrt(static_cast<double>(config_.hidden_size));
    h = h * torch::scalar_tensor(scale, torch::kFloat32).to(h.scalar_type());
  }
  // The positions whose output is wanted (output_positions, or each row's last with
  // last_logits_only): the last layer's o_proj, MLP and the final norm run on those rows only, as
  // (N, C). Their residual rows, `keep`, index h's layout (B * T, or N packed). Not with hooks.
  torch::Tensor out_pos, keep;
  if (args.output_positions.defined()) {
    TORCH_CHECK(args.hidden_only && !args.last_logits_only, "output_positions needs hidden_only, not last_logits_only");
    out_pos = args.output_positions.to(device_, torch::kLong);
  } else if (args.last_logits_only && T > 1 && !args.hooks) {
    out_pos = torch::arange(B, iopts) * T + (T - 1);  // (B)
  }
  if (out_pos.defined() && !args.hooks) {
    if (packing) {
      torch::Tensor inv = torch::full({B * T}, -1, iopts);
      inv.index_copy_(0, packing->index, torch::arange(packing->index.numel(), iopts));
      keep = inv.index_select(0, out_pos);
      TORCH_CHECK(keep.numel() == 0 || keep.min().item<int64_t>() >= 0, "output_positions include padding");
    } else {
      keep = out_pos;
    }
  }

  if (args.hooks) h = args.hooks->apply(HookSite::Embedding, 0, h);
  for (int64_t l = 0; l < L; ++l) {
    const std::string p = layer_prefix(l);
    const std::optional<int64_t> w = layer_window(l);
    const Rope& r = config_.layer_is_sliding(l) ? rope_local : rope;  // by layer type, as gemma3
    const bool select = keep.defined() && l == L - 1;
    torch::Tensor attn = attention(l, rms_norm(h, p + "input_layernorm.weight"), r, w ? window_bias.at(*w) : full_bias,
                                   args, past, packing ? &*packing : nullptr,
                                   select ? &out_pos : nullptr);  // (B, T, C) or (1, N, C); (N, C) selected
    if (select) h = h.reshape({-1, h.size(-1)}).index_select(0, keep);  // (N, C)
    // (B, T, C): what the attention adds to the residual stream (Gemma: after post_attention_layernorm).
    if (arch_->sandwich_norms) attn = rms_norm(attn, p + "post_attention_layernorm.weight");
    if (args.hooks) attn = args.hooks->apply(HookSite::AttnOutput, l, attn);
    h = h + attn;
    torch::Tensor m;
    if (arch_->sandwich_norms)
      m = rms_norm(mlp(l, rms_norm(h, p + "pre_feedforward_layernorm.weight"), args.adapters),
                   p + "post_feedforward_layernorm.weight");
    else
      m = mlp(l, rms_norm(h, p + "post_attention_layernorm.weight"), args.adapters);
    // (B, T, C): what the MLP adds to the residual stream (Gemma: after post_feedforward_layernorm).
    if (args.hooks) m = args.hooks->apply(HookSite::MlpOutput, l, m);
    h = h + m;
    if (args.hooks) h = args.hooks->apply(HookSite::LayerOutput, l, h);
  }
  if (args.cache) args.cache->length = past + T;

  if (keep.defined()) {  // h (N, C): the wanted positions only
    h = rms_norm(h, "model.norm.weight");
    if (args.last_logits_only) h = h.view({B, 1, -1});  // (B, 1, C)
    if (args.hidden_only) return h;                     // (N, C) or (B, 1, C)
    return logits(h);                                   // (B, 1, V)
  }
  if (out_pos.defined()) {  // output_positions with hooks: every position ran; keep the wanted ones
    h = (packing ? unpack_rows(h, packing->index, B, T) : h).reshape({B * T, -1}).index_select(0, out_pos);
    return rms_norm(h, "model.norm.weight");  // (N, C)
  }
  if (args.last_logits_only) h = h.narrow(1, T - 1, 1);  // (B, 1, C)
  h = rms_norm(h, "model.norm.weight");
  if (packing) {  // padding positions get zeros
    if (args.hidden_only) return unpack_rows(h, packing->index, B, T);  // (B, T, C)
    return unpack_rows(logits(h), packing->index, B, T);                 // (B, T, V)
  }
  if (args.hidden_only) return h;  // (B, T, C)
  return logits(h);                 // (B, T, V)
}

torch::Tensor CausalLM::logits(const torch::Tensor& hidden) const {
  torch::Tensor out = linear_small_rows_aware(hidden, head_weight());  // (..., V)
  if (config_.final_logit_softcapping) out = softcap(out, *config_.final_logit_softcapping);
  return out;
}

const torch::Tensor& CausalLM::head_weight() const {
  const torch::Tensor* head = config_.tie_word_embeddings ? nullptr : param_if("lm_head.weight");
  return head ? *head : param("model.embed_tokens.weight");
}

int64_t KVCache::batch_rows() const {
  if (rows.defined()) return rows.numel();
  return k.empty() ? 0 : k[0].size(0);
}

torch::Tensor KVCache::at_batch_rows(const torch::Tensor& side) const {
  return rows.defined() ? side.index_select(0, rows.to(side.device())) : side;
}

void KVCache::unshare() {
  if (!prefix_rows.defined()) return;
  const torch::Tensor own = rows.defined() ? rows : torch::arange(prefix_rows.numel(), torch::kLong);
  for (auto [side, prefix] : {std::pair{&k, &prefix_k}, std::pair{&v, &prefix_v}})
    for (size_t l = 0; l < side->size(); ++l) {
      torch::Tensor& t = (*side)[l];
      const torch::Tensor shared = (*prefix)[l].narrow(2, 0, prefix_length).index_select(0, prefix_rows.to(t.device()));
      t.narrow(2, 0, prefix_length).index_copy_(0, own.to(t.device()), shared);
    }
  prefix_k.clear();
  prefix_v.clear();
  prefix_rows = torch::Tensor();
  prefix_length = 0;
}

void KVCache::select_rows(const torch::Tensor& sel) {
  // Dropping rows (indices increasing, as when finished sequences leave a batch):
  // - where the decode attention kernels read the cache (CPU with AVX-512, float32 or bf16), the
  //   finished rows stay where they are and only the row map changes: nothing moves;
  // - elsewhere on the CPU each kept row moves down over the filled positions only and the cache
  //   becomes a view of its first rows (row keep[i] >= i is read before row i is written).
  // Duplicates and reorders (prefill), and other devices: a gather.
  torch::Tensor r = sel.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t n = r.numel(), B = batch_rows();
  const int64_t* keep = r.data_ptr<int64_t>();
  bool dropping = !k.empty() && n <= B && (n == 0 || keep[n - 1] < B);
  for (int64_t i = 0; dropping && i < n; ++i) dropping = keep[i] >= i && (i == 0 || keep[i] > keep[i - 1]);
  auto every = [&](const std::function<bool(const torch::Tensor&)>& ok) {
    for (const auto* side : {&k, &v})
      for (const auto& t : *side)
        if (!ok(t)) return false;
    return true;
  };
  auto movable = [](const torch::Tensor& t) {  // rows of D contiguous on the CPU
    return t.device().is_cpu() && t.dim() == 4 && t.stride(3) == 1 && t.stride(2) == t.size(3);
  };
  const bool kernels = every(model_detail::attention_kernels_read);
  if (dropping && kernels) {
    rows = rows.defined() ? rows.index_select(0, r) : r.clone();
    if (prefix_rows.defined()) prefix_rows = prefix_rows.index_select(0, r);
    return;
  }
  // Duplicates where the kernels read the cache: the filled positions become a shared prefix, and
  // the new rows start empty beyond it.
  bool duplicates = false;
  if (kernels && share_prefix && !prefix_rows.defined() && length > 0) {
    std::vector<int64_t> sorted(keep, keep + n);
    std::sort(sorted.begin(), sorted.end());
    duplicates = std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end();
  }
  if (duplicates) {
    prefix_rows = rows.defined() ? rows.index_select(0, r) : r.clone();
    prefix_length = length;
    prefix_k = k;
    prefix_v = v;
    for (auto* side : {&k, &v})
      for (auto& t : *side) t = torch::empty({n, t.size(1), t.size(2), t.size(3)}, t.options());
    rows = torch::Tensor();
    return;
  }
  unshare();  // anything else: on a plain cache
  if (!dropping || rows.defined() || !every(movable)) {
    const torch::Tensor g = rows.defined() ? rows.index_select(0, r) : r;  // cache rows to keep, in order
    for (auto* side : {&k, &v})
      for (auto& t : *side) t = t.index_select(0, g.to(t.device()));
    rows = torch::Tensor();
    return;
  }
  for (auto* side : {&k, &v})
    for (auto& t : *side) {
      const int64_t es = t.element_size(), heads = t.size(1);
      const int64_t bytes = length * t.size(3) * es;  // one head's filled positions
      auto* base = static_cast<char*>(t.data_ptr());
      for (int64_t i = 0; i < n; ++i) {
        if (keep[i] == i) continue;
        for (int64_t h = 0; h < heads; ++h)
          std::memcpy(base + (i * t.stride(0) + h * t.stride(1)) * es,
                      base + (keep[i] * t.stride(0) + h * t.stride(1)) * es, bytes);
      }
      t = t.narrow(0, 0, n);
    }
}

}  // namespace emlab
