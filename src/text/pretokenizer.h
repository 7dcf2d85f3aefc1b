// Pre-tokenisation: split text into pieces with PCRE2 regexes (UTF + UCP, JIT-compiled) before
// BPE runs on each piece, and the other pre-tokenizers of tokenizer.json that emlab reads
// (ByteLevel, Metaspace, Split with every behaviour). Internal to src/text.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
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
  // Appends [start, end) of every non-empty match, left to right (the regex engine only).
  void find(std::string_view text, std::vector<std::pair<size_t, size_t>>* matches) const;

  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*
  int fast_ = 0;          // FastSplit (0 = none)
};

// What a Split pre-tokenizer does with the matches (tokenizers' SplitDelimiterBehavior).
enum class SplitBehavior { Isolated, Removed, MergedWithPrevious, MergedWithNext, Contiguous };
// When Metaspace puts its replacement in front of a piece: always, only at the start of the input,
// never.
enum class PrependScheme { Always, First, Never };

// A piece of text and whether it begins the input (Metaspace's "first" scheme looks at it).
struct PreToken {
  std::string_view text;
  bool at_start = false;
};

// tokenizer.json's pre_tokenizer: steps applied in turn, each to every piece of the one before.
// The byte-level families (Isolated regex splits only) take split(), a fast path over string
// views; anything else takes pre_tokenize().
class PreTokenizer {
 public:
  PreTokenizer() = default;
  // A Split with behaviour Isolated (matches and the text between them become pieces).
  void add(const std::string& pattern, const std::string& context);
  void add_split(const std::string& pattern, const std::string& context, SplitBehavior behavior, bool invert);
  // ByteLevel: a space before a piece that lacks one (add_prefix_space), then GPT-2's split
  // (use_regex). Mapping bytes to the byte-level alphabet is the BPE model's business.
  void add_byte_level(bool add_prefix_space, bool use_regex);
  // Metaspace: spaces become `replacement`, which is put first per `scheme`; with `split`, a piece
  // starts at each replacement.
  void add_metaspace(const std::string& replacement, PrependScheme scheme, bool split);

  // True when split() gives the pieces: Isolated splits only, after a leading ByteLevel's
  // prefix space (prefix_space()).
  bool simple() const { return simple_; }
  bool prefix_space() const { return prefix_space_; }
  // simple() only: splits text with each regex in turn (each piece of one is split again by the next).
  void split(std::string_view text, std::vector<std::string_view>* pieces) const;
  // Any steps: appends the pieces of `text` (which begins the input when at_start); text that the
  // steps change lives in *arena.
  void pre_tokenize(std::string_view text, bool at_start, std::deque<std::string>* arena,
                    std::vector<PreToken>* pieces) const;
  std::vector<std::string> patterns() const;
  bool empty() const { return steps_.empty(); }

 private:
  struct Step {
    enum class Kind { Split, ByteLevel, Metaspace } kind = Kind::Split;
    std::shared_ptr<SplitRegex> regex;  // Split; ByteLevel with use_regex
    SplitBehavior behavior = SplitBehavior::Isolated;
    bool invert = false;
    bool add_prefix_space = false;  // ByteLevel
    std::string replacement;        // Metaspace
    PrependScheme scheme = PrependScheme::Always;
    bool split = true;  // Metaspace
  };
  void add_step(Step step);

  std::vector<Step> steps_;
  std::vector<std::shared_ptr<SplitRegex>> regexes_;  // simple(): the Isolated splits in order
  bool simple_ = true, prefix_space_ = false;
};

}  // namespace emlab::text
