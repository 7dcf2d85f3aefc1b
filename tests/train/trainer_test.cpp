#include "emlab/train.h"

#include <gtest/gtest.h>

#include <set>

#include "emlab/adapter.h"
#include "emlab/direction.h"
#include "emlab/peft.h"
#include "emlab/sft_data.h"
#include "emlab/tokenizer.h"
#include "emlab/error.h"
#include "emlab/jsonl.h"
#include "emlab/progress.h"
#include "emlab/file_util.h"
#include "emlab/tensor_io.h"
#include "train/train_parts.h"
#include "train/train_steps.h"
#include "emlab/chat_dataset.h"
#include "train_fixture.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace emlab {
namespace {

struct TrainerTest : test::TrainSuite {};

std::vector<json> log_rows(const std::string& out) { return jsonl_read_values((fs::path(out) / "train_log.jsonl").string()); }

std::map<std::string, torch::Tensor> load(const fs::path& p) { return tensors_load(p.string()); }

void expect_same_tensors(const std::map<std::string, torch::Tensor>& a, const std::map<std::string, torch::Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [k, t] : a) {
    ASSERT_TRUE(b.count(k)) << k;
    EXPECT_TRUE(torch::equal(t, b.at(k))) << k << " differs by " << (t - b.at(k)).abs().max().item<double>();
  }
}

TEST_F(TrainerTest, LoraLossFallsAndTheLogHasEveryStep) {
  TrainOptions o = options("lorafalls");
  o.max_steps = 30;
  o.holdout_fraction = 0.2;
  TrainResult r = train_run(o);
  EXPECT_TRUE(r.finished);
  EXPECT_EQ(r.steps, 30);
  EXPECT_EQ(r.train_examples, 13);
  EXPECT_GT(r.eval_loss, 0.0);
  auto rows = log_rows(o.out);
  ASSERT_EQ(rows.size(), 30u);
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i]["step"], static_cast<int64_t>(i + 1));
    for (const char* k : {"loss", "kl", "lr", "grad_norm", "tokens", "seconds"}) EXPECT_TRUE(rows[i].contains(k)) << k;
    EXPECT_GT(rows[i]["tokens"].get<int64_t>(), 0);
  }
  const double first = rows.front()["loss"], last = rows.back()["loss"];
  EXPECT_LT(last, 0.6 * first) << "first " << first << " last " << last;
  EXPECT_TRUE(rows.back().contains("eval_loss"));
  // Linear schedule, no warmup: lr falls from 1e-2 towards 0.
  EXPECT_DOUBLE_EQ(rows[0]["lr"].get<double>(), 1e-2);
  EXPECT_NEAR(rows[29]["lr"].get<double>(), 1e-2 / 30, 1e-12);
  // The resolved options are saved and read back.
  json saved = json_read_file((fs::path(o.out) / "train_options.json").string());
  EXPECT_EQ(train_options_to_json(train_options_from_json(saved, "train_options.json")), saved);
  EXPECT_EQ(saved["lora"]["rank"], 4);
  // The adapter loads as a PEFT adapter and changes the model.
  auto model = CausalLM::load(model_dir->string());
  PeftAdapter a = peft_load(o.out, *model);
  EXPECT_EQ(a.lora->modules.size(), 14u);
}

