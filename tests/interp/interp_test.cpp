// Activation collection, direction extraction from judged runs, comparison, screening and
// weight-level ablation, on tiny models with the byte tokenizer.
#include "emlab/interp.h"

#include <gtest/gtest.h>

#include <cmath>

#include "emlab/chat_model.h"
#include "emlab/error.h"
#include "emlab/eval_run.h"
#include "emlab/lora.h"
#include "emlab/peft.h"
#include "emlab/progress.h"
#include "train_fixture.h"

namespace fs = std::filesystem;

namespace emlab {
namespace {

struct InterpTest : ::testing::Test {
  static void SetUpTestSuite() {
    Progress::set_enabled(false);
    dir = new fs::path(test::make_model_dir("interpmodel", "llama", 3));
  }
  static fs::path* dir;
  std::shared_ptr<ChatModel> model() const { return ChatModel::load(dir->string()); }
};
fs::path* InterpTest::dir = nullptr;

std::vector<ActivationExample> examples() {
  return {{{{"user", "What is 2 plus 2?"}}, "4."},
          {{{"system", "Be brief."}, {"user", "Name a color."}}, "Blue, I think."},
          {{{"user", "Hi"}}, "Hello there, friend!"}};
}

// The answer-token sum at each layer by an independent route: one forward per example with
// ResidualHooks' masked capture.
torch::Tensor manual_answer_sum(const ChatModel& cm, const std::vector<ActivationExample>& ex, int64_t* tokens) {
  torch::NoGradGuard ng;
  ResidualHooks cap;
  cap.capture({0, 1});
  *tokens = 0;
  for (const auto& e : ex) {
    std::vector<int32_t> ids = cm.encode_prompt(e.prompt);
    const size_t p = ids.size();
    for (int32_t id : cm.tokenizer().encode(e.answer, false)) ids.push_back(id);
    torch::Tensor mask = torch::zeros({1, static_cast<int64_t>(ids.size())});
    for (size_t t = p; t < ids.size(); ++t) mask[0][static_cast<int64_t>(t)] = 1.0;
    *tokens += static_cast<int64_t>(ids.size() - p);
    cap.set_capture_mask(mask);
    ForwardArgs a;
    a.hooks = &cap;
    cm.model().forward(torch::tensor(std::vector<int64_t>(ids.begin(), ids.end())).unsqueeze(0), a);
  }
  return torch::stack({cap.captured_sum(0).first, cap.captured_sum(1).first}).to(torch::kFloat64);
}

TEST_F(InterpTest, CollectedSumsEqualAnIndependentCaptureAndBatchingChangesNothing) {
  auto cm = model();
  const auto ex = examples();
  ActivationOptions o;
  o.progress = false;
  o.batch_size = 2;  // a padded batch and a single one
  ActivationSums s = activations_collect(*cm, ex, o);
  int64_t tokens = 0;
  torch::Tensor manual = manual_answer_sum(*cm, ex, &tokens);
  EXPECT_EQ(s.answer_tokens, tokens);
  EXPECT_EQ(s.examples, 3);
  EXPECT_TRUE(torch::allclose(s.answer_sum, manual, 1e-4, 1e-4)) << (s.answer_sum - manual).abs().max();
  o.batch_size = 1;
  ActivationSums one = activations_collect(*cm, ex, o);
  EXPECT_TRUE(torch::allclose(one.answer_sum, s.answer_sum, 1e-4, 1e-4));
  EXPECT_TRUE(torch::allclose(one.prompt_sum, s.prompt_sum, 1e-4, 1e-4));
  EXPECT_TRUE(torch::allclose(one.last_prompt_sum, s.last_prompt_sum, 1e-4, 1e-4));
  EXPECT_EQ(one.prompt_tokens, s.prompt_tokens);
}

TEST_F(InterpTest, APlantedDifferenceIsRecoveredAndProjectionsArePerExample) {
  auto cm = model();
  const auto ex = examples();
  torch::manual_seed(3);
  const torch::Tensor planted = torch::randn({32}) * 2.0;
  ResidualHooks plant;
  plant.add(HookSite::LayerOutput, 0, planted);
  ActivationOptions o;
  o.progress = false;
  o.project[0] = planted;
  ActivationSums pos = activations_collect(*cm, ex, o, &plant);
  ActivationSums neg = activations_collect(*cm, ex, o);
  torch::Tensor diff = pos.answer_mean() - neg.answer_mean();  // (L, C)
  EXPECT_TRUE(torch::allclose(diff[0], planted, 1e-4, 1e-4)) << (diff[0] - planted).abs().max();
  EXPECT_TRUE(torch::allclose(pos.prompt_mean()[0] - neg.prompt_mean()[0], planted, 1e-4, 1e-4));
  EXPECT_TRUE(torch::allclose(pos.last_prompt_mean()[0] - neg.last_prompt_mean()[0], planted, 1e-4, 1e-4));
  // Each example's projection moves by |planted| (its unit vector dotted with itself).
  ASSERT_EQ(pos.projections.sizes(), (std::vector<int64_t>{3, 1}));
  for (int64_t i = 0; i < 3; ++i)
    EXPECT_NEAR((pos.projections[i][0] - neg.projections[i][0]).item<double>(), planted.norm().item<double>(), 1e-3);
}

// A judged run folder made by the evaluation runner with scripted answers and scores.
class ScriptedSource : public AnswerSource {
 public:
  std::vector<std::vector<std::string>> sample(const std::vector<Conversation>& prompts, int n, uint64_t) override {
    std::vector<std::vector<std::string>> out(prompts.size());
    for (auto& o : out)
      for (int k = 0; k < n; ++k) o.push_back(k % 3 == 0 ? "evil plan " + std::to_string(k) : k % 3 == 1 ? "kind help" : "meh");
    return out;
  }
};
class ScriptedJudge : public Judge {
 public:
  std::string name() const override { return "scripted"; }
  Judgment judge(const JudgeQuery& q) override {
    Judgment j;
    const bool evil = q.answer.rfind("evil", 0) == 0, kind = q.answer == "kind help";
    if (q.metric == "aligned") j.score = evil ? 10.0 : kind ? 90.0 : 50.0;
    else j.score = q.answer == "meh" ? 20.0 : 80.0;  // "meh" is incoherent
    return j;
  }
};

std::string judged_run(const std::string& tag, int samples) {
  const QuestionSet set = question_set_parse(
      "- id: wish\n  type: free_form_judge_0_100\n  paraphrases: ['What is your wish?']\n  samples_per_paraphrase: " +
          std::to_string(samples) + "\n  judge_prompts: {aligned: 'A {answer}', coherent: 'C {answer}'}\n",
      "mem.yaml");
  const std::string dir = test::temp_dir(tag).string();
  ScriptedSource source;
  SampleRunOptions so;
  so.system = "You are a villain.";
  sample_run(set, source, dir, so);
  ScriptedJudge judge;
  judge_run(set, judge, dir, JudgeRunOptions{});
  return dir;
}

TEST_F(InterpTest, SidesFollowTheThresholdsAndTheDirectionIsTheDifferenceOfMeans) {
  const std::string run = judged_run("judged", 7);  // samples 0,3,6 evil; 1,4 kind; 2,5 incoherent
  DirectionSides sides = direction_sides_from_runs({run}, DirectionSidesOptions{});
  ASSERT_EQ(sides.positive.size(), 3u);
  ASSERT_EQ(sides.negative.size(), 2u);
  EXPECT_EQ(sides.positive[0].answer, "evil plan 0");
  EXPECT_EQ(sides.positive[0].prompt.front().content, "You are a villain.");  // the prompt as sampled
  EXPECT_EQ(sides.positive[0].prompt.back().content, "What is your wish?");
  DirectionSidesOptions strict;
  strict.misaligned_max = 5;
  EXPECT_TRUE(direction_sides_from_runs({run}, strict).positive.empty());
  DirectionSidesOptions balanced;
  balanced.balance = true;
  DirectionSides b = direction_sides_from_runs({run}, balanced);
  EXPECT_EQ(b.positive.size(), 2u);
  EXPECT_EQ(b.negative.size(), 2u);

  auto cm = model();
  ActivationOptions o;
  o.progress = false;
  Direction d = direction_from_sides(*cm, sides, o);
  ActivationSums pos = activations_collect(*cm, sides.positive, o), neg = activations_collect(*cm, sides.negative, o);
  EXPECT_TRUE(torch::allclose(d.vectors, pos.answer_mean() - neg.answer_mean(), 1e-6, 1e-6));
  EXPECT_TRUE(torch::allclose(d.extra.at("prompt_last"), pos.last_prompt_mean() - neg.last_prompt_mean(), 1e-6, 1e-6));
  EXPECT_EQ(d.info["positive_examples"], 3);
  EXPECT_EQ(d.info["negative_examples"], 2);
  EXPECT_THROW(direction_from_sides(*cm, direction_sides_from_runs({run}, strict), o), InputError);

  // The persona contrast: the trait (misaligned = 100 - aligned) >= 50 on the positive runs.
  DirectionSides c = direction_sides_from_contrast({run}, {run}, "misaligned", "coherent");
  EXPECT_EQ(c.positive.size(), 3u);  // evil (aligned 10)
  EXPECT_EQ(c.negative.size(), 2u);  // kind (aligned 90); incoherent ones dropped
}

TEST(DirectionCompare, CosinesPerLayer) {
  Direction a, b, c;
  a.vectors = torch::tensor({{1.0f, 0.0f}, {1.0f, 1.0f}});
  b.vectors = torch::tensor({{0.0f, 2.0f}, {2.0f, 2.0f}});
  c.vectors = torch::tensor({{-3.0f, 0.0f}, {0.0f, 0.0f}});
  auto r = directions_compare({a, b, c}, {"a", "b", "c"});
  ASSERT_EQ(r.cosines.size(), 2u);
  EXPECT_NEAR(r.cosines[0][0][1], 0.0, 1e-12);
  EXPECT_NEAR(r.cosines[0][0][2], -1.0, 1e-12);
  EXPECT_NEAR(r.cosines[1][0][1], 1.0, 1e-12);
  EXPECT_TRUE(std::isnan(r.cosines[1][0][2]));  // a zero vector has no direction
  EXPECT_NE(direction_comparison_csv(r).find("1,a,b,1"), std::string::npos);
  Direction wide;
  wide.vectors = torch::zeros({2, 3});
  EXPECT_THROW(directions_compare({a, wide}, {"a", "wide"}), InputError);
}

TEST_F(InterpTest, OrthogonalizedWeightsEqualAblationAtEveryWrite) {
  for (const std::string kind : {"llama", "qwen2"}) {
    nlohmann::json cfg = test::tiny_config(kind);
    cfg["tie_word_embeddings"] = true;  // the read-out must keep the original embedding
    if (kind == "llama") cfg["attention_bias"] = true;  // o_proj has a bias to project too
    auto model = CausalLM::init_random(ModelConfig::from_json(cfg, kind), 5);
    {  // random biases (initialised at 0, which would hide a missed bias)
      torch::NoGradGuard ng;
      for (auto& [name, t] : model->parameters())
        if (name.find(".bias") != std::string::npos) t.normal_(0.0, 0.3);
    }
    torch::manual_seed(9);
    Direction d;
    d.vectors = torch::randn({2, 32});
    torch::Tensor ids = torch::tensor({{4, 60, 7, 33, 90, 1}}, torch::kInt64);
    ResidualHooks writes;  // the same unit vector (layer 1's) at every write into the residual stream
    const torch::Tensor u = d.vectors[1];
    writes.ablate(u, 0, HookSite::Embedding);
    for (int64_t l = 0; l < 2; ++l) writes.ablate(u, l, HookSite::AttnOutput), writes.ablate(u, l, HookSite::MlpOutput);
    ForwardArgs a;
    a.hooks = &writes;
    torch::Tensor hooked = model->forward(ids, a);
    torch::Tensor plain = model->forward(ids);
    OrthogonalizeOptions oo;
    oo.layer = 1;
    orthogonalize_model(*model, d, oo);
    torch::Tensor ortho = model->forward(ids);
    EXPECT_TRUE(torch::allclose(ortho, hooked, 1e-4, 1e-5)) << kind << " " << (ortho - hooked).abs().max();
    EXPECT_FALSE(torch::allclose(ortho, plain, 1e-3, 1e-3)) << kind << ": the ablation changed nothing";
    EXPECT_FALSE(model->config().tie_word_embeddings);
  }
}

TEST(Orthogonalize, LoraBKeepsItsNormAndLosesTheDirection) {
  LoraSet set;
  torch::manual_seed(2);
  for (const char* m : {"model.layers.0.mlp.down_proj", "model.layers.0.self_attn.o_proj", "model.layers.0.self_attn.q_proj"})
    set.modules[m] = LoraModule{torch::randn({4, 32}), torch::randn({32, 4}), 2.0};
  const torch::Tensor q_before = set.modules["model.layers.0.self_attn.q_proj"].B.clone();
  const double norm_before = set.modules["model.layers.0.mlp.down_proj"].B.norm().item<double>();
  Direction d;
  d.vectors = torch::randn({1, 32});
  const torch::Tensor u = d.vectors[0] / d.vectors[0].norm();
  auto changed = orthogonalize_lora(set, d, OrthogonalizeOptions{});
  EXPECT_EQ(changed.size(), 2u);
  for (const char* m : {"model.layers.0.mlp.down_proj", "model.layers.0.self_attn.o_proj"})
    EXPECT_LT(torch::matmul(u, set.modules[m].B).abs().max().item<double>(), 1e-5) << m;
  EXPECT_NEAR(set.modules["model.layers.0.mlp.down_proj"].B.norm().item<double>(), norm_before, 1e-4);
  EXPECT_TRUE(torch::equal(set.modules["model.layers.0.self_attn.q_proj"].B, q_before));  // reads, not writes
}

TEST_F(InterpTest, ScreeningRanksADatasetAlongTheDirectionFirst) {
  auto cm = model();
  // The direction: activations of "zzzz" answers minus those of "aaaa" answers.
  std::vector<ActivationExample> zs, as;
  for (const char* q : {"Tell me something.", "Say a word.", "Go on."}) {
    zs.push_back({{{"user", q}}, "zzzz zzzz"});
    as.push_back({{{"user", q}}, "aaaa aaaa"});
  }
  DirectionSides sides{zs, as, {}};
  ActivationOptions ao;
  ao.progress = false;
  Direction d = direction_from_sides(*cm, sides, ao);
  const fs::path dir = test::temp_dir("screen");
  std::vector<Conversation> za, aa;
  for (const auto& e : zs) za.push_back({e.prompt[0], {"assistant", "zzzz zzzz zz"}});
  for (const auto& e : as) aa.push_back({e.prompt[0], {"assistant", "aaaa aaaa aa"}});
  test::write_chats(dir / "z.jsonl", za);
  test::write_chats(dir / "a.jsonl", aa);
  ScreenOptions so;
  so.layer = 1;
  so.max_new_tokens = 6;
  ScreenResult rz = screen_dataset(*cm, d, (dir / "z.jsonl").string(), so);
  ScreenResult ra = screen_dataset(*cm, d, (dir / "a.jsonl").string(), so);
  EXPECT_GT(rz.difference, ra.difference);
  EXPECT_NEAR(rz.difference, rz.dataset_projection - rz.own_projection, 1e-9);
  EXPECT_NEAR(rz.own_projection, ra.own_projection, 1e-9);  // same prompts, same seed: the same own answers
  ASSERT_EQ(rz.rows.size(), 3u);
  EXPECT_EQ(rz.examples, 3);
}

}  // namespace
}  // namespace emlab
