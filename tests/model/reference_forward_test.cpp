// The decoder's logits against a second, deliberately plain implementation written from the
// Hugging Face modeling files (modeling_llama / qwen2 / qwen3 / mistral / gemma2 / gemma3): per-head
// loops, repeat_kv for GQA, rotate_half RoPE, float64 throughout. Every bias and norm weight is randomised first, so a
// dropped q/k/v bias, a missing q_norm/k_norm or a norm applied in the wrong place changes the
// logits (random init sets biases to 0 and norm weights to 1, which hides such bugs).
// Tolerance 1e-4 (fp32 model vs float64 reference), as for golden logits.
#include <gtest/gtest.h>

#include <cmath>

#include "emlab/model.h"
#include "tiny_models.h"

using namespace emlab;

namespace {

using Params = std::map<std::string, torch::Tensor>;

torch::Tensor P(const Params& p, const std::string& name) {
  auto it = p.find(name);
  if (it == p.end()) throw std::runtime_error("no tensor " + name);
  return it->second.to(torch::kFloat64);
}

bool has(const Params& p, const std::string& name) { return p.count(name) > 0; }

// HF LlamaRMSNorm: x * rsqrt(mean(x^2) + eps), times the weight.
torch::Tensor rms(const torch::Tensor& x, const torch::Tensor& w, double eps) {
  return w * (x * torch::rsqrt(x.pow(2).mean(-1, true) + eps));
}

torch::Tensor lin(const Params& p, const std::string& m, const torch::Tensor& x) {
  torch::Tensor y = torch::matmul(x, P(p, m + ".weight").t());
  if (has(p, m + ".bias")) y = y + P(p, m + ".bias");
  return y;
}

// inv_freq as HF's rope init functions compute it (default, "linear" and "llama3").
std::vector<double> inv_freq(double theta, const nlohmann::json& rs, int64_t D) {
  std::vector<double> f;
  for (int64_t i = 0; i < D; i += 2) f.push_back(1.0 / std::pow(theta, static_cast<double>(i) / D));
  if (rs.is_object() && rs.value("rope_type", "default") == "linear") {
    for (double& x : f) x /= rs["factor"].get<double>();
  } else if (rs.is_object() && rs.value("rope_type", "default") == "llama3") {
    const double factor = rs["factor"], lo = rs["low_freq_factor"], hi = rs["high_freq_factor"];
    const double old_len = rs["original_max_position_embeddings"];
    for (double& x : f) {
      const double wavelen = 2 * M_PI / x;
      if (wavelen > old_len / lo) {
        x = x / factor;  // long wavelengths
      } else if (wavelen >= old_len / hi) {
        const double smooth = (old_len / wavelen - lo) / (hi - lo);
        x = (1 - smooth) * x / factor + smooth * x;
      }  // short wavelengths unchanged
    }
  }
  return f;
}

// Logits (T, V) of one sequence.
torch::Tensor reference_logits(const nlohmann::json& cfg, const Params& p, const std::vector<int64_t>& ids) {
  const int64_t T = ids.size(), C = cfg["hidden_size"], H = cfg["num_attention_heads"];
  const int64_t Hkv = cfg["num_key_value_heads"], L = cfg["num_hidden_layers"];
  const int64_t D = cfg.value("head_dim", C / H);
  const double eps = cfg["rms_norm_eps"];
  const std::string type = cfg["model_type"];
  const bool gemma = type == "gemma2" || type == "gemma3_text";
  const int64_t window = cfg.value("sliding_window", int64_t{0});
  // Gemma: the weight scales by (1 + w); GeGLU (tanh GELU); scores by 1/sqrt(query_pre_attn_scalar).
  auto norm = [&](const torch::Tensor& x, const torch::Tensor& w) { return rms(x, gemma ? 1 + w : w, eps); };
  auto act = [&](const torch::Tensor& g) {
    if (!gemma) return g * torch::sigmoid(g);
    return 0.5 * g * (1 + torch::tanh(std::sqrt(2 / M_PI) * (g + 0.044715 * g.pow(3))));
  };
  const double scale = 1.0 / std::sqrt(cfg.value("query_pre_attn_scalar", static_cast<double>(D)));
  const double attn_cap = type == "gemma2" ? cfg.value("attn_logit_softcapping", 0.0) : 0.0;  // gemma3: never
  auto sliding = [&](int64_t l) {
    if (type == "mistral") return window > 0;
    if (type == "gemma2") return window > 0 && (l + 1) % 2 != 0;
    if (type == "gemma3_text") return window > 0 && cfg["layer_types"][l] == "sliding_attention";
    return false;
  };
  // RoPE tables per base: Gemma 3 keeps one for its sliding layers.
  auto tables = [&](double theta, const nlohmann::json& rs) {
    const auto freqs = inv_freq(theta, rs, D);
    torch::Tensor cos = torch::zeros({T, D}, torch::kFloat64), sin = torch::zeros({T, D}, torch::kFloat64);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t i = 0; i < D / 2; ++i) {
        cos[t][i] = cos[t][i + D / 2] = std::cos(t * freqs[i]);
        sin[t][i] = sin[t][i + D / 2] = std::sin(t * freqs[i]);
      }
    return std::make_pair(cos, sin);
  };
  std::pair<torch::Tensor, torch::Tensor> global, local;
  if (cfg.contains("rope_parameters")) {  // transformers 5, per layer type (the tiny gemma3_text)
    const auto& rp = cfg["rope_parameters"];
    global = tables(rp["full_attention"]["rope_theta"], rp["full_attention"]);
    local = tables(rp["sliding_attention"]["rope_theta"], rp["sliding_attention"]);
  } else {
    global = local = tables(cfg.value("rope_theta", 10000.0), cfg.value("rope_scaling", nlohmann::json()));
  }
  const torch::Tensor E = P(p, "model.embed_tokens.weight");
  torch::Tensor h = E.index_select(0, torch::tensor(ids));  // (T, C)
  if (gemma) h = h * static_cast<double>(static_cast<float>(std::sqrt(static_cast<double>(C))));
  for (int64_t l = 0; l < L; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    const bool slides = sliding(l);
    const auto& table = type == "gemma3_text" && cfg["layer_types"][l] == "sliding_attention" ? local : global;
    const torch::Tensor &cos = table.first, &sin = table.second;
    auto rope = [&](const torch::Tensor& x) {  // (T, D)
      torch::Tensor rot = torch::cat({-x.narrow(1, D / 2, D / 2), x.narrow(1, 0, D / 2)}, 1);
      return x * cos + rot * sin;
    };
    torch::Tensor x = norm(h, P(p, pre + "input_layernorm.weight"));
    torch::Tensor q = lin(p, pre + "self_attn.q_proj", x), k = lin(p, pre + "self_attn.k_proj", x);
    torch::Tensor v = lin(p, pre + "self_attn.v_proj", x);
    std::vector<torch::Tensor> heads;
    for (int64_t hd = 0; hd < H; ++hd) {
      const int64_t g = hd / (H / Hkv);  // repeat_kv: query head hd reads kv head hd / n_rep
      torch::Tensor qh = q.narrow(1, hd * D, D), kh = k.narrow(1, g * D, D), vh = v.narrow(1, g * D, D);
      if (has(p, pre + "self_attn.q_norm.weight")) {
        qh = norm(qh, P(p, pre + "self_attn.q_norm.weight"));
        kh = norm(kh, P(p, pre + "self_attn.k_norm.weight"));
      }
      qh = rope(qh), kh = rope(kh);
      torch::Tensor s = torch::matmul(qh, kh.t()) * scale;  // (T, T)
      if (attn_cap > 0) s = attn_cap * torch::tanh(s / attn_cap);
      for (int64_t i = 0; i < T; ++i)
        for (int64_t j = 0; j < T; ++j)
          if (j > i || (slides && i - j >= window)) s[i][j] = -INFINITY;
      heads.push_back(torch::matmul(torch::softmax(s, -1), vh));
    }
    torch::Tensor attn = lin(p, pre + "self_attn.o_proj", torch::cat(heads, 1));
    if (gemma) {  // sandwich norms
      h = h + norm(attn, P(p, pre + "post_attention_layernorm.weight"));
      x = norm(h, P(p, pre + "pre_feedforward_layernorm.weight"));
    } else {
      h = h + attn;
      x = norm(h, P(p, pre + "post_attention_layernorm.weight"));
    }
    torch::Tensor gated = act(lin(p, pre + "mlp.gate_proj", x)) * lin(p, pre + "mlp.up_proj", x);
    torch::Tensor m = lin(p, pre + "mlp.down_proj", gated);
    if (gemma) m = norm(m, P(p, pre + "post_feedforward_layernorm.weight"));
    h = h + m;
  }
  h = norm(h, P(p, "model.norm.weight"));
  torch::Tensor logits = torch::matmul(h, (has(p, "lm_head.weight") ? P(p, "lm_head.weight") : E).t());
  const double final_cap = gemma ? cfg.value("final_logit_softcapping", 0.0) : 0.0;
  if (final_cap > 0) logits = final_cap * torch::tanh(logits / final_cap);
  return logits;
}

class ReferenceTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ReferenceTest, LogitsEqualAPlainImplementationOfTheHuggingFaceModel) {
  nlohmann::json cfg = test::tiny_config(GetParam() == "llama_bias" ? "llama" : GetParam());
  if (GetParam() == "llama_bias") cfg["attention_bias"] = true;  // q, k, v and o biases
  auto model = CausalLM::init_random(ModelConfig::from_json(cfg, GetParam()), 7);
  torch::NoGradGuard ng;
  torch::manual_seed(13);
  int biases = 0, norms = 0;
  for (auto& [name, t] : model->parameters()) {
    if (name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0)
      t.copy_(0.2 * torch::randn(t.sizes())), ++biases;
    else if (name.find("norm.weight") != std::string::npos)
      t.copy_(1 + 0.3 * torch::randn(t.sizes())), ++norms;
  }
  const std::string arch = GetParam();
  if (arch == "qwen2") EXPECT_EQ(biases, 2 * 3);           // q, k, v per layer
  if (arch == "llama_bias") EXPECT_EQ(biases, 2 * 4);      // q, k, v, o per layer
  if (arch == "qwen3") EXPECT_EQ(norms, 2 * 4 + 1);        // 2 layer norms + q_norm + k_norm, final
  if (arch == "llama" || arch == "mistral") EXPECT_EQ(biases, 0);
  if (arch == "gemma2") EXPECT_EQ(norms, 2 * 4 + 1);       // input, post_attention, pre/post_feedforward, final
  if (arch == "gemma3_text") EXPECT_EQ(norms, 3 * 6 + 1);  // + q_norm, k_norm

  const std::vector<int64_t> ids = {1, 17, 33, 8, 60, 12, 7, 90, 44, 3, 5, 71};  // > mistral's 5, gemma's 4
  torch::Tensor ref = reference_logits(cfg, model->parameters(), ids);          // (T, V)
  torch::Tensor got = model->forward(torch::tensor(ids).unsqueeze(0))[0].to(torch::kFloat64);
  ASSERT_EQ(got.sizes(), ref.sizes());
  const double diff = (got - ref).abs().max().item<double>();
  EXPECT_LE(diff, 1e-4) << arch;
  EXPECT_GT(ref.abs().max().item<double>(), 0.5);  // not a degenerate comparison of near-zero logits
}

INSTANTIATE_TEST_SUITE_P(Architectures, ReferenceTest,
                         ::testing::Values("llama", "llama3", "llama_bias", "qwen2", "qwen3", "mistral", "gemma2",
                                           "gemma3_text"));

}  // namespace