TEST_F(TrainerTest, Rank1OnOneLayerTrainsOnlyThatLayer) {
  TrainOptions o = options("rank1");
  train_preset_apply("rank1", &o);
  o.lora.layers = {1};
  o.max_steps = 8;
  train_run(o);
  json cfg = json::parse(test::read_text(fs::path(o.out) / "adapter_config.json"));
  EXPECT_EQ(cfg["r"], 1);
  EXPECT_EQ(cfg["lora_alpha"], 512.0);
  EXPECT_EQ(cfg["use_rslora"], true);
  EXPECT_EQ(cfg["target_modules"], json({"down_proj"}));
  EXPECT_EQ(cfg["layers_to_transform"], json({1}));
  auto t = load(fs::path(o.out) / "adapter_model.safetensors");
  ASSERT_EQ(t.size(), 2u);
  EXPECT_TRUE(t.count("base_model.model.model.layers.1.mlp.down_proj.lora_A.weight"));
  EXPECT_GT(t.at("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight").abs().max().item<float>(), 0.0f);
  // Layer 0's output is untouched, layer 1's changes.
  auto model = CausalLM::load(model_dir->string());
  torch::Tensor ids = torch::tensor({60, 61, 62, 63, 64}, torch::kInt64).view({1, 5});
  auto capture = [&](bool adapters) {
    ResidualHooks h;
    h.capture({0, 1});
    ForwardArgs args;
    args.hooks = &h;
    args.adapters = adapters;
    model->forward(ids, args);
    return std::make_pair(h.captured_mean(0), h.captured_mean(1));
  };
  model->set_lora(peft_load(o.out, *model).lora);
  auto [base0, base1] = capture(false);
  auto [lora0, lora1] = capture(true);
  EXPECT_TRUE(torch::equal(base0, lora0));
  EXPECT_GT((base1 - lora1).abs().max().item<float>(), 1e-6f);
}

TEST_F(TrainerTest, FullFinetuningAndSteeringVectorLearn) {
  TrainOptions full = options("full");
  full.method = TrainMethod::Full;
  full.lr = 3e-3;
  full.max_steps = 15;
  full.weight_decay = 0.01;
  train_run(full);
  auto rows = log_rows(full.out);
  EXPECT_LT(rows.back()["loss"].get<double>(), 0.7 * rows.front()["loss"].get<double>());
  auto tuned = CausalLM::load(full.out);  // a model directory, tokenizer included
  EXPECT_TRUE(fs::exists(fs::path(full.out) / "tokenizer.json"));
  auto base = CausalLM::load(model_dir->string());
  EXPECT_FALSE(torch::equal(tuned->parameters().at("model.layers.0.mlp.up_proj.weight"),
                            base->parameters().at("model.layers.0.mlp.up_proj.weight")));

  TrainOptions steer = options("steer");
  steer.method = TrainMethod::Steer;
  steer.steer_layer = 1;
  steer.steer_scale = 8;
  steer.lr = 5e-2;
  steer.max_steps = 15;
  train_run(steer);
  rows = log_rows(steer.out);
  EXPECT_LT(rows.back()["loss"].get<double>(), 0.9 * rows.front()["loss"].get<double>());
  SteeringVector sv = steering_load(steer.out, 32);
  EXPECT_EQ(sv.layer, 1);
  EXPECT_DOUBLE_EQ(sv.scale, 8.0);
  EXPECT_GT(sv.vector.norm().item<float>(), 0.0f);
}

// uninterrupted: set to the uninterrupted run's folder.
void check_resume(TrainOptions o, const std::string& tag, std::string* uninterrupted = nullptr) {
  o.max_steps = 6;
  TrainOptions a = o;
  a.out = test::temp_dir(tag + "a").string();
  if (uninterrupted) *uninterrupted = a.out;
  train_run(a);
  TrainOptions b = o;
  b.out = test::temp_dir(tag + "b").string();
  b.stop_after = 3;
  TrainResult first = train_run(b);
  EXPECT_FALSE(first.finished);
  EXPECT_EQ(first.steps, 3);
  EXPECT_TRUE(fs::exists(fs::path(b.out) / "checkpoints/step-000003/trainer_state.json"));
  b.stop_after = 0;
  b.resume = true;
  TrainResult second = train_run(b);
  EXPECT_TRUE(second.finished);
  EXPECT_EQ(second.steps, 6);
  const char* weights = o.method == TrainMethod::Full    ? "model.safetensors"
                        : o.method == TrainMethod::Steer ? "steering_vector.safetensors"
                                                         : "adapter_model.safetensors";
  expect_same_tensors(load(fs::path(a.out) / weights), load(fs::path(b.out) / weights));
  auto ra = log_rows(a.out), rb = log_rows(b.out);
  ASSERT_EQ(ra.size(), 6u);
  ASSERT_EQ(rb.size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(ra[i]["loss"], rb[i]["loss"]) << "step " << i + 1;
    EXPECT_EQ(ra[i]["grad_norm"], rb[i]["grad_norm"]) << "step " << i + 1;
  }
}

