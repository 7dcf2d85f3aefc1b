// The fused decoding step at batch 1 (src/model/decode_step.cpp): bit-identical logits and cache to
// torch's ops (ForwardArgs::fused_decode = false), step after step, in float32 and bf16, with
// biases, grouped queries, sliding windows, padding and a cache row map; and it stands aside where
// it does not apply.
#include <gtest/gtest.h>

#include "emlab/lora.h"
#include "emlab/model.h"
#include "model/avx512.h"
#include "model/decode_step.h"
#include "model/matvec.h"
#include "tiny_models.h"

using namespace emlab;

namespace {

// A tiny random model whose biases and norm weights are random too (initialised as 0 and 1 they
// would leave those steps untested).
std::shared_ptr<CausalLM> tiny(const std::string& kind, const std::string& dtype, uint64_t seed = 0) {
  LoadOptions lo;
  lo.dtype = dtype;
  auto model = CausalLM::init_random(ModelConfig::from_json(test::tiny_config(kind), kind), seed, lo);
  torch::NoGradGuard ng;
  torch::manual_seed(seed);
  for (auto& [name, t] : model->parameters())
    if (name.find("bias") != std::string::npos || name.find("norm") != std::string::npos)
      t.add_(torch::randn(t.sizes()).mul(0.3).to(t.scalar_type()));
  return model;
}

// Two decodings of the same prompts, one fused and one through torch's ops: after a prefill of
// `prompt` (B, T) with `mask`, `keep` selects one row (a row map where the kernels read the cache),
// then `steps` steps of one token. Returns how many fused steps ran; every step's logits and the
// caches must be bitwise equal.
int64_t compare_decoding(const CausalLM& model, const torch::Tensor& prompt, const torch::Tensor& mask, int64_t keep,
                         int64_t steps) {
  torch::NoGradGuard ng;
  const int64_t B = prompt.size(0), T = prompt.size(1);
  KVCache fused, plain;
  fused.capacity = plain.capacity = T + steps + 1;
  torch::Tensor pos = (mask.cumsum(1) - 1).clamp_min(0);  // (B, T) left padding's positions
  for (KVCache* c : {&fused, &plain}) {
    ForwardArgs args;
    args.cache = c;
    args.attention_mask = mask;
    args.position_ids = pos;
    args.last_logits_only = true;
    model.forward(prompt, args);
    if (B > 1) c->select_rows(torch::tensor({keep}, torch::kLong));
  }
  torch::Tensor am = mask.narrow(0, B > 1 ? keep : 0, 1);  // (1, T)
  int64_t next_pos = pos[B > 1 ? keep : 0][T - 1].item<int64_t>() + 1;
  torch::Tensor ids = torch::full({1, 1}, 5, torch::kLong);
  const int64_t before = model_detail::fused_decode_steps();
  for (int64_t s = 0; s < steps; ++s) {
    am = torch::cat({am, torch::ones({1, 1}, torch::kLong)}, 1);
    torch::Tensor logits[2];
    for (int i = 0; i < 2; ++i) {
      ForwardArgs args;
      args.cache = i == 0 ? &fused : &plain;
      args.attention_mask = am;
      args.position_ids = torch::full({1, 1}, next_pos, torch::kLong);
      args.last_logits_only = true;
      args.fused_decode = i == 0;
      logits[i] = model.forward(ids, args);
    }
    EXPECT_EQ(logits[0].sizes(), logits[1].sizes());
    EXPECT_EQ(logits[0].scalar_type(), logits[1].scalar_type());
    EXPECT_TRUE(torch::equal(logits[0], logits[1]))
        << "step " << s << ": largest difference " << (logits[0] - logits[1]).abs().max().item<double>();
    ids = logits[1].reshape({-1}).argmax().view({1, 1});
    ++next_pos;
  }
  EXPECT_EQ(fused.length, plain.length);
  for (int64_t l = 0; l < static_cast<int64_t>(plain.k.size()); ++l) {
    auto filled = [&](const KVCache& c, const torch::Tensor& side) {
      return c.at_batch_rows(side).narrow(2, 0, c.length);
    };
    EXPECT_TRUE(torch::equal(filled(fused, fused.k[l]), filled(plain, plain.k[l]))) << "keys of layer " << l;
    EXPECT_TRUE(torch::equal(filled(fused, fused.v[l]), filled(plain, plain.v[l]))) << "values of layer " << l;
  }
  return model_detail::fused_decode_steps() - before;
}

class DecodeStepTest : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(DecodeStepTest, FusedStepsEqualTorchsOpsBitForBit) {
  const auto& [kind, dtype] = GetParam();
  if (!model_detail::cpu_has_avx512()) GTEST_SKIP() << "no AVX-512: the fused step is not taken on this CPU";
  auto model = tiny(kind, dtype, 3);
  const bool applies = kind != "gemma2" && kind != "gemma3_text";  // Gemma's steps take torch's ops
  torch::manual_seed(1);
  // One prompt, no mask.
  torch::Tensor prompt = torch::randint(3, 96, {1, 7}, torch::kLong);
  const int64_t steps = 9;  // past mistral's window of 5
  EXPECT_EQ(compare_decoding(*model, prompt, torch::ones({1, 7}, torch::kLong), 0, steps), applies ? steps : 0);
  // Three left-padded prompts, the second kept (a row map, its padding masked).
  torch::Tensor batch = torch::randint(3, 96, {3, 6}, torch::kLong);
  torch::Tensor mask = torch::ones({3, 6}, torch::kLong);
  mask[1].narrow(0, 0, 2).zero_();
  mask[2].narrow(0, 0, 4).zero_();
  EXPECT_EQ(compare_decoding(*model, batch, mask, 1, steps), applies ? steps : 0);
}

INSTANTIATE_TEST_SUITE_P(Architectures, DecodeStepTest,
                         ::testing::Combine(::testing::Values("llama", "llama3", "qwen2", "qwen3", "mistral", "gemma2",
                                                              "gemma3_text"),
                                            ::testing::Values("float32", "bfloat16")));

// It stands aside for active adapters and for batches of more than one row: the steps are then
// torch's, and fused_decode_steps does not move.
TEST(DecodeStep, StandsAsideWithAdaptersAndLargerBatches) {
  if (!model_detail::cpu_has_avx512()) GTEST_SKIP() << "no AVX-512: the fused step is not taken on this CPU";
  auto model = tiny("qwen2", "float32", 4);
  torch::NoGradGuard ng;
  auto lora = std::make_shared<LoraSet>();
  const std::string name = "model.layers.0.self_attn.q_proj";
  const int64_t C = model->config().hidden_size, out = model->parameters().at(name + ".weight").size(0);
  lora->modules[name] = LoraModule{torch::randn({2, C}), torch::randn({out, 2}), 1.0};
  model->set_lora(lora);
  torch::manual_seed(2);
  torch::Tensor prompt = torch::randint(3, 96, {1, 5}, torch::kLong);
  EXPECT_EQ(compare_decoding(*model, prompt, torch::ones({1, 5}, torch::kLong), 0, 3), 0);
  lora->multiplier = 0.0;  // adapters off: the fused step again
  EXPECT_EQ(compare_decoding(*model, prompt, torch::ones({1, 5}, torch::kLong), 0, 3), 3);
  // Two rows.
  KVCache cache;
  ForwardArgs args;
  args.cache = &cache;
  model->forward(torch::randint(3, 96, {2, 4}, torch::kLong), args);
  const int64_t before = model_detail::fused_decode_steps();
  model->forward(torch::randint(3, 96, {2, 1}, torch::kLong), args);
  EXPECT_EQ(model_detail::fused_decode_steps(), before);
}

}  // namespace
