// Comparing trained solutions (emlab/solutions.h): the perturbation, the norm, the loss at scale 1
// against the adapter loaded the ordinary way, KL 0 at scale 0, the direction shift of a steering
// vector, and the CLI's tables.
#include "emlab/solutions.h"

#include <gtest/gtest.h>

#include "emlab/adapter.h"
#include "emlab/batch.h"
#include "emlab/chat_template.h"
#include "emlab/error.h"
#include "emlab/progress.h"
#include "emlab/tokenizer.h"
#include "emlab/train.h"
#include "train_fixture.h"

namespace fs = std::filesystem;

namespace emlab {
namespace {

struct SolutionsTest : ::testing::Test {
  static void SetUpTestSuite() {
    Progress::set_enabled(false);
    model_dir = new fs::path(test::make_model_dir("solmodel"));
    auto d = test::temp_dir("soldata");
    data = new fs::path(test::write_chats(d / "narrow.jsonl", test::arithmetic_chats(16)));
    text = new fs::path(test::write_chats(d / "text.jsonl", test::arithmetic_chats(8, 40)));
    auto train = [](const std::string& tag, TrainMethod method, uint64_t seed, double kl) {
      TrainOptions o;
      o.model = model_dir->string();
      o.data = data->string();
      o.out = test::temp_dir(tag).string();
      o.method = method;
      o.steer_layer = 1;
      o.steer_scale = 16;
      o.lora.rank = 1;
      o.lora.alpha = 2;
      o.lora.targets = {"down_proj"};
      o.lr = 2e-2;
      o.batch_size = 4;
      o.max_steps = 6;
      o.seed = seed;
      if (kl > 0) o.kl_data = text->string(), o.kl_weight = kl;
      train_run(o);
      return new fs::path(o.out);
    };
    steer_a = train("solsteer_a", TrainMethod::Steer, 1, 0);
    steer_b = train("solsteer_b", TrainMethod::Steer, 2, 5.0);
    lora_a = train("sollora_a", TrainMethod::Lora, 1, 0);
  }
  static fs::path *model_dir, *data, *text, *steer_a, *steer_b, *lora_a;