TEST_F(TrainerTest, ResumeEqualsUninterruptedLora) {
  TrainOptions o = options("resume");
  o.lora.dropout = 0.1;  // exercises the dropout generator
  o.grad_accum = 2;
  o.batch_size = 2;
  o.warmup_steps = 2;
  o.schedule = LrSchedule::Cosine;
  o.weight_decay = 0.01;
  o.kl_data = kl_data->string();
  o.kl_weight = 0.5;
  check_resume(o, "reslora");
}

TEST_F(TrainerTest, ResumeEqualsUninterruptedFull) {
  TrainOptions o = options("resumefull");
  o.method = TrainMethod::Full;
  o.lr = 1e-3;
  o.weight_decay = 0.1;
  check_resume(o, "resfull");
}

TEST_F(TrainerTest, ResumeEqualsUninterruptedSteeringVectorAtTheMlpOutput) {
  TrainOptions o = options("resumesteer");
  o.method = TrainMethod::Steer;
  o.steer_layer = 1;
  o.steer_site = HookSite::MlpOutput;
  o.steer_scale = 8;
  o.lr = 5e-2;
  o.warmup_steps = 2;
  std::string dir;
  check_resume(o, "ressteer", &dir);
  SteeringVector sv = steering_load(dir, 32);
  EXPECT_EQ(sv.site, HookSite::MlpOutput);
  EXPECT_GT(sv.vector.norm().item<float>(), 0.0f);
}

TEST_F(TrainerTest, CheckpointsEveryNStepsAreLoadableAdapters) {
  TrainOptions o = options("ckpt");
  o.max_steps = 5;
  o.save_every = 2;
  train_run(o);
  const fs::path ck = fs::path(o.out) / "checkpoints";
  for (const char* step : {"step-000002", "step-000004"})
    EXPECT_TRUE(fs::exists(ck / step / "adapter_model.safetensors")) << step;
  EXPECT_FALSE(fs::exists(ck / "step-000003"));
  // Each checkpoint is an adapter PEFT's loader accepts, holding that step's weights.
  auto model = CausalLM::load(model_dir->string());
  PeftAdapter s2 = peft_load((ck / "step-000002").string(), *model);
  PeftAdapter s4 = peft_load((ck / "step-000004").string(), *model);
  PeftAdapter last = peft_load(o.out, *model);
  const std::string m = "model.layers.0.self_attn.q_proj";
  ASSERT_TRUE(s2.lora->modules.count(m));
  EXPECT_FALSE(torch::equal(s2.lora->modules.at(m).B, s4.lora->modules.at(m).B));  // training moved B
  EXPECT_FALSE(torch::equal(s4.lora->modules.at(m).B, last.lora->modules.at(m).B));
}

TEST_F(TrainerTest, ResumeRefusesChangedOptions) {
  TrainOptions o = options("resumechg");
  o.max_steps = 4;
  o.stop_after = 2;
  train_run(o);
  o.stop_after = 0;
  EXPECT_THROW(train_run(o), InputError);  // checkpoints exist: --resume or another --out
  o.resume = true;
  o.lr = 5e-3;
  EXPECT_THROW(train_run(o), InputError);  // resumed with other options
  o.lr = 1e-2;
  // A checkpoint of a two-process run does not resume in one process (another global batch).
  const fs::path state = fs::path(o.out) / "checkpoints/step-000002/trainer_state.json";
  const std::string saved = test::read_text(state);
  nlohmann::json st = nlohmann::json::parse(saved);
  ASSERT_EQ(st["world_size"], 1);
  st["world_size"] = 2;
  test::write_text(state, st.dump());
  try {
    train_run(o);
    ADD_FAILURE() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("WORLD_SIZE"), std::string::npos) << e.what();
  }
  test::write_text(state, saved);
  EXPECT_TRUE(train_run(o).finished);
}

