#include "test_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace fs = std::filesystem;

namespace emlab::test {

extern const char* const kSourceDir;  // test_paths.cpp (generated)
extern const char* const kSharedDir;
extern const char* const kBinary;

namespace {
std::vector<fs::path>& temp_dirs() {
  static std::vector<fs::path> dirs;
  return dirs;
}
void remove_temp_dirs() {
  if (std::getenv("EMLAB_KEEP_TEST_FILES")) return;
  for (const auto& d : temp_dirs()) {
    std::error_code ec;
    fs::remove_all(d, ec);
  }
}
}  // namespace

fs::path shared_dir() {
  const char* env = std::getenv("EMLAB_SHARED");
  fs::path p = env && *env ? fs::path(env) : fs::path(kSharedDir);
  if (fs::is_directory(p / "data")) return fs::canonical(p);
  return {};
}

fs::path source_dir() {
  const char* env = std::getenv("EMLAB_SOURCE_DIR");
  return env && *env ? fs::path(env) : fs::path(kSourceDir);
}

std::string emlab_binary() {
  const char* env = std::getenv("EMLAB_BINARY");
  if (env && *env) return env;
  if (!fs::exists(kBinary)) throw std::runtime_error(std::string(kBinary) + " is not built (build everything before the tests)");
  return kBinary;
}

fs::path temp_dir(const std::string& tag) {
  static std::once_flag once;
  // Construct the list before registering the cleanup, so it is destroyed after the cleanup ran.
  std::call_once(once, [] {
    temp_dirs();
    std::atexit(remove_temp_dirs);
  });
  std::string templ = (fs::temp_directory_path() / ("emlab-" + tag + "-XXXXXX")).string();
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed for " + templ);
  fs::path p(buf.data());
  temp_dirs().push_back(p);
  return p;
}

int run_command(const std::string& command, std::string* output) {
  std::string cmd = command + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) throw std::runtime_error("popen failed: " + command);
  std::array<char, 4096> buf;
  std::string out;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  int status = pclose(pipe);
  if (output) *output = out;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string reference_python() {
  const char* env = std::getenv("EMLAB_PYTHON");
  if (env && *env) return fs::exists(env) ? env : "";
  const fs::path recorded = fs::path(kBinary).parent_path() / "pyref_python";
  if (!fs::exists(recorded)) return "";
  std::string py = read_text(recorded);
  while (!py.empty() && (py.back() == '\n' || py.back() == ' ')) py.pop_back();
  return fs::exists(py) ? py : "";
}

int run_reference_script(const std::string& script, const std::string& args, std::string* output) {
  const std::string py = reference_python();
  if (py.empty()) throw std::runtime_error("no reference python (EMLAB_PYTHON)");
  // One thread: ctest runs one test per core.
  return run_command("OMP_NUM_THREADS=1 '" + py + "' '" + (source_dir() / "tests" / script).string() + "' " + args,
                     output);
}

std::string read_text(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path.string());
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_text(const fs::path& path, const std::string& text) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  std::ofstream f(path, std::ios::binary);
  f << text;
  if (!f) throw std::runtime_error("cannot write " + path.string());
}

}  // namespace emlab::test
