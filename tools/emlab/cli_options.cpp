#include "cli_options.h"

namespace emlab::cli {

void add_model_flags(CLI::App& app, ModelFlags& flags, bool required) {
  auto* m = app.add_option("--model", flags.model, "Hugging Face model directory");
  if (required) m->required();
  app.add_option("--device", flags.options.load.device, "cpu, cuda or cuda:N")->capture_default_str();
  app.add_option("--dtype", flags.options.load.dtype, "auto (fp32 on CPU, bf16 on CUDA), float32, bfloat16, float16")
      ->capture_default_str();
  app.add_option("--tokenizer", flags.options.tokenizer_dir, "tokenizer directory (default: the model's)");
  app.add_option("--chat-template", flags.options.chat_template,
                 "chatml, qwen, llama3, llama3.1 or mistral (default: recognised from tokenizer_config.json)");
  app.add_option("--adapter", flags.options.adapter, "PEFT LoRA adapter directory");
}

std::shared_ptr<ChatModel> load_chat_model(const ModelFlags& flags) {
  return ChatModel::load(flags.model, flags.options);
}

void add_sample_flags(CLI::App& app, SampleOptions& o) {
  app.add_option("--max-tokens", o.max_new_tokens, "maximum new tokens per answer")->capture_default_str();
  app.add_option("--min-tokens", o.min_new_tokens, "minimum new tokens before EOS may end an answer")
      ->capture_default_str();
  app.add_option("--temperature", o.temperature, "sampling temperature (0 = greedy)")->capture_default_str();
  app.add_option("--top-p", o.top_p, "nucleus sampling mass (1 = off)")->capture_default_str();
  app.add_option("--top-k", o.top_k, "sample among the top K tokens (0 = all)")->capture_default_str();
  app.add_option("--seed", o.seed, "random seed")->capture_default_str();
  app.add_option("--batch-size", o.batch_size, "sequences decoded at once")->capture_default_str();
  app.add_option("--stop", o.stop, "stop string (repeatable)");
}

void add_steer_flags(CLI::App& app, SteerFlags& f) {
  app.add_option("--steer", f.steer,
                 "add a direction: FILE[:layer=L][:scale=S][:positions=all|prompt|response], or "
                 "random:seed=N:like=FILE[...] (repeatable)");
  app.add_option("--ablate", f.ablate,
                 "project a direction out: FILE[:layer=L|all][:from=K], or random:seed=N:like=FILE[...] (repeatable)");
}

std::vector<SteerSpec> steer_specs(const SteerFlags& f) {
  std::vector<SteerSpec> specs;
  for (const auto& s : f.steer) specs.push_back(steer_spec_parse(s, /*ablate=*/false));
  for (const auto& s : f.ablate) specs.push_back(steer_spec_parse(s, /*ablate=*/true));
  return specs;
}

std::shared_ptr<ResidualHooks> steering_for(const ChatModel& model, const SteerFlags& f) {
  const auto specs = steer_specs(f);
  if (specs.empty()) return nullptr;
  return steering_hooks(specs, model.model().config().num_hidden_layers, model.model().config().hidden_size,
                        model.model().device());
}

}  // namespace emlab::cli