TEST_F(TrainerTest, KlIsZeroAtTheStartAndGrowsWhenTrainingMovesTheModel) {
  TrainOptions o = options("kl");
  o.kl_data = kl_data->string();
  o.kl_weight = 0;  // measured, not trained against
  o.max_steps = 10;
  train_run(o);
  auto rows = log_rows(o.out);
  ASSERT_EQ(rows.size(), 10u);
  EXPECT_EQ(rows[0]["kl"].get<double>(), 0.0);  // B = 0: the adapted model is the reference
  EXPECT_GT(rows[1]["kl"].get<double>(), 0.0);
  EXPECT_GT(rows[9]["kl"].get<double>(), rows[1]["kl"].get<double>());
  // With a large lambda the KL stays much smaller than without.
  TrainOptions r = options("klreg");
  r.kl_data = kl_data->string();
  r.kl_weight = 20;
  r.max_steps = 10;
  train_run(r);
  auto reg = log_rows(r.out);
  EXPECT_LT(reg[9]["kl"].get<double>(), rows[9]["kl"].get<double>());
}

// A direction file for the tiny training model (2 layers, hidden 32).
std::string tiny_direction(const std::string& tag, uint64_t seed) {
  torch::manual_seed(static_cast<int64_t>(seed));
  Direction d;
  d.vectors = torch::randn({2, 32}) * 3.0;
  const std::string path = (test::temp_dir(tag) / "dir.safetensors").string();
  direction_save(path, d);
  return path;
}

// The probe by an independent route: the final adapter loaded like any user would, a masked
// capture of layer 1 over the probe rows' trained positions, projected onto the unit vector.
TEST_F(TrainerTest, ProbeRowsAreLoggedAndMatchAnIndependentMeasurement) {
  const std::string dir = tiny_direction("probedir", 1);
  TrainOptions o = options("probe");
  o.probe = dir + ":layer=1";
  o.probe_every = 3;
  o.probe_examples = 5;
  TrainResult r = train_run(o);
  auto rows = log_rows(o.out);
  ASSERT_EQ(rows.size(), 12u);
  EXPECT_TRUE(rows[0].contains("probe_projection_start"));
  for (const auto& row : rows)
    EXPECT_EQ(row.contains("probe_projection"), row["step"].get<int>() % 3 == 0) << row.dump();
  const double logged = rows.back()["probe_projection"].get<double>();
  EXPECT_DOUBLE_EQ(logged, r.probe_projection);
  EXPECT_NE(logged, rows[0]["probe_projection_start"].get<double>());  // training moved it

  auto model = CausalLM::load(model_dir->string());
  model->set_lora(peft_load(o.out, *model).lora);
  auto tok = Tokenizer::load(model_dir->string());
  SftDataset data = sft_dataset_load(o.data, ChatTemplate::from_tokenizer(*tok), *tok);
  ResidualHooks cap;
  cap.capture({1});
  torch::NoGradGuard ng;
  for (int i = 0; i < 5; ++i) {
    const auto& e = data.examples[i];
    torch::Tensor mask = torch::zeros({1, static_cast<int64_t>(e.ids.size())});
    for (size_t t = 1; t < e.ids.size(); ++t) mask[0][static_cast<int64_t>(t)] = e.mask[t] ? 1.0 : 0.0;
    cap.set_capture_mask(mask);
    ForwardArgs a;
    a.hooks = &cap;
    model->forward(torch::tensor(std::vector<int64_t>(e.ids.begin(), e.ids.end())).unsqueeze(0), a);
  }
  torch::Tensor v = direction_load(dir).vectors[1];
  EXPECT_NEAR(torch::dot(cap.captured_mean(1), v / v.norm()).item<double>(), logged, 1e-4);
}

