// Helpers shared by the test suites.
#pragma once

#include <filesystem>
#include <string>

namespace emlab::test {

// The read-only reference data folder (../shared, or $EMLAB_SHARED). Empty when absent, so that
// tests can GTEST_SKIP() with a clear message in a user's clone.
std::filesystem::path shared_dir();

// A fresh, empty folder under the system temp dir, removed at process exit.
std::filesystem::path temp_dir(const std::string& tag);

// The built emlab CLI ($EMLAB_BINARY), for tests that run it as a child process.
std::string emlab_binary();

// The project source folder ($EMLAB_SOURCE_DIR).
std::filesystem::path source_dir();

// Runs a shell command, returns its exit status and fills *output with stdout+stderr.
int run_command(const std::string& command, std::string* output);

// The python of the Hugging Face reference venv (scripts/pyref.sh): $EMLAB_PYTHON, else the one
// scripts/test.sh recorded in the build folder; empty when neither exists.
std::string reference_python();
// Runs tests/<script> (relative to the source folder) with the reference python and `args`; returns
// its exit status and fills *output with stdout+stderr.
int run_reference_script(const std::string& script, const std::string& args, std::string* output);

std::string read_text(const std::filesystem::path& path);
void write_text(const std::filesystem::path& path, const std::string& text);

}  // namespace emlab::test

// Skips the current test unless ../shared (or $EMLAB_SHARED) exists.
#define EMLAB_REQUIRE_SHARED()                                                               \
  do {                                                                                       \
    if (::emlab::test::shared_dir().empty())                                                 \
      GTEST_SKIP() << "reference data not found: set EMLAB_SHARED to the shared/ folder";    \
  } while (0)

// Skips the current test unless the reference venv (transformers, peft, tokenizers) exists.
#define EMLAB_REQUIRE_PYREF()                                                                      \
  do {                                                                                             \
    if (::emlab::test::reference_python().empty())                                                 \
      GTEST_SKIP() << "Hugging Face reference libraries not found: run scripts/test.sh (it creates " \
                      "the venv) or set EMLAB_PYTHON to a python with transformers, peft, tokenizers"; \
  } while (0)

// Skips the current test unless libtorch has CUDA and sees a device (the *_gpu_test.cpp suites,
// which include torch themselves).
#define EMLAB_REQUIRE_CUDA()                                                                       \
  do {                                                                                             \
    if (!torch::cuda::is_available())                                                              \
      GTEST_SKIP() << "no CUDA device: this test compares emlab on a GPU with the CPU (a build "     \
                      "against a CUDA libtorch on a machine with a GPU runs it: bench/gpu_bench.sh)"; \
  } while (0)
