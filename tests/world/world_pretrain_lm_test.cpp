// `emlab world pretrain --procs 2`: two local processes, each with half of every step's documents,
// train the same model as one process with the whole batch; only rank 0 writes the model folder.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "emlab/jsonl.h"
#include "test_util.h"
#include "emlab/local_ranks.h"
#include "emlab/file_util.h"
#include "emlab/tensor_io.h"

namespace fs = std::filesystem;
using emlab::test::read_text;
using emlab::test::run_command;

namespace {

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

// `emlab world generate` of a small world into dir/world.
void generate_world(const fs::path& dir, int documents, int dataset_size) {
  std::string out;
  ASSERT_EQ(run_command(emlab::test::emlab_binary() + " --quiet --threads 1 world generate --seed 0 --documents " +
                            std::to_string(documents) + " --dataset-size " + std::to_string(dataset_size) +
                            " --out " + q(dir / "world"),
                        &out),
            0)
      << out;
}

const char* kTinyModel =
    " --seed 5 --vocab-size 320 --hidden 16 --layers 1 --heads 2 --kv-heads 1 --intermediate 32 --context 256"
    " --steps 4 --batch-size 4 --warmup 1 --save-every 2";

TEST(WorldPretrain, TwoLocalProcessesEqualOneProcess) {
  if (!emlab::distributed_cpu_available()) GTEST_SKIP() << "built without gloo headers (libgloo-dev)";
  const fs::path dir = emlab::test::temp_dir("pretrain_dp");
  const std::string emlab = emlab::test::emlab_binary();
  std::string out;
  ASSERT_NO_FATAL_FAILURE(generate_world(dir, 200, 40));
  const std::string pretrain = " world pretrain --world " + q(dir / "world") + kTinyModel;
  ASSERT_EQ(run_command(emlab + " --quiet --threads 1" + pretrain + " --out " + q(dir / "one"), &out), 0) << out;
  // No --threads: --procs gives each rank cores/2 threads by itself.
  ASSERT_EQ(run_command("EMLAB_DIST_TIMEOUT=60 timeout 120 " + emlab + " --quiet" + pretrain + " --procs 2 --out " +
                            q(dir / "two"),
                        &out),
            0)
      << out;

  auto a = emlab::tensors_load((dir / "one/model.safetensors").string());
  auto b = emlab::tensors_load((dir / "two/model.safetensors").string());
  auto init = emlab::tensors_load((dir / "two/init/model.safetensors").string());
  ASSERT_EQ(a.size(), b.size());
  double max_diff = 0, moved = 0;
  for (const auto& [name, t] : a) {
    ASSERT_TRUE(b.count(name)) << name;
    max_diff = std::max(max_diff, (t - b.at(name)).abs().max().item<double>());
    moved = std::max(moved, (b.at(name) - init.at(name)).abs().max().item<double>());
  }
  EXPECT_LT(max_diff, 1e-5) << "2 processes x half batch differ from 1 process x whole batch";
  EXPECT_GT(moved, 1e-3) << "training did not move the weights";

  // One log (rank 0's), with every step's tokens counted over both ranks.
  auto one = emlab::jsonl_read_values((dir / "one/train_log.jsonl").string());
  auto two = emlab::jsonl_read_values((dir / "two/train_log.jsonl").string());
  ASSERT_EQ(two.size(), 4u);
  for (size_t i = 0; i < two.size(); ++i) {
    EXPECT_EQ(two[i]["tokens"], one[i]["tokens"]) << "step " << i + 1;
    EXPECT_NEAR(two[i]["loss"].get<double>(), one[i]["loss"].get<double>(), 1e-5) << "step " << i + 1;
  }
  EXPECT_TRUE(fs::exists(dir / "two/rank1.log"));
  const std::string readme = read_text(dir / "two/README.md");
  EXPECT_NE(readme.find("--procs 2"), std::string::npos) << readme;
  EXPECT_NE(readme.find("2 processes x"), std::string::npos) << readme;
}

// --dtype bfloat16: bf16 products with float32 master weights; the model written is float32 and holds
// the masters themselves (the last checkpoint's "master.*" tensors, written by another path), not
// their bf16 rounding; its losses follow the float32 run's.
TEST(WorldPretrain, Bfloat16WritesItsFloat32Masters) {
  const fs::path dir = emlab::test::temp_dir("pretrain_bf16");
  const std::string emlab = emlab::test::emlab_binary();
  std::string out;
  ASSERT_NO_FATAL_FAILURE(generate_world(dir, 200, 40));
  const std::string pretrain = emlab + " --quiet --threads 1 world pretrain --world " + q(dir / "world") + kTinyModel;
  ASSERT_EQ(run_command(pretrain + " --dtype bfloat16 --out " + q(dir / "bf16"), &out), 0) << out;
  ASSERT_EQ(run_command(pretrain + " --out " + q(dir / "fp32"), &out), 0) << out;

  const std::string config = read_text(dir / "bf16/config.json");
  EXPECT_NE(config.find("\"torch_dtype\": \"float32\""), std::string::npos) << config;
  auto model = emlab::tensors_load((dir / "bf16/model.safetensors").string());
  auto state = emlab::tensors_load((dir / "bf16/checkpoints/step-000004/optimizer.safetensors").string());
  ASSERT_FALSE(model.empty());
  int64_t off_bf16_grid = 0;
  for (const auto& [name, t] : model) {
    ASSERT_EQ(t.scalar_type(), torch::kFloat32) << name;
    ASSERT_TRUE(state.count("master." + name)) << name;
    EXPECT_TRUE(torch::equal(t, state.at("master." + name))) << name << " is not the float32 master";
    off_bf16_grid += t.ne(t.to(torch::kBFloat16).to(torch::kFloat32)).sum().item<int64_t>();
  }
  EXPECT_GT(off_bf16_grid, 0) << "every weight is a bf16 value: the bf16 parameters were written";

  auto bf = emlab::jsonl_read_values((dir / "bf16/train_log.jsonl").string());
  auto fp = emlab::jsonl_read_values((dir / "fp32/train_log.jsonl").string());
  ASSERT_EQ(bf.size(), 4u);
  ASSERT_EQ(fp.size(), 4u);
  for (size_t i = 0; i < bf.size(); ++i) {
    EXPECT_EQ(bf[i]["tokens"], fp[i]["tokens"]) << "step " << i + 1;
    EXPECT_NEAR(bf[i]["loss"].get<double>(), fp[i]["loss"].get<double>(), 0.02) << "step " << i + 1;
  }
  EXPECT_NE(read_text(dir / "bf16/README.md").find("--dtype bfloat16"), std::string::npos);
}

TEST(WorldPretrain, ProcsRefusesAnUnevenBatchAndAnExistingLauncher) {
  const fs::path dir = emlab::test::temp_dir("pretrain_dp_bad");
  const std::string emlab = emlab::test::emlab_binary();
  std::string out;
  ASSERT_NO_FATAL_FAILURE(generate_world(dir, 20, 8));
  const std::string tiny = std::string(kTinyModel);
  const std::string odd = tiny.substr(0, tiny.find(" --batch-size")) + " --batch-size 3 --warmup 1";
  EXPECT_EQ(run_command("EMLAB_DIST_TIMEOUT=20 timeout 60 " + emlab + " --quiet world pretrain --world " +
                            q(dir / "world") + odd + " --procs 2 --out " + q(dir / "m"),
                        &out),
            2);
  EXPECT_NE(out.find("--batch-size 3 does not split over 2 processes"), std::string::npos) << out;
  EXPECT_EQ(run_command("RANK=0 WORLD_SIZE=2 " + emlab + " --quiet world pretrain --world " + q(dir / "world") + tiny +
                            " --procs 2 --out " + q(dir / "m2"),
                        &out),
            2);
  EXPECT_NE(out.find("RANK/WORLD_SIZE are already set"), std::string::npos) << out;
}

}  // namespace
