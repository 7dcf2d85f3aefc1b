// Subcommand registry of the emlab CLI. Each tools/emlab/<name>.cpp registers itself with
// EMLAB_COMMAND; a name with a space ("world generate") becomes a nested subcommand.
// A command's setup adds its flags to the CLI11 app and returns the action that runs it;
// the action returns the exit code. Errors are thrown; main() turns them into messages.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace emlab::cli {

using Action = std::function<int()>;
using Setup = std::function<Action(CLI::App&)>;

struct Command {
  std::string name;
  std::string description;
  Setup setup;
};

std::vector<Command>& command_registry();
bool register_command(std::string name, std::string description, Setup setup);

}  // namespace emlab::cli

#define EMLAB_CONCAT_INNER(a, b) a##b
#define EMLAB_CONCAT(a, b) EMLAB_CONCAT_INNER(a, b)
// Variadic so that commas inside the setup lambda need no extra parentheses.
#define EMLAB_COMMAND(name, description, ...)                                        \
  static const bool EMLAB_CONCAT(emlab_command_registered_, __LINE__) =              \
      ::emlab::cli::register_command(name, description, __VA_ARGS__)
