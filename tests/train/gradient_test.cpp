// Autograd gradients of the training losses equal central finite differences (float64 model).
#include <gtest/gtest.h>

#include "emlab/peft.h"
#include "train/train_parts.h"
#include "train_fixture.h"

namespace emlab {
namespace {

std::shared_ptr<CausalLM> f64_model(const std::string& kind = "llama") {
  LoadOptions lo;
  lo.dtype = "float64";
  return CausalLM::init_random(test::tiny_train_config(kind), 11, lo);
}

// A rank-2 LoRA (alpha 4, created with seed 3) on `targets`, in float64 with gradients, B drawn
// from N(0, 0.1^2) after torch::manual_seed(b_seed) (not zero, so that A gets gradients too),
// attached to the model.
std::shared_ptr<LoraSet> attach_f64_lora(CausalLM& model, const std::vector<std::string>& targets, uint64_t b_seed) {
  LoraOptions o;
  o.rank = 2;
  o.alpha = 4;
  o.targets = targets;
  auto set = lora_create(model, o, 3);
  torch::manual_seed(b_seed);
  for (auto& [name, m] : set->modules) {
    m.A = m.A.to(torch::kFloat64).requires_grad_(true);
    m.B = (torch::randn(m.B.sizes(), torch::kFloat64) * 0.1).requires_grad_(true);
  }
  model.set_lora(set);
  return set;
}

// Two rows of different lengths (the second right-padded), targets on some positions.
Batch make_batch() {
  SftDataset ds;
  ds.examples.push_back({{5, 80, 33, 120, 7, 9, 200}, {0, 0, 0, 1, 1, 1, 1}, 1});
  ds.examples.push_back({{17, 4, 250, 61}, {0, 1, 0, 1}, 2});
  return collate(ds, {0, 1}, torch::Device(torch::kCPU));
}

// Compares d loss / d t at `count` entries with central differences.
void check_gradient(const std::function<torch::Tensor()>& loss, torch::Tensor t, int count, const std::string& what) {
  t.mutable_grad() = torch::Tensor();
  loss().backward();
  torch::Tensor g = t.grad().clone();
  ASSERT_TRUE(g.defined()) << what;
  EXPECT_GT(g.abs().max().item<double>(), 1e-6) << what << ": gradient is zero, the test would prove nothing";
  torch::NoGradGuard no_grad;
  auto flat = t.view({-1});
  const int64_t n = flat.numel();
  const double eps = 1e-6;
  for (int i = 0; i < count; ++i) {
    const int64_t k = (i * 7919) % n;
    const double orig = flat[k].item<double>();
    flat[k] = orig + eps;
    const double up = loss().item<double>();
    flat[k] = orig - eps;
    const double down = loss().item<double>();
    flat[k] = orig;
    const double fd = (up - down) / (2 * eps);
    const double ad = g.view({-1})[k].item<double>();
    EXPECT_NEAR(ad, fd, 1e-6 + 1e-5 * std::abs(fd)) << what << " entry " << k;
  }
}

TEST(Gradients, LoraMatchesFiniteDifferences) {
  auto model = f64_model();
  auto set = attach_f64_lora(*model, {"q", "v", "down"}, 2);
  Batch b = make_batch();
  auto loss = [&] { return sft_loss_sum(*model, b, ForwardArgs{}); };
  for (const char* module : {"model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.v_proj",
                             "model.layers.1.mlp.down_proj"}) {
    check_gradient(loss, set->modules.at(module).A, 6, std::string(module) + ".lora_A");
    check_gradient(loss, set->modules.at(module).B, 6, std::string(module) + ".lora_B");
  }
}

TEST(Gradients, SteeringVectorMatchesFiniteDifferences) {
  for (HookSite site : {HookSite::LayerOutput, HookSite::MlpOutput}) {
    auto model = f64_model("qwen2");
    torch::manual_seed(5);
    torch::Tensor v = (torch::randn({32}, torch::kFloat64) * 0.1).requires_grad_(true);
    ResidualHooks hooks;
    hooks.add(site, 0, v, 2.5);
    ForwardArgs args;
    args.hooks = &hooks;
    Batch b = make_batch();
    check_gradient([&] { return sft_loss_sum(*model, b, args); }, v, 8, "steering vector");
  }
}

TEST(Gradients, KlIsZeroWithoutChangeAndItsGradientMatches) {
  auto model = f64_model();
  LoraOptions o;
  o.rank = 2;
  o.targets = {"o", "up"};
  auto set = lora_create(*model, o, 4);
  for (auto& [name, m] : set->modules) {
    m.A = m.A.to(torch::kFloat64).requires_grad_(true);
    m.B = m.B.to(torch::kFloat64).requires_grad_(true);
  }
  model->set_lora(set);
  Batch b = make_batch();
  ForwardArgs off;
  off.adapters = false;
  // B = 0 at initialisation: the adapted model is the reference, KL exactly 0.
  EXPECT_EQ(kl_sum(*model, b, ForwardArgs{}, off).item<double>(), 0.0);
  torch::manual_seed(8);
  {
    torch::NoGradGuard g;
    for (auto& [name, m] : set->modules) m.B.copy_(torch::randn(m.B.sizes(), torch::kFloat64) * 0.1);
  }
  auto kl = [&] { return kl_sum(*model, b, ForwardArgs{}, off); };
  EXPECT_GT(kl().item<double>(), 0.0);
  check_gradient(kl, set->modules.at("model.layers.0.self_attn.o_proj").B, 6, "KL wrt o_proj.lora_B");
  check_gradient(kl, set->modules.at("model.layers.1.mlp.up_proj").A, 6, "KL wrt up_proj.lora_A");
  // Hand check of the definition on the logits: sum_v p_ref (log p_ref - log p).
  torch::NoGradGuard g;
  torch::Tensor ref = torch::log_softmax(model->forward(b.ids, off), -1);
  torch::Tensor cur = torch::log_softmax(model->forward(b.ids), -1);
  torch::Tensor per = (ref.exp() * (ref - cur)).sum(-1);  // (B, T)
  torch::Tensor mask = b.mask.narrow(1, 1, b.ids.size(1) - 1).to(torch::kFloat64);
  double want = (per.narrow(1, 0, b.ids.size(1) - 1) * mask).sum().item<double>();
  EXPECT_NEAR(kl().item<double>(), want, 1e-10);
}

TEST(Gradients, SftLossIsTheMaskedCrossEntropy) {
  auto model = f64_model();
  Batch b = make_batch();
  EXPECT_EQ(b.targets, 6);
  EXPECT_EQ(b.tokens, 11);
  torch::NoGradGuard g;
  torch::Tensor lp = torch::log_softmax(model->forward(b.ids), -1);
  // Targets: row 0 positions 3..6 (predicted from 2..5), row 1 positions 1 and 3.
  double want = 0;
  auto ids = b.ids;
  for (auto [r, t] : std::vector<std::pair<int, int>>{{0, 3}, {0, 4}, {0, 5}, {0, 6}, {1, 1}, {1, 3}})
    want -= lp[r][t - 1][ids[r][t].item<int64_t>()].item<double>();
  EXPECT_NEAR(sft_loss_sum(*model, b, ForwardArgs{}).item<double>(), want, 1e-9);
}

// The chunked head cross-entropy (the default: each chunk's gradients computed in the forward)
// equals the whole one, loss and gradients (into the hidden states through a LoRA adapter, and into
// the head/embedding weight), with and without either, and its gradient matches finite differences.
TEST(Gradients, ChunkedHeadCrossEntropyEqualsTheWholeOne) {
  auto model = f64_model();
  auto set = attach_f64_lora(*model, {"down"}, 4);
  torch::Tensor& head = const_cast<torch::Tensor&>(model->head_weight());
  head.requires_grad_(true);
  const Batch b = make_batch();
  auto grads = [&](int64_t chunk) {
    for (auto& [name, m] : set->modules) m.B.mutable_grad() = torch::Tensor();
    head.mutable_grad() = torch::Tensor();
    torch::Tensor loss = sft_loss_sum(*model, b, ForwardArgs{}, chunk);
    loss.backward();
    return std::make_tuple(loss.item<double>(), set->modules.begin()->second.B.grad().clone(), head.grad().clone());
  };
  const auto [l0, gb0, gh0] = grads(-1);
  const auto [l1, gb1, gh1] = grads(2);  // 6 targets in chunks of 2
  EXPECT_NEAR(l1, l0, 1e-10 * std::abs(l0));
  EXPECT_LT((gb1 - gb0).abs().max().item<double>(), 1e-10);
  EXPECT_LT((gh1 - gh0).abs().max().item<double>(), 1e-10);
  EXPECT_GT(gh0.abs().max().item<double>(), 1e-6);
  check_gradient([&] { return sft_loss_sum(*model, b, ForwardArgs{}, 2); }, head, 6, "head (chunked)");
  // Without gradients (evaluation): the same loss, nothing attached.
  {
    torch::NoGradGuard no_grad;
    torch::Tensor l = sft_loss_sum(*model, b, ForwardArgs{}, 2);
    EXPECT_FALSE(l.requires_grad());
    EXPECT_NEAR(l.item<double>(), l0, 1e-10 * std::abs(l0));
  }
  // The head alone (no adapter: the hidden states need no gradient) and the hidden states alone (a
  // frozen head, as in LoRA training) each get theirs, as the whole logits give them.
  model->set_lora(nullptr);
  auto head_grad = [&](int64_t chunk) {
    head.mutable_grad() = torch::Tensor();
    sft_loss_sum(*model, b, ForwardArgs{}, chunk).backward();
    return head.grad().clone();
  };
  const torch::Tensor whole_head = head_grad(-1);
  EXPECT_GT(whole_head.abs().max().item<double>(), 1e-6);
  EXPECT_LT((head_grad(2) - whole_head).abs().max().item<double>(), 1e-10);
  model->set_lora(set);
  head.requires_grad_(false);
  head.mutable_grad() = torch::Tensor();
  for (auto& [name, m] : set->modules) m.B.mutable_grad() = torch::Tensor();
  sft_loss_sum(*model, b, ForwardArgs{}, 2).backward();
  EXPECT_LT((set->modules.begin()->second.B.grad() - gb0).abs().max().item<double>(), 1e-10);
  EXPECT_FALSE(head.grad().defined());
}

}  // namespace
}  // namespace emlab
