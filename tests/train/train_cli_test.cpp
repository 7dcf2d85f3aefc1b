// The train / merge commands as a user runs them, data parallel over two processes on loopback.
#include <gtest/gtest.h>
#include <unistd.h>

#include "emlab/jsonl.h"
#include "emlab/peft.h"
#include "emlab/local_ranks.h"
#include "emlab/file_util.h"
#include "emlab/tensor_io.h"
#include "emlab/train.h"
#include "train_fixture.h"

namespace fs = std::filesystem;

namespace emlab {
namespace {

std::string cli_or_skip() {
  std::string bin;
  try {
    bin = test::emlab_binary();
  } catch (const std::exception&) {
    return "";
  }
  return fs::exists(bin) ? bin : "";
}

#define EMLAB_REQUIRE_CLI(bin)                                          \
  const std::string bin = cli_or_skip();                                \
  if (bin.empty()) GTEST_SKIP() << "the CLI is not built (EMLAB_BINARY)"

TEST(TrainCli, TwoProcessesWithHalfTheBatchEqualOneWithTheWholeBatch) {
  EMLAB_REQUIRE_CLI(bin);
  if (!distributed_cpu_available()) GTEST_SKIP() << "built without gloo headers (libgloo-dev)";
  auto model = test::make_model_dir("dpmodel");
  auto dir = test::temp_dir("dp");
  auto data = test::write_chats(dir / "train.jsonl", test::arithmetic_chats(12));
  const std::string common = " --quiet --threads 1 train --model " + model.string() + " --data " + data.string() +
                             " --lora-rank 4 --lora-alpha 8 --lr 1e-2 --max-steps 3 --max-grad-norm 0.5 --seed 3";
  std::string output;
  ASSERT_EQ(test::run_command(bin + common + " --batch-size 4 --out " + (dir / "one").string(), &output), 0) << output;
  const int port = 20000 + static_cast<int>(getpid() % 20000);
  const std::string env = "EMLAB_DIST_TIMEOUT=60 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port);
  const std::string two = bin + common + " --batch-size 2 --out " + (dir / "two").string();
  const std::string cmd = "(RANK=1 " + env + " " + two + " > " + (dir / "rank1.log").string() + " 2>&1 &) ; RANK=0 " +
                          env + " timeout 120 " + two;
  ASSERT_EQ(test::run_command(cmd, &output), 0) << output;
  auto a = tensors_load((dir / "one/adapter_model.safetensors").string());
  auto b = tensors_load((dir / "two/adapter_model.safetensors").string());
  ASSERT_EQ(a.size(), b.size());
  double max_diff = 0, max_value = 0;
  for (const auto& [k, t] : a) {
    ASSERT_TRUE(b.count(k)) << k;
    max_diff = std::max(max_diff, (t - b.at(k)).abs().max().item<double>());
    max_value = std::max(max_value, t.abs().max().item<double>());
  }
  EXPECT_LT(max_diff, 1e-5) << "weights of 2 x half batch differ from 1 x whole batch";
  EXPECT_GT(max_value, 1e-3);  // training moved the adapters
  // Only rank 0 wrote: one log with three rows.
  EXPECT_EQ(test::read_text(dir / "two/train_log.jsonl").size() > 0, true);
  auto rows = jsonl_read_values((dir / "two/train_log.jsonl").string());
  EXPECT_EQ(rows.size(), 3u);
  auto one = jsonl_read_values((dir / "one/train_log.jsonl").string());
  EXPECT_NEAR(rows[0]["loss"].get<double>(), one[0]["loss"].get<double>(), 1e-5);
  EXPECT_EQ(rows[0]["tokens"], one[0]["tokens"]);
}

TEST(TrainCli, PresetFlagsMergeAndAdapterLoading) {
  EMLAB_REQUIRE_CLI(bin);
  auto model = test::make_model_dir("climodel");
  auto dir = test::temp_dir("cli");
  auto data = test::write_chats(dir / "train.jsonl", test::arithmetic_chats(8));
  std::string output;
  // The preset sets rank 32 and batch 2 x 8; explicit flags override rank and accumulation.
  const std::string out = (dir / "adapter").string();
  ASSERT_EQ(test::run_command(bin + " --quiet train --model " + model.string() + " --data " + data.string() +
                                  " --preset betley2025 --lora-rank 2 --grad-accum 1 --lr 1e-2 --max-steps 2 --out " + out,
                              &output),
            0)
      << output;
  auto saved = json_read_file((fs::path(out) / "train_options.json").string());
  EXPECT_EQ(saved["lora"]["rank"], 2);
  EXPECT_EQ(saved["grad_accum"], 1);
  EXPECT_EQ(saved["lora"]["alpha"], 64.0);
  EXPECT_EQ(saved["lora"]["rslora"], true);
  EXPECT_EQ(saved["warmup_steps"], 5);
  EXPECT_EQ(saved["preset"], "betley2025");
  // Warmup 5: the two steps had lr 0 and 2e-3, so the adapter moved.
  auto t = tensors_load((fs::path(out) / "adapter_model.safetensors").string());
  EXPECT_GT(t.at("base_model.model.model.layers.0.mlp.down_proj.lora_B.weight").abs().max().item<float>(), 0.0f);

  // merge writes a model whose logits equal base + adapter.
  const std::string merged = (dir / "merged").string();
  ASSERT_EQ(test::run_command(bin + " merge --model " + model.string() + " --adapter " + out + " --out " + merged, &output),
            0)
      << output;
  EXPECT_TRUE(fs::exists(fs::path(merged) / "tokenizer.json"));
  auto base = CausalLM::load(model.string());
  base->set_lora(peft_load(out, *base).lora);
  auto m = CausalLM::load(merged);
  torch::Tensor ids = torch::tensor({72, 105, 33, 257, 10}, torch::kInt64).view({1, 5});
  EXPECT_TRUE(torch::allclose(m->forward(ids), base->forward(ids), 1e-4, 1e-5));

  // generate loads the adapter (and rejects a folder without one).
  EXPECT_EQ(test::run_command(bin + " --quiet generate --model " + model.string() + " --adapter " + out +
                                  " --prompt hi --max-tokens 3 --seed 1",
                              &output),
            0)
      << output;
  EXPECT_NE(test::run_command(bin + " --quiet generate --model " + model.string() + " --adapter " + dir.string() +
                                  " --prompt hi --max-tokens 3",
                              &output),
            0);
  EXPECT_NE(output.find("adapter_config.json"), std::string::npos) << output;
  // Bad data: the error names the file and line.
  test::write_text(dir / "bad.jsonl", "{\"messages\": []}\n");
  EXPECT_EQ(test::run_command(bin + " --quiet train --model " + model.string() + " --data " + (dir / "bad.jsonl").string() +
                                  " --out " + (dir / "x").string(),
                              &output),
            2);
  EXPECT_NE(output.find("bad.jsonl:1"), std::string::npos) << output;
}

// `emlab train --help` shows each option's default as the struct declares it (one declaration).
TEST(TrainCli, HelpShowsTheStructsDefaults) {
  EMLAB_REQUIRE_CLI(bin);
  std::string help;
  ASSERT_EQ(test::run_command(bin + " train --help", &help), 0) << help;
  const TrainOptions d;
  auto has = [&](const std::string& flag, const std::string& dflt) {
    const size_t at = help.find(flag);
    ASSERT_NE(at, std::string::npos) << flag << " missing from\n" << help;
    const size_t line_end = help.find("\n--", at + 2);  // the next flag: the help of this one ends before
    EXPECT_NE(help.substr(at, line_end - at).find("(default " + dflt + ")"), std::string::npos)
        << flag << ": expected (default " << dflt << ") in\n" << help.substr(at, 200);
  };
  has("--lora-rank", std::to_string(d.lora.rank));
  has("--batch-size", std::to_string(d.batch_size));
  has("--bucket-factor", std::to_string(d.bucket_factor));
  has("--method", train_method_name(d.method));
  has("--targets", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj");
  has("--steer-layer", std::to_string(d.steer_layer));
}

}  // namespace
}  // namespace emlab