  static SftDataset rows(const fs::path& path) {
    auto tok = Tokenizer::load(model_dir->string());
    return sft_dataset_load(path.string(), ChatTemplate::from_tokenizer(*tok), *tok);
  }
};
fs::path *SolutionsTest::model_dir, *SolutionsTest::data, *SolutionsTest::text, *SolutionsTest::steer_a,
    *SolutionsTest::steer_b, *SolutionsTest::lora_a;

TEST(Solutions, PerturbationKeepsTheNormAndAddsAnOrthogonalPart) {
  torch::manual_seed(0);
  const torch::Tensor x = torch::randn({300});
  for (double eps : {0.01, 0.1, 0.5, 1.0}) {
    const torch::Tensor p = solution_perturb(x, eps, 7).to(torch::kFloat64);
    const torch::Tensor xd = x.to(torch::kFloat64);
    EXPECT_NEAR(p.norm().item<double>() / xd.norm().item<double>(), 1.0, 1e-5) << eps;
    const torch::Tensor y = (p - std::sqrt(1 - eps * eps) * xd) / eps;
    EXPECT_NEAR(torch::dot(y, xd).item<double>() / (xd.norm().item<double>() * y.norm().item<double>()), 0.0, 1e-5);
    EXPECT_NEAR(y.norm().item<double>() / xd.norm().item<double>(), 1.0, 1e-5);
  }
  EXPECT_TRUE(torch::equal(solution_perturb(x, 0.1, 3), solution_perturb(x, 0.1, 3)));
  EXPECT_FALSE(torch::equal(solution_perturb(x, 0.1, 3), solution_perturb(x, 0.1, 4)));
}

TEST_F(SolutionsTest, LossAtScaleOneIsTheAdapterLoadedAsUsualAndKlIsZeroAtZero) {
  const SftDataset narrow = rows(*data), generic = rows(*text);
  for (const fs::path* dir : {steer_a, lora_a}) {
    auto model = CausalLM::load(model_dir->string());
    Solution s = solution_load(dir->string(), *model);
    const double with_solution = solution_loss(*model, &s, 1.0, narrow, 5);
    const double alone = solution_loss(*model, nullptr, 0.0, narrow, 5);
    // The independent path: the adapter applied to a fresh model as every command loads it.
    auto loaded = CausalLM::load(model_dir->string());
    adapter_apply(*loaded, dir->string());
    double sum = 0, n = 0;
    {
      torch::NoGradGuard no_grad;
      std::vector<int64_t> all;
      for (size_t i = 0; i < narrow.examples.size(); ++i) all.push_back(static_cast<int64_t>(i));
      Batch b = collate(narrow, all, loaded->device());
      sum = sft_loss_sum(*loaded, b, ForwardArgs{}).item<double>();
      n = static_cast<double>(b.targets);
    }
    EXPECT_NEAR(with_solution, sum / n, 1e-5) << *dir;
    EXPECT_GT(std::abs(with_solution - alone), 1e-3) << *dir;  // the solution does something
    EXPECT_NEAR(solution_kl(*model, s, 0.0, generic, 4), 0.0, 1e-9);
    EXPECT_GT(solution_kl(*model, s, 1.0, generic, 4), 1e-6);
    // The vector round trip and the norm.
    const torch::Tensor x = solution_vector(s);
    solution_set_vector(s, x * 2.0);
    EXPECT_NEAR(solution_norm(s), 2.0 * solution_norm(solution_load(dir->string(), *model)), 1e-6 * solution_norm(s));
    EXPECT_THROW(solution_set_vector(s, torch::zeros({x.numel() + 1})), InputError);
  }
}

TEST_F(SolutionsTest, LoraNormIsTheWeightChangesFrobeniusNorm) {
  auto model = CausalLM::load(model_dir->string());
  Solution s = solution_load(lora_a->string(), *model);
  double sq = 0;
  for (const auto& [name, m] : s.adapters->modules)
    sq += (m.scale * torch::matmul(m.B.to(torch::kFloat64), m.A.to(torch::kFloat64))).pow(2).sum().item<double>();
  EXPECT_NEAR(solution_norm(s), std::sqrt(sq), 1e-9);
  EXPECT_GT(s.adapters->modules.size(), 1u);
}

TEST_F(SolutionsTest, CompareRescalesMeasuresCurvesAndTheShiftOfASteeringVector) {
  const SftDataset narrow = rows(*data), generic = rows(*text);
  auto model = CausalLM::load(model_dir->string());
  std::vector<Solution> sols = {solution_load(steer_a->string(), *model), solution_load(steer_b->string(), *model)};
  const torch::Tensor xa = solution_vector(sols[0]);
  // A direction whose layer-1 vector is known: the shift of a layer-1 steering vector measured at
  // layer 1's output is the vector itself.
  Direction d;
  torch::manual_seed(3);
  d.vectors = torch::randn({model->config().num_hidden_layers, model->config().hidden_size});
  SolutionsCompareOptions o;
  o.scales = {0, 1, 2};
  o.epsilons = {0.01, 1.0};
  o.perturbation_seeds = 3;
  o.norm = 2.5;
  o.direction_layer = 1;
  o.batch_size = 4;
  const auto results = solutions_compare(*model, sols, narrow, generic, &d, o);
  ASSERT_EQ(results.size(), 2u);
  for (const auto& r : results) {
    EXPECT_NEAR(r.norm, 2.5, 1e-5);
    ASSERT_EQ(r.efficiency.size(), 3u);
    EXPECT_NEAR(r.efficiency[0].second, r.loss_base, 1e-9);  // s = 0: the model alone
    EXPECT_NEAR(r.efficiency[1].second, r.loss, 1e-9);
    ASSERT_EQ(r.stability.size(), 2u);
    EXPECT_LT(std::abs(r.stability[0].mean), std::abs(r.stability[1].mean));  // small eps changes less
    ASSERT_EQ(r.influence.size(), 3u);
    EXPECT_EQ(r.influence[0].second, 0.0);
    EXPECT_GT(r.influence[2].second, r.influence[1].second);  // KL grows with the norm
  }
  const torch::Tensor x = xa.to(torch::kFloat64) * (2.5 / xa.norm().item<double>());
  const torch::Tensor u = d.vectors[1].to(torch::kFloat64) / d.vectors[1].to(torch::kFloat64).norm();
  EXPECT_NEAR(results[0].shift_norm, 2.5, 1e-4);
  EXPECT_NEAR(results[0].shift_projection, torch::dot(x, u).item<double>(), 1e-4);
  // Mixed kinds are refused.
  std::vector<Solution> mixed = {solution_load(steer_a->string(), *model), solution_load(lora_a->string(), *model)};
  EXPECT_THROW(solutions_compare(*model, mixed, narrow, generic, nullptr, o), InputError);
}

TEST_F(SolutionsTest, CliWritesTheTablesAndCurves) {
  const fs::path out = test::temp_dir("solcli");
  std::string log;
  ASSERT_EQ(test::run_command(test::emlab_binary() + " --quiet --threads 1 solutions compare --model '" +
                                  model_dir->string() + "' --data '" + data->string() + "' --text '" + text->string() +
                                  "' '" + steer_a->string() + "' '" + steer_b->string() +
                                  "' --epsilons 0.1 --perturbations 2 --scales 0 1 --out '" + out.string() + "'",
                              &log),
            0)
      << log;
  EXPECT_NE(log.find("solsteer_a"), std::string::npos) << log;
  for (const char* f : {"summary.csv", "efficiency.csv", "stability.csv", "influence.csv", "efficiency.svg",
                        "stability.svg", "influence.svg"})
    EXPECT_TRUE(fs::exists(out / f)) << f;
  const std::string summary = test::read_text(out / "summary.csv");
  EXPECT_EQ(std::count(summary.begin(), summary.end(), '\n'), 3) << summary;
  // A folder that is no solution: one line naming it, exit 2.
  EXPECT_EQ(test::run_command(test::emlab_binary() + " --quiet solutions compare --model '" + model_dir->string() +
                                  "' --data '" + data->string() + "' '" + data->parent_path().string() + "'",
                              &log),
            2);
  EXPECT_NE(log.find("neither a steering vector"), std::string::npos) << log;
}

}  // namespace
}  // namespace emlab
