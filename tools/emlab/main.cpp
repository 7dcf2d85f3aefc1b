// emlab: command-line entry point. Parses the subcommand, runs it, and maps exceptions to
// one-line messages and exit codes (2 bad input, 3 remote service, 1 anything else).
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <sstream>

#ifdef EMLAB_TCMALLOC
#include <gperftools/malloc_extension.h>
#endif

#include "command.h"
#include "emlab/judges.h"
#include "emlab/error.h"
#include "emlab/progress.h"
#include "emlab/runtime.h"

namespace emlab::cli {

std::vector<Command>& command_registry() {
  static std::vector<Command> registry;
  return registry;
}

bool register_command(std::string name, std::string description, Setup setup) {
  command_registry().push_back({std::move(name), std::move(description), std::move(setup)});
  return true;
}

}  // namespace emlab::cli

namespace {

// First line of a c10::Error (the rest is a C++ backtrace, useless to a user).
std::string first_line(const std::string& s) {
  auto pos = s.find('\n');
  return pos == std::string::npos ? s : s.substr(0, pos);
}

// The CPU's bf16 note (emlab::cpu_bf16_note) for a command run with --dtype bf16 on the CPU.
std::string bf16_note(const CLI::App& sub) {
  const CLI::Option* dtype = sub.get_option_no_throw("--dtype");
  if (!dtype || dtype->count() == 0) return "";
  const CLI::Option* device_option = sub.get_option_no_throw("--device");
  const torch::Device device =
      emlab::device_from_name(device_option && device_option->count() ? device_option->as<std::string>() : "cpu");
  return emlab::cpu_bf16_note(emlab::dtype_from_option(dtype->as<std::string>(), device), device);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace emlab;
#ifdef EMLAB_TCMALLOC
  // Keep freed pages: a training step frees and re-allocates the same large tensors, and pages
  // handed back to the kernel fault in again (bench/malloc_bench.sh; $TCMALLOC_RELEASE_RATE wins).
  if (!std::getenv("TCMALLOC_RELEASE_RATE")) MallocExtension::instance()->SetMemoryReleaseRate(0);
#endif
  CLI::App app{"emlab: a laboratory for emergent-misalignment research on language models"};
  app.require_subcommand(1);
  int threads = 0;
  bool quiet = false;
  app.add_option("--threads", threads, "CPU threads for tensor operations (0 = $EMLAB_THREADS, else all cores)");
  app.add_flag("--quiet", quiet, "No progress output");

  // Build the (possibly nested) subcommands and remember each one's action.
  std::map<CLI::App*, cli::Action> actions;
  std::map<std::string, CLI::App*> groups;
  auto& registry = cli::command_registry();
  std::sort(registry.begin(), registry.end(),
            [](const cli::Command& a, const cli::Command& b) { return a.name < b.name; });
  for (auto& command : registry) {
    CLI::App* parent = &app;
    std::istringstream words(command.name);
    std::vector<std::string> parts;
    for (std::string w; words >> w;) parts.push_back(w);
    // A command may also be the group of others ("direction" and "direction compare"): the
    // names sort so that it is added first, and then serves as their parent.
    std::string path;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      path += parts[i] + " ";
      auto it = groups.find(path);
      if (it == groups.end()) {
        CLI::App* group = parent->add_subcommand(parts[i], parts[i] + " commands");
        group->require_subcommand(1);
        it = groups.emplace(path, group).first;
      }
      parent = it->second;
    }
    CLI::App* sub = parent->add_subcommand(parts.back(), command.description);
    actions[sub] = command.setup(*sub);
    groups.emplace(command.name + " ", sub);
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (quiet) Progress::set_enabled(false);

  try {
    // $EMLAB_THREADS sets the default: the test suite runs CLI children in parallel with one each,
    // since two OpenMP threads per process on two busy cores run several times slower.
    if (threads <= 0)
      if (const char* env = std::getenv("EMLAB_THREADS")) threads = std::atoi(env);
    runtime_set_threads(threads);
    judges_register_builtin();  // commands that know their device and dtype register again
    // The deepest parsed command runs (a group that is also a command is parsed with its subcommand).
    for (auto& [sub, action] : actions)
      if (sub->parsed() && sub->get_subcommands().empty()) {
        if (std::string note = bf16_note(*sub); !note.empty() && !quiet) std::cerr << "emlab: note: " << note << "\n";
        return action();
      }
    std::cerr << "emlab: no command given (see emlab --help)\n";
    return 2;
  } catch (const InputError& e) {
    std::cerr << "emlab: error: " << e.what() << "\n";
    return 2;
  } catch (const ServiceError& e) {
    std::cerr << "emlab: error: " << e.what() << "\n";
    return 3;
  } catch (const c10::Error& e) {
    std::cerr << "emlab: error: " << first_line(e.what_without_backtrace()) << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "emlab: error: " << e.what() << "\n";
    return 1;
  }
}
