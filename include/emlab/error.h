// Errors of the library. Every failure the user can cause (a missing file, a bad tensor, a wrong
// option) is thrown as emlab::Error with enough context to act on; main() turns it into a one-line
// message and a non-zero exit code.
#pragma once

#include <stdexcept>
#include <string>

namespace emlab {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Bad user input: files, data, options. Exit code 2 in the CLI.
class InputError : public Error {
 public:
  explicit InputError(const std::string& message) : Error(message) {}
};

// A remote service (judge API) failed in a way retries could not fix. Exit code 3 in the CLI.
class ServiceError : public Error {
 public:
  explicit ServiceError(const std::string& message) : Error(message) {}
};

}  // namespace emlab
