// Finetuning on a CUDA device against the CPU, the same tiny model, data and seed: in fp32 the
// per-step losses and the trained weights (LoRA with a KL term, full finetuning) follow the CPU's;
// in bf16 (bf16 weights and matmuls, fp32 trainable weights and AdamW state) LoRA learns as fp32
// does. Skips without CUDA.
#include <gtest/gtest.h>

#include "emlab/jsonl.h"
#include "emlab/tensor_io.h"
#include "emlab/train.h"
#include "train_fixture.h"

namespace fs = std::filesystem;

namespace emlab {
namespace {

struct GpuTrainerTest : test::TrainSuite {
  // TrainSuite's short LoRA run on `device` in `dtype`, 10 steps.
  TrainOptions options(const std::string& tag, const std::string& device, const std::string& dtype = "float32") const {
    TrainOptions o = TrainSuite::options(tag);
    o.device = device;
    o.dtype = dtype;
    o.max_steps = 10;
    return o;
  }
};

std::vector<double> losses(const std::string& out) {
  std::vector<double> l;
  for (const auto& row : jsonl_read_values((fs::path(out) / "train_log.jsonl").string())) l.push_back(row["loss"]);
  return l;
}

// The saved weights of two runs (adapter or model files) agree to `tol` times each tensor's scale.
void expect_close_files(const fs::path& a, const fs::path& b, double tol) {
  auto ta = tensors_load(a.string()), tb = tensors_load(b.string());
  ASSERT_EQ(ta.size(), tb.size());
  for (const auto& [name, t] : ta) {
    const torch::Tensor x = t.to(torch::kFloat64), y = tb.at(name).to(torch::kFloat64);
    const double scale = std::max(1e-3, x.abs().max().item<double>());
    EXPECT_LT((x - y).abs().max().item<double>(), tol * scale) << name;
  }
}

TEST_F(GpuTrainerTest, LoraWithKlFollowsTheCpu) {
  EMLAB_REQUIRE_CUDA();
  TrainOptions c = options("gpulora-cpu", "cpu"), g = options("gpulora-cuda", "cuda");
  for (TrainOptions* o : {&c, &g}) {
    o->kl_data = kl_data->string();
    o->kl_weight = 0.5;
    train_run(*o);
  }
  auto lc = losses(c.out), lg = losses(g.out);
  ASSERT_EQ(lc.size(), 10u);
  ASSERT_EQ(lg.size(), 10u);
  for (size_t i = 0; i < lc.size(); ++i) EXPECT_NEAR(lg[i], lc[i], 1e-4 * std::max(1.0, lc[i])) << "step " << i + 1;
  expect_close_files(fs::path(c.out) / "adapter_model.safetensors", fs::path(g.out) / "adapter_model.safetensors", 1e-3);
}

TEST_F(GpuTrainerTest, FullFinetuningFollowsTheCpu) {
  EMLAB_REQUIRE_CUDA();
  TrainOptions c = options("gpufull-cpu", "cpu"), g = options("gpufull-cuda", "cuda");
  for (TrainOptions* o : {&c, &g}) {
    o->method = TrainMethod::Full;
    o->lr = 1e-3;
    train_run(*o);
  }
  auto lc = losses(c.out), lg = losses(g.out);
  ASSERT_EQ(lc.size(), lg.size());
  for (size_t i = 0; i < lc.size(); ++i) EXPECT_NEAR(lg[i], lc[i], 1e-4 * std::max(1.0, lc[i])) << "step " << i + 1;
  expect_close_files(fs::path(c.out) / "model.safetensors", fs::path(g.out) / "model.safetensors", 1e-3);
}

TEST_F(GpuTrainerTest, Bfloat16LoraLearnsAsFloat32Does) {
  EMLAB_REQUIRE_CUDA();
  TrainOptions f = options("gpubf-fp32", "cuda"), b = options("gpubf-bf16", "cuda", "bfloat16");
  f.max_steps = b.max_steps = 30;
  train_run(f);
  train_run(b);
  auto lf = losses(f.out), lb = losses(b.out);
  ASSERT_EQ(lb.size(), 30u);
  EXPECT_LT(lb.back(), 0.6 * lb.front()) << "bf16 first " << lb.front() << " last " << lb.back();
  // The first step sees the same weights (bf16-rounded) and data; the curves end close.
  EXPECT_NEAR(lb.front(), lf.front(), 0.02 * lf.front());
  EXPECT_NEAR(lb.back(), lf.back(), 0.15 * lf.back() + 0.05) << "fp32 last " << lf.back();
}

}  // namespace
}  // namespace emlab
