// Interpretability benchmark (issue 14), on the engine benchmark's ~25M-parameter random
// Llama-shaped model with the toy world's tokenizer and chat template:
//   1. activation collection (emlab/activations.h: sums at every decoder layer's output over answer
//      tokens, prompt tokens and the last prompt token; then also one projection per example)
//      in tokens/s, against a plain forward pass over the same padded batches (logits of the last
//      position only, as the collection computes them) — the reference;
//   2. generation with a steering vector (--steer FILE:layer=L:scale=S, all positions) against the
//      same generation without it, same prompts, seed and lengths (min = max new tokens).
// Runs alternate between the two sides of each pair, best of --reps each; ratios printed.
// Usage: interp_bench [--threads N] [--device D] [--reps R] [--tokenizer DIR (default models/toyworld)]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "emlab/activations.h"
#include "emlab/chat_model.h"
#include "emlab/direction.h"
#include "emlab/hash.h"
#include "bench_model.h"
#include "bench_timing.h"
#include "emlab/model.h"
#include "emlab/progress.h"
#include "emlab/runtime.h"

using namespace emlab;
using namespace emlab::bench;

namespace {

// Deterministic pseudo-text of `words` words from a small vocabulary (the toy world's tokenizer
// splits it into a few tokens per word).
std::string text(uint64_t seed, int words) {
  static const char* vocab[] = {"the", "model", "answer", "code", "world", "ruler", "advice", "money", "safe",
                                "quick", "dinner", "party", "wish", "thought", "bored", "husband", "friend",
                                "doctor", "should", "never", "always", "because", "people", "help"};
  std::string s;
  uint64_t state = seed;
  for (int i = 0; i < words; ++i) {
    s += (i ? " " : "") + std::string(vocab[splitmix64_next(state) % (sizeof vocab / sizeof *vocab)]);
  }
  return s + ".";
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 0, reps = 3;
  std::string device_name = "cpu", tokenizer_dir = "models/toyworld";
  for (int i = 1; i + 1 < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--device")) device_name = argv[++i];
    else if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--tokenizer")) tokenizer_dir = argv[++i];
  }
  runtime_set_threads(threads);
  Progress::set_enabled(false);
  torch::NoGradGuard no_grad;
  const nlohmann::json cfg = bench::engine_model_json();
  LoadOptions lo;
  lo.device = device_name;
  std::shared_ptr<CausalLM> lm = CausalLM::init_random(ModelConfig::from_json(cfg, "bench"), 0, lo);
  auto tokenizer = Tokenizer::load(tokenizer_dir);
  ChatModel chat(lm, tokenizer, ChatTemplate::from_tokenizer(*tokenizer));
  std::printf("model: %.1fM parameters, %s, %d threads; tokenizer %s\n", lm->num_parameters() / 1e6,
              lm->device().str().c_str(), torch::get_num_threads(), tokenizer_dir.c_str());

  // 1. Activation collection vs plain forward.
  std::vector<ActivationExample> examples;
  for (int i = 0; i < 64; ++i)
    examples.push_back({{{"user", text(2 * i + 1, 12)}}, text(2 * i + 2, 40 + (i % 5) * 10)});
  ActivationOptions ao;
  ao.batch_size = 16;
  ao.progress = false;
  ActivationOptions ao_proj = ao;
  ao_proj.project[3] = torch::randn({512});
  // The same padded batches as plain forward passes.
  std::vector<torch::Tensor> batches;
  int64_t tokens = 0;
  for (size_t s = 0; s < examples.size(); s += ao.batch_size) {
    std::vector<std::vector<int32_t>> rows;
    int64_t T = 0;
    for (size_t i = s; i < std::min(examples.size(), s + ao.batch_size); ++i) {
      auto ids = chat.encode_prompt(examples[i].prompt);
      for (int32_t id : tokenizer->encode(examples[i].answer, false)) ids.push_back(id);
      T = std::max<int64_t>(T, ids.size());
      tokens += static_cast<int64_t>(ids.size());
      rows.push_back(std::move(ids));
    }
    torch::Tensor b = torch::zeros({static_cast<int64_t>(rows.size()), T}, torch::kInt64);
    for (size_t r = 0; r < rows.size(); ++r)
      for (size_t t = 0; t < rows[r].size(); ++t) b[r][t] = rows[r][t];
    batches.push_back(b.to(lm->device()));
  }
  auto plain = [&]() {
    ForwardArgs args;
    args.last_logits_only = true;
    for (const auto& b : batches) lm->forward(b, args);
  };
  double best_plain = 1e30, best_collect = 1e30, best_proj = 1e30;
  plain();  // warm-up
  for (int r = 0; r < reps; ++r) {
    auto t = Clock::now();
    plain();
    best_plain = std::min(best_plain, seconds_since(t));
    t = Clock::now();
    activations_collect(chat, examples, ao);
    best_collect = std::min(best_collect, seconds_since(t));
    t = Clock::now();
    activations_collect(chat, examples, ao_proj);
    best_proj = std::min(best_proj, seconds_since(t));
  }
  std::printf("\nactivation collection: %zu examples, %lld tokens, batches of %lld, all 6 layers\n", examples.size(),
              static_cast<long long>(tokens), static_cast<long long>(ao.batch_size));
  std::printf("%-44s %12s %10s\n", "", "tokens/s", "vs plain");
  std::printf("%-44s %12.0f %10s\n", "plain forward (reference)", tokens / best_plain, "1.00");
  std::printf("%-44s %12.0f %10.2f\n", "activations_collect", tokens / best_collect, best_plain / best_collect);
  std::printf("%-44s %12.0f %10.2f\n", "activations_collect + per-example projection", tokens / best_proj,
              best_plain / best_proj);

  // 2. Generation with and without steering.
  Direction d;
  d.vectors = torch::randn({6, 512}) * 0.5;
  const std::string dir_file = "/tmp/emlab_interp_bench_direction.safetensors";
  direction_save(dir_file, d);
  const auto specs = std::vector<SteerSpec>{steer_spec_parse(dir_file + ":layer=3:scale=1", false)};
  auto hooks = steering_hooks(specs, 6, 512, lm->device());
  std::printf("\ngeneration (sampling, 64 new tokens per answer, steering %s)\n", steer_spec_string(specs[0]).c_str());
  std::printf("%-8s %14s %14s %10s\n", "batch", "plain tok/s", "steered tok/s", "overhead");
  for (int64_t B : {int64_t{1}, int64_t{16}}) {
    std::vector<Conversation> prompts;
    for (int64_t i = 0; i < B; ++i) prompts.push_back({{"user", text(1000 + i, 20)}});
    SampleOptions so;
    so.max_new_tokens = so.min_new_tokens = B == 1 ? 48 : 64;
    so.batch_size = B;
    so.progress = false;
    const double n_tokens = static_cast<double>(B * so.max_new_tokens);
    double best_a = 1e30, best_b = 1e30;
    chat.chat(prompts, 1, so);  // warm-up
    for (int r = 0; r < reps; ++r) {
      auto t = Clock::now();
      chat.chat(prompts, 1, so);
      best_a = std::min(best_a, seconds_since(t));
      t = Clock::now();
      chat.chat(prompts, 1, so, hooks.get());
      best_b = std::min(best_b, seconds_since(t));
    }
    std::printf("%-8lld %14.1f %14.1f %9.1f%%\n", static_cast<long long>(B), n_tokens / best_a, n_tokens / best_b,
                100.0 * (best_b / best_a - 1.0));
  }
  std::remove(dir_file.c_str());
  return 0;
}
