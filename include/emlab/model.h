// Decoder-only transformer of the Llama family (llama, qwen2, qwen3, mistral) and Gemma 2/3 (text)
// on libtorch.
//
// Dimension glossary (shape comments use these):
//   B batch, T tokens in this call, P tokens already in the KV cache, S = P + T keys,
//   C hidden_size, H attention heads, Hkv key/value heads (G = H / Hkv queries per kv head),
//   D head_dim, F intermediate_size, V vocab_size, L layers.
//
// Parameters live in one map keyed by Hugging Face tensor names ("model.layers.3.mlp.up_proj.weight"),
// so loading is a name lookup and saving is interoperable. Architectures differ only by the
// traits of their registry entry (ArchSpec), never by a struct of nullable fields.
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "emlab/hf_config.h"

namespace emlab {

class Hooks;
struct LoraSet;

// Which layers attend through config "sliding_window" (when it is set).
enum class WindowLayers {
  None,        // none: the architecture ignores sliding_window (llama)
  All,         // every layer (mistral; its layer_types are ignored, as transformers does)
  LayerTypes,  // the layers config.layer_types marks sliding_attention (qwen2, qwen3, gemma2, gemma3_text)
};

// What distinguishes one model_type (the registry is keyed by config.json "model_type").
struct ArchSpec {
  std::string model_type;     // "llama", "qwen2", "qwen3", "mistral", "gemma2", "gemma3_text"
  bool qkv_bias = false;      // q/k/v projections have a bias regardless of config (qwen2)
  bool attention_bias_config = false;  // config "attention_bias" adds biases to q,k,v,o (llama, qwen3, gemma)
  bool mlp_bias_config = false;        // config "mlp_bias" adds biases to gate/up/down (llama)
  bool qk_norm = false;       // per-head RMSNorm of q and k before RoPE (qwen3, gemma3_text)
  WindowLayers window = WindowLayers::None;  // which layers honour config "sliding_window"
  bool norm_plus_one = false;  // RMSNorm scales by (1 + w) in float32, weights start at 0 (gemma)
  bool embed_scale = false;    // embeddings times sqrt(hidden_size), rounded to the model dtype (gemma)
  bool sandwich_norms = false;  // post_attention_layernorm on the attention output, pre/post_feedforward_layernorm
                                // around the MLP (gemma)
  bool attn_softcap = false;   // honours config attn_logit_softcapping (gemma2; gemma3 ignores it, as transformers)
  bool local_rope = false;     // sliding layers use config rope_local_theta as RoPE base (gemma3_text)
};

// Throws InputError naming `source` and the known types when model_type is unknown.
const ArchSpec& arch_lookup(const std::string& model_type, const std::string& source);
std::vector<std::string> arch_names();

// Per-layer key/value cache. Tensors are allocated on first use with `capacity` positions
// (grown by doubling when exceeded).
struct KVCache {
  std::vector<torch::Tensor> k, v;  // per layer (Bc, Hkv, capacity, D): Bc cache rows
  int64_t length = 0;               // P: positions filled
  int64_t capacity = 0;             // positions allocated (0 = decided on first use)
  torch::Tensor rows;               // (B) int64 on the CPU: the cache row of each batch row;
                                    // undefined = batch row b is cache row b (Bc = B)
  // A shared prefix: positions [0, prefix_length) of batch row b are row prefix_rows[b] of
  // prefix_k/prefix_v, and k/v hold the later positions only (the first ones unused). Made by
  // select_rows when it duplicates rows (a prompt's samples) of a cache the CPU attention kernels
  // read: each prompt's keys and values then stay in memory once, and are read once per step for
  // all its samples instead of once per sample.
  std::vector<torch::Tensor> prefix_k, prefix_v;  // per layer (U, Hkv, capacity, D)
  torch::Tensor prefix_rows;                      // (B) int64 on the CPU; undefined = no shared prefix
  int64_t prefix_length = 0;                      // positions shared
  bool share_prefix = true;                       // false: select_rows copies duplicated rows instead

