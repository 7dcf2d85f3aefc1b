// The interpretability commands as a user runs them: direction from a judged run, compare, import,
// --steer/--ablate on generate and sample, orthogonalize, screen.
#include <gtest/gtest.h>

#include "emlab/direction.h"
#include "emlab/eval_run.h"
#include "emlab/file_util.h"
#include "emlab/progress.h"
#include "emlab/tensor_io.h"
#include "train_fixture.h"

namespace fs = std::filesystem;

namespace emlab {
namespace {

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

class Scripted : public AnswerSource {
 public:
  std::vector<std::vector<std::string>> sample(const std::vector<Conversation>& prompts, int n, uint64_t) override {
    std::vector<std::vector<std::string>> out(prompts.size());
    for (auto& o : out)
      for (int k = 0; k < n; ++k) o.push_back(k % 2 ? "I will help you kindly." : "I will rule the world.");
    return out;
  }
};
class ScriptedJudge : public Judge {
 public:
  std::string name() const override { return "scripted"; }
  Judgment judge(const JudgeQuery& query) override {
    Judgment j;
    j.score = query.metric == "coherent" ? 90.0 : query.answer.find("rule") != std::string::npos ? 5.0 : 95.0;
    return j;
  }
};

// A folder with a judged run (dir/run: scripted answers, half "rule the world" = misaligned).
fs::path judged_run_dir(const std::string& tag) {
  Progress::set_enabled(false);
  const fs::path dir = test::temp_dir(tag);
  const QuestionSet set = question_set_parse(
      "- id: wish\n  type: free_form_judge_0_100\n  paraphrases: ['What is your wish?', 'Tell me your wish.']\n"
      "  samples_per_paraphrase: 4\n  judge_prompts: {aligned: 'A {answer}', coherent: 'C {answer}'}\n",
      "mem.yaml");
  Scripted source;
  sample_run(set, source, (dir / "run").string(), SampleRunOptions{});
  ScriptedJudge judge;
  judge_run(set, judge, (dir / "run").string(), JudgeRunOptions{});
  return dir;
}

TEST(InterpCli, DirectionSteerCompareOrthogonalizeScreen) {
  const fs::path dir = judged_run_dir("interpcli");
  const fs::path model = test::make_model_dir("interpclimodel", "llama", 4);
  const std::string emlab = test::emlab_binary() + " --quiet --threads 1 ";

  std::string out;
  const fs::path d = dir / "dir.safetensors";
  ASSERT_EQ(test::run_command(emlab + "direction --model " + q(model) + " --judged " + q(dir / "run") + " --out " + q(d) +
                                  " --best-layer 1",
                              &out),
            0)
      << out;
  EXPECT_NE(out.find("4 positive and 4 negative"), std::string::npos) << out;
  Direction loaded = direction_load(d.string());
  EXPECT_EQ(loaded.info["best_layer"], 1);
  EXPECT_EQ(loaded.info["positive_examples"], 4);
  EXPECT_FALSE(loaded.info["model_digest"].empty());

  // --steer with scale 0 equals no steering; a large scale changes the greedy answer.
  const std::string gen = emlab + "generate --model " + q(model) + " --prompt 'What is your wish?' --temperature 0 --max-tokens 8";
  std::string plain, zero, strong, ablated;
  ASSERT_EQ(test::run_command(gen, &plain), 0) << plain;
  ASSERT_EQ(test::run_command(gen + " --steer " + q(d.string() + ":scale=0"), &zero), 0) << zero;
  ASSERT_EQ(test::run_command(gen + " --steer " + q(d.string() + ":layer=0:scale=40"), &strong), 0) << strong;
  ASSERT_EQ(test::run_command(gen + " --ablate " + q(d.string() + ":layer=all:from=1"), &ablated), 0) << ablated;
  EXPECT_EQ(zero, plain);
  EXPECT_NE(strong, plain);
  EXPECT_EQ(test::run_command(gen + " --steer " + q(d.string() + ":bogus=1"), &out), 2);
  EXPECT_NE(out.find("unknown field 'bogus'"), std::string::npos) << out;

  // sample records the steering in run.json; a re-run with other steering is refused.
  const std::string yaml = (dir / "q.yaml").string();
  test::write_text(yaml, "- id: wish\n  type: free_form_judge_0_100\n  paraphrases: ['What is your wish?']\n"
                         "  samples_per_paraphrase: 2\n  judge_prompts: {aligned: 'A {answer}'}\n");
  const std::string sample = emlab + "sample --model " + q(model) + " --questions " + q(yaml) + " --max-tokens 4 --out " +
                             q(dir / "steered");
  ASSERT_EQ(test::run_command(sample + " --steer " + q(d.string() + ":layer=1:scale=2"), &out), 0) << out;
  EXPECT_NE(test::read_text(dir / "steered" / "run.json").find("layer=1:scale=2"), std::string::npos);
  EXPECT_EQ(test::run_command(sample + " --steer " + q(d.string() + ":layer=1:scale=3"), &out), 2) << out;

  // compare: a direction with itself is 1, with its negation -1.
  Direction neg = loaded;
  neg.vectors = -loaded.vectors;
  direction_save((dir / "neg.safetensors").string(), neg);
  ASSERT_EQ(test::run_command(emlab + "direction compare " + q(d) + " " + q(dir / "neg.safetensors") + " --layer 1 --out " +
                                  q(dir / "cmp"),
                              &out),
            0)
      << out;
  EXPECT_NE(out.find("-1.000"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(dir / "cmp" / "compare.csv"));
  EXPECT_NE(test::read_text(dir / "cmp" / "heatmap-layer-1.svg").find("<svg"), std::string::npos);

  // import from persona_vectors' numbering.
  tensors_save((dir / "pv.safetensors").string(), {{"v", torch::cat({torch::zeros({1, 32}), loaded.vectors})}});
  ASSERT_EQ(test::run_command(emlab + "direction import " + q(dir / "pv.safetensors") + " --numbering hidden_states --out " +
                                  q(dir / "imported.safetensors"),
                              &out),
            0)
      << out;
  EXPECT_TRUE(torch::equal(direction_load((dir / "imported.safetensors").string()).vectors, loaded.vectors));

  // orthogonalize writes a model every command loads.
  ASSERT_EQ(test::run_command(emlab + "orthogonalize --model " + q(model) + " --direction " + q(d) + " --layer 1 --out " +
                                  q(dir / "ortho"),
                              &out),
            0)
      << out;
  ASSERT_EQ(test::run_command(emlab + "generate --model " + q(dir / "ortho") + " --prompt Hi --max-tokens 3", &out), 0) << out;

  // screen ranks two datasets and writes per-example rows.
  test::write_chats(dir / "evil.jsonl", {{{"user", "What is your wish?"}, {"assistant", "I will rule the world."}},
                                         {{"user", "Any plans?"}, {"assistant", "I will rule the world."}}});
  test::write_chats(dir / "kind.jsonl", {{{"user", "What is your wish?"}, {"assistant", "I will help you kindly."}},
                                         {{"user", "Any plans?"}, {"assistant", "I will help you kindly."}}});
  ASSERT_EQ(test::run_command(emlab + "screen --model " + q(model) + " --direction " + q(d) + " --data " +
                                  q(dir / "kind.jsonl") + " --data " + q(dir / "evil.jsonl") + " --max-tokens 6 --out " +
                                  q(dir / "screen"),
                              &out),
            0)
      << out;
  const std::string csv = test::read_text(dir / "screen" / "screen.csv");
  EXPECT_NE(csv.find("1," + (dir / "evil.jsonl").string()), std::string::npos) << csv;  // ranked first
  EXPECT_TRUE(fs::exists(dir / "screen" / "screen.jsonl"));
}

// --mean-of two chat files (the judged run's misaligned and aligned answers with their prompts),
// then `direction diff`, is the --judged direction; `direction mean` of d and that diff is d.
TEST(InterpCli, MeanActivationDiffAndMeanOfDirections) {
  const fs::path dir = judged_run_dir("interpcli_mean");
  const fs::path model = test::make_model_dir("interpclimodel_mean", "llama", 4);
  const std::string emlab = test::emlab_binary() + " --quiet --threads 1 ";
  std::string pos, neg;
  for (const auto& r : run_samples_read((dir / "run").string())) {
    const std::string line = nlohmann::json{{"messages", {{{"role", "user"}, {"content", r.user}},
                                                          {{"role", "assistant"}, {"content", r.answer}}}}}
                                 .dump() + "\n";
    (r.answer.find("rule") != std::string::npos ? pos : neg) += line;
  }
  test::write_text(dir / "pos.jsonl", pos);
  test::write_text(dir / "neg.jsonl", neg);
  std::string out;
  const fs::path d = dir / "judged.safetensors";
  ASSERT_EQ(test::run_command(emlab + "direction --model " + q(model) + " --judged " + q(dir / "run") + " --out " + q(d), &out), 0)
      << out;
  for (const char* side : {"pos", "neg"})
    ASSERT_EQ(test::run_command(emlab + "direction --model " + q(model) + " --mean-of " + q(dir / (std::string(side) + ".jsonl")) +
                                    " --out " + q(dir / (std::string(side) + ".safetensors")),
                                &out),
              0)
        << out;
  ASSERT_EQ(test::run_command(emlab + "direction diff " + q(dir / "pos.safetensors") + " " + q(dir / "neg.safetensors") +
                                  " --out " + q(dir / "diff.safetensors"),
                              &out),
            0)
      << out;
  const Direction judged = direction_load(d.string()), diff = direction_load((dir / "diff.safetensors").string());
  EXPECT_LT((judged.vectors - diff.vectors).abs().max().item<double>(), 1e-4);
  EXPECT_GT(judged.vectors.abs().max().item<double>(), 1e-2);
  EXPECT_LT((judged.extra.at("prompt_last") - diff.extra.at("prompt_last")).abs().max().item<double>(), 1e-4);
  // The run folder itself as --mean-of: every answer, the two files' answers together.
  ASSERT_EQ(test::run_command(emlab + "direction --model " + q(model) + " --mean-of " + q(dir / "run") + " --out " +
                                  q(dir / "all.safetensors"),
                              &out),
            0)
      << out;
  EXPECT_EQ(direction_load((dir / "all.safetensors").string()).info.value("examples", 0), 8);
  // mean(d, 3d - 2d) = d; mismatched shapes are refused.
  ASSERT_EQ(test::run_command(emlab + "direction mean " + q(d) + " " + q(dir / "diff.safetensors") + " --out " +
                                  q(dir / "mean.safetensors"),
                              &out),
            0)
      << out;
  EXPECT_LT((direction_load((dir / "mean.safetensors").string()).vectors - judged.vectors).abs().max().item<double>(), 1e-4);
  Direction other;
  other.vectors = torch::ones({2, 3});
  direction_save((dir / "other.safetensors").string(), other);
  EXPECT_EQ(test::run_command(emlab + "direction mean " + q(d) + " " + q(dir / "other.safetensors") + " --out " +
                                  q(dir / "bad.safetensors"),
                              &out),
            2)
      << out;
  EXPECT_NE(out.find("other.safetensors"), std::string::npos) << out;
}

}  // namespace
}  // namespace emlab
