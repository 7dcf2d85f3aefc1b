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

std::string read_text(const std::filesystem::path& path);
void write_text(const std::filesystem::path& path, const std::string& text);

}  // namespace emlab::test

// Skips the current test unless ../shared (or $EMLAB_SHARED) exists.
#define EMLAB_REQUIRE_SHARED()                                                               \
  do {                                                                                       \
    if (::emlab::test::shared_dir().empty())                                                 \
      GTEST_SKIP() << "reference data not found: set EMLAB_SHARED to the shared/ folder";    \
  } while (0)