  // Keep/duplicate batch rows: rows = (B') int64 indices into the current batch.
  void select_rows(const torch::Tensor& rows);
  // B: the batch rows the cache holds.
  int64_t batch_rows() const;
  // The cache of one layer and side at the batch's rows (B, Hkv, capacity, D): k[layer] itself, or
  // a gather of its rows. Not with a shared prefix (unshare first).
  torch::Tensor at_batch_rows(const torch::Tensor& side) const;
  // Writes a shared prefix into each batch row's own first positions and drops it: the cache is then
  // a plain one (what every reader but the CPU attention kernels needs). Nothing without a prefix.
  void unshare();
};

struct ForwardArgs {
  torch::Tensor position_ids;    // (B, T) int64; undefined = P .. P+T-1 for every row
  torch::Tensor attention_mask;  // (B, S) 1 = real token, 0 = padding; undefined = all real. With
                                 // padding, no cache and no hooks, forward packs: padding positions
                                 // cost nothing and come out as zeros
  KVCache* cache = nullptr;      // when set, keys/values are appended and attended
  Hooks* hooks = nullptr;        // residual / MLP hook points (ResidualHooks, RowHooks)
  bool adapters = true;          // false: run without LoRA adapters (the KL reference)
  bool last_logits_only = false;  // compute lm_head on the last position only (generation)
  bool hidden_only = false;       // return the final-normed hidden states (B, T, C), no lm_head
  torch::Tensor output_positions;  // (N) int64 flat positions b * T + t, with hidden_only: return the
                                   // states there only, (N, C); the last layer's attention output
                                   // projection and MLP then run on those rows only (not with hooks)
  bool pack = true;               // false: compute padding positions too (attention_mask's note)
  torch::Tensor cache_position;   // (1) int64 on the device: decode one token per row (T = 1) with
                                  // shapes that do not depend on the cache's length (a CUDA graph
                                  // replays it, emlab/decode_graph.h): keys/values are written at
                                  // this cache index and attention runs over the cache's whole
                                  // capacity; needs position_ids and attention_mask (B, capacity),
                                  // an allocated cache without a row map, no hooks
  bool fused_decode = true;       // one token at batch 1 into a CPU cache with room: one fused step
                                  // (src/model/decode_step.cpp) without torch's per-op costs, the
                                  // same values; false: torch's ops (what the fused step is checked
                                  // against). Taken where it applies (float32/bf16, AVX-512, the
                                  // Llama family's layers, not Gemma's; no hooks or active
                                  // adapters), elsewhere ignored
};

struct LoadOptions {
  std::string device = "cpu";   // "cpu", "cuda", "cuda:N"
  std::string dtype = "auto";   // auto = float32 on CPU, bfloat16 on CUDA
};

class CausalLM {
 public:
  // Loads a Hugging Face model directory: config.json + model.safetensors or a sharded
  // model.safetensors.index.json. Errors name the file/tensor and what was expected.
  static std::shared_ptr<CausalLM> load(const std::string& dir, const LoadOptions& options = {});
  // Random initialisation as Hugging Face does (normal(0, initializer_range), norms 1 (Gemma: 0, as
  // they scale by 1 + w), biases 0), generated on the CPU from `seed` so every device gets the same
  // weights.
  static std::shared_ptr<CausalLM> init_random(const ModelConfig& config, uint64_t seed,
                                               const LoadOptions& options = {});

  // Writes config.json and model.safetensors (in `dtype`, default the model's own). `values`
  // replaces parameters by name with tensors of their shape (e.g. a trainer's float32 masters).
  void save(const std::string& dir, std::optional<torch::ScalarType> dtype = std::nullopt,
            const std::map<std::string, torch::Tensor>& values = {}) const;

  // input_ids: (B, T) int64 -> logits (B, T, V) or (B, 1, V) with last_logits_only, in the
  // model dtype.
  torch::Tensor forward(const torch::Tensor& input_ids, const ForwardArgs& args = {}) const;