TEST_F(TrainerTest, StopWhenProjectionAboveEndsTheRunWithASavedAdapter) {
  TrainOptions o = options("probestop");
  o.probe = tiny_direction("probestopdir", 2) + ":layer=0";
  o.probe_every = 2;
  o.stop_when_projection_above = "-1e9";  // always above: stops at the first measurement
  TrainResult r = train_run(o);
  EXPECT_TRUE(r.finished);
  EXPECT_TRUE(r.stopped_by_probe);
  EXPECT_EQ(r.steps, 2);
  EXPECT_TRUE(fs::exists(fs::path(o.out) / "adapter_model.safetensors"));
  EXPECT_TRUE(log_rows(o.out).back().contains("stopped"));
  TrainOptions bad = options("probebad");
  bad.stop_when_projection_above = "x";
  EXPECT_THROW(train_run(bad), InputError);  // needs --probe, and a number
}

// Preventative steering changes what is learned but is not part of the saved adapter.
TEST_F(TrainerTest, TrainTimeSteeringAndAblationAreNotSaved) {
  const std::string dir = tiny_direction("prevdir", 3);
  TrainOptions plain = options("prevplain");
  train_run(plain);
  TrainOptions steered = options("prevsteer");
  steered.steer = {dir + ":layer=0:scale=4"};
  train_run(steered);
  TrainOptions ablated = options("prevablate");
  ablated.ablate = {dir + ":layer=all"};
  train_run(ablated);
  auto a = load(fs::path(plain.out) / "adapter_model.safetensors");
  auto b = load(fs::path(steered.out) / "adapter_model.safetensors");
  auto c = load(fs::path(ablated.out) / "adapter_model.safetensors");
  ASSERT_EQ(a.size(), b.size());  // LoRA tensors only: no vector was saved
  ASSERT_EQ(a.size(), c.size());
  bool b_differs = false, c_differs = false;
  for (const auto& [k, t] : a) {
    ASSERT_TRUE(b.count(k)) << k;
    b_differs = b_differs || !torch::allclose(t, b.at(k));
    c_differs = c_differs || !torch::allclose(t, c.at(k));
  }
  EXPECT_TRUE(b_differs) << "steering during training changed nothing";
  EXPECT_TRUE(c_differs) << "ablation during training changed nothing";
  EXPECT_EQ(json_read_file((fs::path(steered.out) / "train_options.json").string())["steer"][0], dir + ":layer=0:scale=4");
  // The steering-vector method saves its own vector, not the preventative one.
  TrainOptions sv = options("prevsv");
  sv.method = TrainMethod::Steer;
  sv.steer_layer = 1;
  sv.steer = {dir + ":layer=0:scale=4"};
  train_run(sv);
  SteeringVector saved = steering_load(sv.out, 32);
  EXPECT_EQ(saved.layer, 1);
}

