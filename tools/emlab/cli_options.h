// Flag groups shared by several subcommands (model loading, sampling), so every command spells
// them the same way.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "emlab/chat_model.h"
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

}  // namespace emlab::cli