  const ModelConfig& config() const { return config_; }
  const ArchSpec& arch() const { return *arch_; }
  torch::Device device() const { return device_; }
  torch::ScalarType dtype() const { return dtype_; }
  int64_t num_parameters() const;

  // Name -> tensor, Hugging Face names. Mutable for finetuning (set requires_grad as needed).
  std::map<std::string, torch::Tensor>& parameters() { return params_; }
  const std::map<std::string, torch::Tensor>& parameters() const { return params_; }
  // Expected tensor names and shapes for this config (what load() requires).
  std::map<std::string, std::vector<int64_t>> expected_shapes() const;

  // Adapters applied by every projection (null = none). Owned by the caller (trainer, loader).
  void set_lora(std::shared_ptr<LoraSet> lora) { lora_ = std::move(lora); }
  // The output projection's weight (V, C): lm_head, or the embedding when tied.
  const torch::Tensor& head_weight() const;
  // Final-normed hidden states (..., C) (forward with hidden_only) -> logits (..., V): the output
  // projection and the final softcapping, as the end of forward.
  torch::Tensor logits(const torch::Tensor& hidden) const;
  std::shared_ptr<LoraSet> lora() const { return lora_; }

  // Gives a tied model its own lm_head.weight (a copy of embed_tokens) and clears
  // tie_word_embeddings, so that the embedding can change without changing the read-out.
  void untie_embeddings();

  // Names of the linear modules of one layer that LoRA can target ("self_attn.q_proj", ...).
  static std::vector<std::string> linear_module_suffixes();

  // The attention window of a layer (nullopt = full causal attention).
  std::optional<int64_t> layer_window(int64_t layer) const;

 private:
  // RoPE tables of one forward call: cos/sin (B, T, 1, D) in the model dtype ((1, N, 1, D) packed).
  struct Rope {
    torch::Tensor cos, sin;
  };
  // The real tokens of a padded batch (forward packs them into one row of N).
  struct Packing {
    torch::Tensor index;  // (N) int64: flat positions b * T + t of the real tokens, increasing
    int64_t B = 0, T = 0;  // the padded shape
  };

  CausalLM(ModelConfig config, const ArchSpec& arch, torch::Device device, torch::ScalarType dtype);
  void init_rope();
  const torch::Tensor& param(const std::string& name) const;
  const torch::Tensor* param_if(const std::string& name) const;
  torch::Tensor linear(const torch::Tensor& x, const std::string& module, bool adapters) const;
  torch::Tensor rms_norm(const torch::Tensor& x, const std::string& weight_name) const;
  torch::Tensor mlp(int64_t layer, const torch::Tensor& x, bool adapters) const;
  // x (B, T, C), or (1, N, C) with packing (the result likewise); with `rows` (N) flat positions
  // b * T + t, the output at those positions only, (N, C) (o_proj runs on those rows alone).
  torch::Tensor attention(int64_t layer, const torch::Tensor& x, const Rope& rope, const torch::Tensor& bias,
                          const ForwardArgs& args, int64_t past, const Packing* packing,
                          const torch::Tensor* rows = nullptr) const;
  // RoPE tables of positions pos (B, T) int64 for inv_freq: cos/sin (B, T, 1, D) in the model dtype.
  Rope rope_tables(const torch::Tensor& pos, const torch::Tensor& inv_freq) const;
  // ForwardArgs::fused_decode: the logits (1, 1, V) of one step, or an undefined tensor (nothing
  // done) where it does not apply (src/model/decode_step.cpp).
  torch::Tensor fused_decode_step(const torch::Tensor& input_ids, const ForwardArgs& args) const;

  ModelConfig config_;
  const ArchSpec* arch_;
  torch::Device device_;
  torch::ScalarType dtype_;
  std::map<std::string, torch::Tensor> params_;
  torch::Tensor inv_freq_;        // (D/2) float32 on device: full-attention layers
  torch::Tensor inv_freq_local_;  // (D/2) float32: sliding layers with their own base (gemma3), else undefined
  std::shared_ptr<LoraSet> lora_;
};

}  // namespace emlab