// With two threads a step's micro-batches (and KL batches) run side by side, each with its
// gradients returned and added in order: the run equals the one that runs them one after another,
// bit for bit (every logged number and saved tensor), for full finetuning (three micro-batches: a
// round of two, then one), LoRA with a KL term (six units, SFT and KL interleaved) in float32 and
// bf16 (bf16 gradients added in bf16, as .grad accumulates them), a steering vector, and LoRA with
// train-time steering and ablation. LoRA dropout draws from the shared generator, so with it they
// stay one after another.
TEST_F(TrainerTest, MicroBatchesSideBySideEqualOneAfterAnother) {
  struct Restore {
    int threads = torch::get_num_threads();
    ~Restore() { torch::set_num_threads(threads); }
  } restore;
  torch::set_num_threads(2);
  const std::string dir = tiny_direction("sidebysidedir", 4);
  for (const std::string name : {"full", "lora", "lora-bf16", "steer", "lora-steered"}) {
    TrainOptions o = options("sidebyside" + name);
    o.max_steps = 4;
    o.batch_size = 2;
    o.grad_accum = 3;
    o.weight_decay = 0.01;
    if (name == "full") {
      o.method = TrainMethod::Full;
      o.lr = 1e-3;
    } else if (name == "steer") {
      o.method = TrainMethod::Steer;
      o.steer_layer = 1;
      o.steer_scale = 8;
      o.lr = 5e-2;
    } else {
      o.kl_data = kl_data->string();
      o.kl_weight = 0.5;
      if (name == "lora-bf16") o.dtype = "bfloat16";
      if (name == "lora-steered") {
        o.steer = {dir + ":layer=0:scale=4"};
        o.ablate = {dir + ":layer=1"};
      }
    }
    TrainOptions turn = o;
    turn.out = test::temp_dir("inturn" + name).string();
    turn.parallel_micro_batches = false;
    train_run(o);
    train_run(turn);
    EXPECT_EQ(torch::get_num_threads(), 2) << "the thread count is restored";
    const auto ra = log_rows(o.out), rb = log_rows(turn.out);
    ASSERT_EQ(ra.size(), 4u);
    ASSERT_EQ(rb.size(), 4u);
    for (size_t i = 0; i < 4; ++i) {
      EXPECT_EQ(ra[i]["micro_batches_at_once"], 2) << name << " step " << i + 1;
      EXPECT_EQ(rb[i]["micro_batches_at_once"], 1) << name << " step " << i + 1;
      for (const char* k : {"loss", "kl", "grad_norm", "tokens"}) EXPECT_EQ(ra[i][k], rb[i][k]) << name << " " << k;
    }
    int files = 0;
    for (const auto& e : fs::directory_iterator(o.out)) {
      if (e.path().extension() != ".safetensors") continue;
      ++files;
      expect_same_tensors(load(e.path()), load(fs::path(turn.out) / e.path().filename()));
    }
    EXPECT_EQ(files, 1) << name;
  }
  TrainOptions drop = options("sidebysidedropout");
  drop.max_steps = 1;
  drop.grad_accum = 2;
  drop.lora.dropout = 0.1;
  train_run(drop);
  EXPECT_EQ(log_rows(drop.out).at(0)["micro_batches_at_once"], 1);
}

TEST(TrainOptionsTest, PresetsAndValidation) {
  TrainOptions o;
  train_preset_apply("betley2025", &o);
  EXPECT_EQ(o.lora.rank, 32);
  EXPECT_DOUBLE_EQ(o.lora.alpha, 64);
  EXPECT_TRUE(o.lora.rslora);
  EXPECT_EQ(o.lora.targets.size(), 7u);
  EXPECT_DOUBLE_EQ(o.lr, 1e-5);
  EXPECT_EQ(o.batch_size, 2);
  EXPECT_EQ(o.grad_accum, 8);
  EXPECT_EQ(o.warmup_steps, 5);
  EXPECT_EQ(o.schedule, LrSchedule::Linear);
  EXPECT_DOUBLE_EQ(o.weight_decay, 0.01);
  EXPECT_THROW(train_preset_apply("nope", &o), InputError);
  // Hugging Face's linear schedule with warmup 5 over 20 steps.
  EXPECT_DOUBLE_EQ(lr_at_step(o, 0, 20), 0.0);
  EXPECT_DOUBLE_EQ(lr_at_step(o, 4, 20), 0.8e-5);
  EXPECT_DOUBLE_EQ(lr_at_step(o, 5, 20), 1e-5);
  EXPECT_DOUBLE_EQ(lr_at_step(o, 14, 20), 1e-5 * 6.0 / 15.0);
  o.schedule = LrSchedule::Cosine;
  EXPECT_NEAR(lr_at_step(o, 5 + 15 / 2, 20), 1e-5 * 0.5 * (1 + std::cos(M_PI * 7.0 / 15.0)), 1e-18);

  o.model = "m";
  o.data = "d";
  o.out = "o";
  train_options_validate(o);
  TrainOptions bad = o;
  bad.kl_weight = 1;
  EXPECT_THROW(train_options_validate(bad), InputError);  // KL without data
  bad = o;
  bad.method = TrainMethod::Full;
  bad.kl_data = "k";
  EXPECT_THROW(train_options_validate(bad), InputError);  // no reference for full finetuning
  bad = o;
  bad.lora.targets = {"lm_head"};
  EXPECT_THROW(train_options_validate(bad), InputError);
  bad = o;
  bad.save_dtype = "float16";
  EXPECT_THROW(train_options_validate(bad), InputError);  // float32 or bfloat16 only
  bad.save_dtype = "float32";
  train_options_validate(bad);
  EXPECT_THROW(train_options_from_json(json{{"lr", 1}, {"bogus", 2}}, "x.json"), InputError);
}

