// Pre-tokenisation: split text into pieces with PCRE2 regexes (UTF + UCP, JIT-compiled) before
// BPE runs on each piece. Internal to src/text.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace emlab::text {

// The regexes of the three byte-level BPE families.
extern const char* const kGpt2Pattern;
extern const char* const kQwen2Pattern;
extern const char* const kLlama3Pattern;

// "gpt2", "qwen2", "llama3" -> their regex; anything else is taken as a regex and returned as is.
std::string pretokenizer_pattern(const std::string& name_or_regex);

// One compiled regex. Thread-safe: matching uses per-thread match data.
class SplitRegex {
 public:
  // Throws InputError (with `context`, e.g. the file) when the pattern does not compile.
  // allow_fast: use the hand-written matcher when the pattern is one of the known three.
  SplitRegex(const std::string& pattern, const std::string& context, bool allow_fast = true);
  ~SplitRegex();
  SplitRegex(const SplitRegex&) = delete;
  SplitRegex& operator=(const SplitRegex&) = delete;

  // Appends the pieces of `text` to *pieces: every match, and every stretch between matches
  // (as Hugging Face's Split with behaviour "Isolated" does). Invalid UTF-8 never matches, so
  // its bytes become pieces of their own and no byte is lost.
  void split(std::string_view text, std::vector<std::string_view>* pieces) const;

  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*
  int fast_ = 0;          // FastSplit (0 = none)
};

// Splits text with each regex in turn (each piece of one is split again by the next).
class PreTokenizer {
 public:
  PreTokenizer() = default;
  void add(const std::string& pattern, const std::string& context);
  void split(std::string_view text, std::vector<std::string_view>* pieces) const;
  std::vector<std::string> patterns() const;
  bool empty() const { return regexes_.empty(); }

 private:
  std::vector<std::shared_ptr<SplitRegex>> regexes_;
};

}  // namespace emlab::text
