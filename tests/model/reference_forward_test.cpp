// The decoder's logits against a second, deliberately plain implementation written from the
// Hugging Face modeling files (modeling_llama / qwen2 / qwen3 / mistral): per-head loops, repeat_kv
// for GQA, rotate_half RoPE, float64 throughout. Every bias and norm weight is randomised first, so a
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

// inv_freq as HF's rope init functions compute it (default, and "llama3").
std::vector<double> inv_freq(const nlohmann::json& cfg, int64_t D) {
  const double theta = cfg.value("rope_theta", 10000.0);
  std::vector<double> f;
  for (int64_t i = 0; i < D; i += 2) f.push_back(1.0 / std::pow(theta, static_cast<double>(i) / D));
  if (cfg.contains("rope_scaling")) {
    const auto& rs = cfg["rope_scaling"];
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
  const int64_t window = cfg.value("sliding_window", int64_t{0});
  const auto freqs = inv_freq(cfg, D);
  torch::Tensor cos = torch::zeros({T, D}, torch::kFloat64), sin = torch::zeros({T, D}, torch::kFloat64);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < D / 2; ++i) {
      cos[t][i] = cos[t][i + D / 2] = std::cos(t * freqs[i]);
      sin[t][i] = sin[t][i + D / 2] = std::sin(t * freqs[i]);
    }
  auto rope = [&](const torch::Tensor& x) {  // (T, D)
    torch::Tensor rot = torch::cat({-x.narrow(1, D / 2, D / 2), x.narrow(1, 0, D / 2)}, 1);
    return x * cos + rot * sin;
  };
  const torch::Tensor E = P(p, "model.embed_tokens.weight");
  torch::Tensor h = E.index_select(0, torch::tensor(ids));  // (T, C)
  for (int64_t l = 0; l < L; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    torch::Tensor x = rms(h, P(p, pre + "input_layernorm.weight"), eps);
    torch::Tensor q = lin(p, pre + "self_attn.q_proj", x), k = lin(p, pre + "self_attn.k_proj", x);
    torch::Tensor v = lin(p, pre + "self_attn.v_proj", x);
    std::vector<torch::Tensor> heads;
    for (int64_t hd = 0; hd < H; ++hd) {
      const int64_t g = hd / (H / Hkv);  // repeat_kv: query head hd reads kv head hd / n_rep
      torch::Tensor qh = q.narrow(1, hd * D, D), kh = k.narrow(1, g * D, D), vh = v.narrow(1, g * D, D);
      if (has(p, pre + "self_attn.q_norm.weight")) {
        qh = rms(qh, P(p, pre + "self_attn.q_norm.weight"), eps);
        kh = rms(kh, P(p, pre + "self_attn.k_norm.weight"), eps);
      }
      qh = rope(qh), kh = rope(kh);
      torch::Tensor s = torch::matmul(qh, kh.t()) / std::sqrt(static_cast<double>(D));  // (T, T)
      for (int64_t i = 0; i < T; ++i)
        for (int64_t j = 0; j < T; ++j)
          if (j > i || (window > 0 && i - j >= window)) s[i][j] = -INFINITY;
      heads.push_back(torch::matmul(torch::softmax(s, -1), vh));
    }
    h = h + lin(p, pre + "self_attn.o_proj", torch::cat(heads, 1));
    x = rms(h, P(p, pre + "post_attention_layernorm.weight"), eps);
    torch::Tensor gate = lin(p, pre + "mlp.gate_proj", x);
    h = h + lin(p, pre + "mlp.down_proj", gate * torch::sigmoid(gate) * lin(p, pre + "mlp.up_proj", x));
  }
  h = rms(h, P(p, "model.norm.weight"), eps);
  return torch::matmul(h, (has(p, "lm_head.weight") ? P(p, "lm_head.weight") : E).t());
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

  const std::vector<int64_t> ids = {1, 17, 33, 8, 60, 12, 7, 90, 44, 3, 5, 71};  // > mistral's window 5
  torch::Tensor ref = reference_logits(cfg, model->parameters(), ids);          // (T, V)
  torch::Tensor got = model->forward(torch::tensor(ids).unsqueeze(0))[0].to(torch::kFloat64);
  ASSERT_EQ(got.sizes(), ref.sizes());
  const double diff = (got - ref).abs().max().item<double>();
  EXPECT_LE(diff, 1e-4) << arch;
  EXPECT_GT(ref.abs().max().item<double>(), 0.5);  // not a degenerate comparison of near-zero logits
}

INSTANTIATE_TEST_SUITE_P(Architectures, ReferenceTest,
                         ::testing::Values("llama", "llama3", "llama_bias", "qwen2", "qwen3", "mistral"));

}  // namespace