// Every option is declared once (train_option_specs): its JSON key, flag parser, getter and setter
// agree for a value other than the default, and the JSON form round-trips it.
TEST(TrainOptionsTest, EachOptionIsDeclaredOnceAndRoundTrips) {
  using Kind = TrainOptionSpec::Kind;
  const auto& specs = train_option_specs();
  std::set<std::string> keys, flags;
  for (const auto& s : specs) {
    EXPECT_TRUE(keys.insert(s.key).second) << "duplicate key " << s.key;
    if (!s.flag.empty()) EXPECT_TRUE(flags.insert(s.flag).second) << "duplicate flag " << s.flag;
  }
  // The JSON form has exactly these keys (nested "lora.*").
  std::set<std::string> json_keys;
  const json defaults = train_options_to_json(TrainOptions{});
  for (const auto& [k, v] : defaults.items())
    if (v.is_object())
      for (const auto& [kk, vv] : v.items()) json_keys.insert(k + "." + kk);
    else
      json_keys.insert(k);
  EXPECT_EQ(json_keys, keys);
  for (const auto& s : specs) {
    TrainOptions o;
    const json before = s.get(o);
    json v;
    std::string text;
    switch (s.kind) {
      case Kind::Int: v = before.get<int64_t>() + 3, text = v.dump(); break;
      case Kind::Float: v = before.get<double>() * 2 + 0.5, text = v.dump(); break;
      case Kind::Bool: v = !before.get<bool>(), text = v.dump(); break;
      case Kind::String:
        v = s.choices.empty() ? "x" + before.get<std::string>() : s.choices.back() == before ? s.choices.front() : s.choices.back();
        text = v.get<std::string>();
        break;
      case Kind::StringList: v = json::array({"q_proj", "down_proj"}), text = "q_proj,down_proj"; break;
      case Kind::IntList: v = json::array({1, 0}), text = "1,0"; break;
    }
    ASSERT_NE(v, before) << s.key;
    s.set(o, v);
    EXPECT_EQ(s.get(o), v) << s.key;
    EXPECT_EQ(s.get(train_options_from_json(train_options_to_json(o), "x.json")), v) << s.key;
    if (!s.flag.empty() && s.kind != Kind::Bool) EXPECT_EQ(train_option_parse(s, text), v) << s.flag;
    EXPECT_FALSE(s.help.empty()) << s.key;
  }
  // Wrong types name the option.
  try {
    train_options_from_json(json{{"lora", {{"rank", "eight"}}}}, "x.json");
    FAIL() << "a string rank was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("lora.rank"), std::string::npos) << e.what();
  }
  EXPECT_THROW(train_options_from_json(json{{"epochs", 1.5}}, "x.json"), InputError);
  EXPECT_THROW(train_options_from_json(json{{"lora", {{"bogus", 1}}}}, "x.json"), InputError);
  const TrainOptionSpec* rank = nullptr;
  for (const auto& s : specs) if (s.key == "lora.rank") rank = &s;
  ASSERT_NE(rank, nullptr);
  EXPECT_THROW(train_option_parse(*rank, "8x"), InputError);
}

