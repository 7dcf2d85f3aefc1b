// Flag groups shared by several subcommands (model loading, sampling), so every command spells
// them the same way.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "emlab/chat_model.h"
#include "emlab/direction.h"
#include "emlab/generator.h"

namespace emlab::cli {

struct ModelFlags {
  std::string model;                  // --model DIR
  ChatModelOptions options;           // --device --dtype --tokenizer --chat-template --adapter
};

// --model (required unless `required` is false), --device, --dtype, --tokenizer, --chat-template, --adapter.
void add_model_flags(CLI::App& app, ModelFlags& flags, bool required = true);
std::shared_ptr<ChatModel> load_chat_model(const ModelFlags& flags);

// --max-tokens --min-tokens --temperature --top-p --top-k --seed --batch-size --stop
void add_sample_flags(CLI::App& app, SampleOptions& options);

struct SteerFlags {
  std::vector<std::string> steer;     // --steer FILE[:layer=L][:scale=S][:positions=...] (repeatable)
  std::vector<std::string> ablate;    // --ablate FILE[:layer=L|all][:from=K] (repeatable)
};
// --steer, --ablate (emlab/direction.h has the spec syntax).
void add_steer_flags(CLI::App& app, SteerFlags& flags);
// The parsed specs, steering ones first.
std::vector<SteerSpec> steer_specs(const SteerFlags& flags);
// Hooks applying the specs to the model (null when there are none).
std::shared_ptr<ResidualHooks> steering_for(const ChatModel& model, const SteerFlags& flags);

}  // namespace emlab::cli
