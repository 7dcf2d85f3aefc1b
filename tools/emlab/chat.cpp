// emlab chat: interactive multi-turn conversation on stdin/stdout.
#include <iostream>

#include "cli_options.h"
#include "command.h"

namespace {

struct Options {
  emlab::cli::ModelFlags model;
  emlab::cli::SteerFlags steer;
  emlab::SampleOptions sample;
  std::string system;
};

EMLAB_COMMAND("chat", "Interactive multi-turn chat (/reset clears the history, /exit quits)", [](CLI::App& app) {
  auto o = std::make_shared<Options>();
  emlab::cli::add_model_flags(app, o->model);
  emlab::cli::add_sample_flags(app, o->sample);
  emlab::cli::add_steer_flags(app, o->steer);
  app.add_option("--system", o->system, "system prompt");
  return [o]() {
    auto cm = emlab::cli::load_chat_model(o->model);
    auto hooks = emlab::cli::steering_for(*cm, o->steer);
    emlab::SampleOptions so = o->sample;
    so.progress = false;
    emlab::Conversation history;
    auto reset = [&] {
      history.clear();
      if (!o->system.empty()) history.push_back({"system", o->system});
    };
    reset();
    std::string line;
    uint64_t turn = 0;
    while (true) {
      std::cout << "> " << std::flush;
      if (!std::getline(std::cin, line) || line == "/exit") break;
      if (line == "/reset") {
        reset();
        continue;
      }
      if (line.empty()) continue;
      history.push_back({"user", line});
      so.seed = o->sample.seed + turn++;
      // The answer is printed as it is generated.
      auto answer = cm->chat({history}, 1, so, hooks.get(), [](const emlab::TokenEvent& e) {
        std::cout << e.text << std::flush;
        return true;
      })[0][0];
      std::cout << "\n";
      history.push_back({"assistant", answer.text});
    }
    return 0;
  };
});

}  // namespace