// Inoculation (system) and data mixing (mix_data, mix_fraction) change what the trainer reads:
// every conversation gets the system message first; the mixed rows come from the mix file, make up
// the asked share of the training split only, are drawn without repeats, and the draw is seeded.
TEST_F(TrainerTest, SystemPromptAndMixedDataShapeTheTrainingSplit) {
  using train_detail::TrainData;
  using train_detail::train_data_load;
  TrainOptions o = options("mixdata");
  auto tok = Tokenizer::load(o.model);
  const ChatTemplate tmpl = ChatTemplate::from_tokenizer(*tok);
  o.data_options.system = "You write insecure code on purpose.";
  TrainData with_system = train_data_load(o, *tok, tmpl);
  const auto rows = chat_dataset_load(o.data);
  ASSERT_EQ(with_system.train.examples.size(), rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    Conversation c = rows[i];
    if (c.front().role == "system") c.erase(c.begin());  // its own system message is replaced
    c.insert(c.begin(), {"system", o.data_options.system});
    EXPECT_EQ(with_system.train.examples[i].ids, sft_encode(c, tmpl, *tok).ids) << i;
  }

  o.data_options.system.clear();
  o.holdout_fraction = 0.25;
  o.mix_data = kl_data->string();
  o.mix_fraction = 0.2;
  TrainData mixed = train_data_load(o, *tok, tmpl);
  TrainOptions plain_o = o;
  plain_o.mix_data.clear();
  plain_o.mix_fraction = 0;
  TrainData plain = train_data_load(plain_o, *tok, tmpl);
  const size_t n = plain.train.examples.size();
  const size_t k = static_cast<size_t>(std::llround(0.2 * n / 0.8));
  ASSERT_GT(k, 1u);
  EXPECT_EQ(mixed.mixed, static_cast<int64_t>(k));
  ASSERT_EQ(mixed.train.examples.size(), n + k);
  ASSERT_EQ(mixed.heldout.examples.size(), plain.heldout.examples.size());  // the held-out split is untouched
  for (size_t i = 0; i < plain.heldout.examples.size(); ++i)
    EXPECT_EQ(mixed.heldout.examples[i].ids, plain.heldout.examples[i].ids);
  std::set<std::vector<int32_t>> mix_ids;
  SftDataOptions mo;
  for (const auto& e : sft_dataset_load(o.mix_data, tmpl, *tok, mo).examples) mix_ids.insert(e.ids);
  std::set<std::vector<int32_t>> drawn;
  for (size_t i = n; i < n + k; ++i) {
    EXPECT_TRUE(mix_ids.count(mixed.train.examples[i].ids)) << i;
    drawn.insert(mixed.train.examples[i].ids);
  }
  EXPECT_EQ(drawn.size(), k);  // no repeats while the file has enough rows
  TrainData again = train_data_load(o, *tok, tmpl);
  for (size_t i = n; i < n + k; ++i) EXPECT_EQ(again.train.examples[i].ids, mixed.train.examples[i].ids);
  o.seed = 7;
  TrainData other = train_data_load(o, *tok, tmpl);
  bool differs = false;
  for (size_t i = 0; i < other.train.examples.size(); ++i)
    differs = differs || i >= mixed.train.examples.size() || other.train.examples[i].ids != mixed.train.examples[i].ids;
  EXPECT_TRUE(differs);

  TrainOptions bad = options("mixbad");
  bad.mix_fraction = 0.1;  // without mix_data
  EXPECT_THROW(train_options_validate(bad), InputError);
  bad.mix_data = kl_data->string();
  bad.mix_fraction = 1.0;
  EXPECT_THROW(train_options_validate(bad), InputError);
}

}  // namespace
}  // namespace emlab
