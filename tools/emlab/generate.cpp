// emlab generate: sample answers to one or more prompts.
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli_options.h"
#include "command.h"
#include "emlab/error.h"

namespace {

struct Options {
  emlab::cli::ModelFlags model;
  emlab::cli::SteerFlags steer;
  emlab::SampleOptions sample;
  std::string system;
  std::vector<std::string> prompts;
  int64_t n = 1;
  std::string format = "text";
  bool raw = false;
};

EMLAB_COMMAND("generate", "Sample answers to prompts (chat template applied unless --raw)", [](CLI::App& app) {
  auto o = std::make_shared<Options>();
  emlab::cli::add_model_flags(app, o->model);
  emlab::cli::add_sample_flags(app, o->sample);
  emlab::cli::add_steer_flags(app, o->steer);
  app.add_option("--system", o->system, "system prompt");
  app.add_option("--prompt", o->prompts, "user message (repeatable)")->required();
  app.add_option("--n", o->n, "answers per prompt")->capture_default_str();
  app.add_option("--format", o->format, "text or jsonl")->check(CLI::IsMember({"text", "jsonl"}))->capture_default_str();
  app.add_flag("--raw", o->raw, "complete the prompt text as is, without the chat template");
  return [o]() {
    auto cm = emlab::cli::load_chat_model(o->model);
    auto hooks = emlab::cli::steering_for(*cm, o->steer);
    std::vector<std::vector<emlab::Completion>> results;
    if (o->raw) {
      std::vector<std::vector<int32_t>> ids;
      for (const auto& p : o->prompts) ids.push_back(cm->tokenizer().encode(p));
      emlab::SampleOptions so = o->sample;
      for (int32_t id : cm->stop_ids()) so.eos_ids.push_back(id);
      results = emlab::generate(cm->model(), cm->tokenizer(), ids, o->n, so, hooks.get());
    } else {
      std::vector<emlab::Conversation> convs;
      for (const auto& p : o->prompts) {
        emlab::Conversation c;
        if (!o->system.empty()) c.push_back({"system", o->system});
        c.push_back({"user", p});
        convs.push_back(c);
      }
      results = cm->chat(convs, o->n, o->sample, hooks.get());
    }
    for (size_t p = 0; p < results.size(); ++p) {
      for (size_t s = 0; s < results[p].size(); ++s) {
        const auto& c = results[p][s];
        if (o->format == "jsonl") {
          nlohmann::json row = {{"prompt_index", p}, {"prompt", o->prompts[p]}, {"sample_index", s},
                                {"text", c.text}, {"finish_reason", c.finish_reason}, {"tokens", c.tokens}};
          std::cout << row.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
        } else {
          if (results.size() > 1 || results[p].size() > 1) std::cout << "--- prompt " << p << ", sample " << s << "\n";
          std::cout << c.text << "\n";
        }
      }
    }
    return 0;
  };
});

}  // namespace
