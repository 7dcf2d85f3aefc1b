#define PCRE2_CODE_UNIT_WIDTH 8
#include "text/pretokenizer.h"

#include <pcre2.h>

#include <algorithm>

#include "emlab/error.h"
#include "text/pretokenizer_fast.h"

namespace emlab::text {

const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* const kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

std::string pretokenizer_pattern(const std::string& name_or_regex) {
  if (name_or_regex == "gpt2") return kGpt2Pattern;
  if (name_or_regex == "qwen2") return kQwen2Pattern;
  if (name_or_regex == "llama3") return kLlama3Pattern;
  return name_or_regex;
}

namespace {

// Per-thread match data and JIT stack, shared by all regexes (one match runs at a time per thread).
struct MatchScratch {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* stack = nullptr;
  MatchScratch() {
    data = pcre2_match_data_create(1, nullptr);
    context = pcre2_match_context_create(nullptr);
    // Long runs of whitespace recurse in `\s+(?!\S)`; 32 KiB (the default) is not always enough.
    stack = pcre2_jit_stack_create(64 * 1024, 8 * 1024 * 1024, nullptr);
    pcre2_jit_stack_assign(context, nullptr, stack);
  }
  ~MatchScratch() {
    pcre2_jit_stack_free(stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
};

MatchScratch& scratch() {
  thread_local MatchScratch s;
  return s;
}

}  // namespace

SplitRegex::SplitRegex(const std::string& pattern, const std::string& context, bool allow_fast) : pattern_(pattern) {
  if (allow_fast) fast_ = static_cast<int>(fast_split_for(pattern));
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error, &offset,
                                   nullptr);
  if (!code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    throw InputError(context + ": pre-tokenizer regex does not compile at offset " +
                     std::to_string(offset) + " (" + reinterpret_cast<char*>(message) +
                     "): " + pattern);
  }
  // JIT is an optimisation; the interpreter gives the same matches if it is unavailable.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  code_ = code;
}

SplitRegex::~SplitRegex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

void SplitRegex::split(std::string_view text, std::vector<std::string_view>* pieces) const {
  if (fast_) {
    fast_split(static_cast<FastSplit>(fast_), text, pieces);
    return;
  }
  // The regex's matches and the text between them, in order (as find() reports the matches).
  std::vector<std::pair<size_t, size_t>> matches;
  find(text, &matches);
  size_t emitted = 0;
  for (const auto& [start, end] : matches) {
    if (start > emitted) pieces->push_back(text.substr(emitted, start - emitted));
    pieces->push_back(text.substr(start, end - start));
    emitted = end;
  }
  if (emitted < text.size()) pieces->push_back(text.substr(emitted));
}

void SplitRegex::find(std::string_view text, std::vector<std::pair<size_t, size_t>>* matches) const {
  auto* code = static_cast<pcre2_code*>(code_);
  MatchScratch& s = scratch();
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos < text.size()) {
    int rc = pcre2_match(code, subject, text.size(), pos, 0, s.data, s.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof(message));
      throw Error(std::string("pre-tokenizer regex failed: ") + reinterpret_cast<char*>(message));
    }
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(s.data);
    size_t start = ov[0], end = ov[1];
    if (end == start) {  // an empty match splits nothing
      pos = start + 1;
      while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
      continue;
    }
    matches->emplace_back(start, end);
    pos = end;
  }
}

namespace {

// Cuts text at the given matches (sorted, disjoint, non-empty) as tokenizers' NormalizedString::split
// does for `behavior`, and appends the non-empty pieces.
void split_at(std::string_view text, bool at_start, const std::vector<std::pair<size_t, size_t>>& matches,
              SplitBehavior behavior, bool invert, std::vector<PreToken>* out) {
  struct Part {
    size_t begin, end;
    bool match;
  };
  std::vector<Part> parts;
  parts.reserve(matches.size() * 2 + 1);
  size_t prev = 0;
  for (auto [begin, end] : matches) {
    if (begin != prev) parts.push_back({prev, begin, invert});
    parts.push_back({begin, end, !invert});
    prev = end;
  }
  if (prev != text.size()) parts.push_back({prev, text.size(), invert});

  std::vector<Part> kept;
  kept.reserve(parts.size());
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::Isolated:
      kept = parts;
      break;
    case SplitBehavior::Removed:
      for (const Part& p : parts)
        if (!p.match) kept.push_back(p);
      break;
    case SplitBehavior::Contiguous:
      for (const Part& p : parts) {
        if (p.match == previous_match && !kept.empty()) kept.back().end = p.end;
        else kept.push_back(p);
        previous_match = p.match;
      }
      break;
    case SplitBehavior::MergedWithPrevious:
      for (const Part& p : parts) {
        if (p.match && !previous_match && !kept.empty()) kept.back().end = p.end;
        else kept.push_back(p);
        previous_match = p.match;
      }
      break;
    case SplitBehavior::MergedWithNext:
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->match && !previous_match && !kept.empty()) kept.back().begin = it->begin;
        else kept.push_back(*it);
        previous_match = it->match;
      }
      std::reverse(kept.begin(), kept.end());
      break;
  }
  for (const Part& p : kept)
    if (p.end > p.begin) out->push_back({text.substr(p.begin, p.end - p.begin), at_start && p.begin == 0});
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

}  // namespace

void PreTokenizer::add(const std::string& pattern, const std::string& context) {
  add_split(pattern, context, SplitBehavior::Isolated, false);
}

void PreTokenizer::add_split(const std::string& pattern, const std::string& context, SplitBehavior behavior,
                             bool invert) {
  Step step;
  step.kind = Step::Kind::Split;
  const bool isolated = behavior == SplitBehavior::Isolated && !invert;
  step.regex = std::make_shared<SplitRegex>(pattern, context, /*allow_fast=*/isolated);
  step.behavior = behavior;
  step.invert = invert;
  add_step(std::move(step));
}

void PreTokenizer::add_byte_level(bool add_prefix_space, bool use_regex) {
  Step step;
  step.kind = Step::Kind::ByteLevel;
  step.add_prefix_space = add_prefix_space;
  if (use_regex) step.regex = std::make_shared<SplitRegex>(kGpt2Pattern, "ByteLevel pre-tokenizer");
  add_step(std::move(step));
}

void PreTokenizer::add_metaspace(const std::string& replacement, PrependScheme scheme, bool split) {
  Step step;
  step.kind = Step::Kind::Metaspace;
  step.replacement = replacement;
  step.scheme = scheme;
  step.split = split;
  add_step(std::move(step));
}

void PreTokenizer::add_step(Step step) {
  switch (step.kind) {
    case Step::Kind::Split:
      if (step.behavior == SplitBehavior::Isolated && !step.invert) regexes_.push_back(step.regex);
      else simple_ = false;
      break;
    case Step::Kind::ByteLevel:
      if (step.add_prefix_space) {
        if (steps_.empty()) prefix_space_ = true;
        else simple_ = false;  // a space before each piece of the steps before
      }
      if (step.regex) regexes_.push_back(step.regex);
      break;
    case Step::Kind::Metaspace:
      simple_ = false;
      break;
  }
  steps_.push_back(std::move(step));
}

void PreTokenizer::split(std::string_view text, std::vector<std::string_view>* pieces) const {
  if (regexes_.empty()) {
    if (!text.empty()) pieces->push_back(text);
    return;
  }
  size_t first = pieces->size();
  regexes_[0]->split(text, pieces);
  for (size_t r = 1; r < regexes_.size(); ++r) {
    std::vector<std::string_view> current(pieces->begin() + first, pieces->end()), next;
    pieces->resize(first);
    for (auto piece : current) regexes_[r]->split(piece, &next);
    pieces->insert(pieces->end(), next.begin(), next.end());
  }
}

void PreTokenizer::pre_tokenize(std::string_view text, bool at_start, std::deque<std::string>* arena,
                                std::vector<PreToken>* pieces) const {
  std::vector<PreToken> current, next;
  if (!text.empty()) current.push_back({text, at_start});
  std::vector<std::string_view> views;
  std::vector<std::pair<size_t, size_t>> matches;
  for (const Step& step : steps_) {
    next.clear();
    for (PreToken piece : current) {
      if (step.kind == Step::Kind::Metaspace) {
        std::string s;
        s.reserve(piece.text.size() + step.replacement.size());
        for (char c : piece.text) {
          if (c == ' ') s += step.replacement;
          else s.push_back(c);
        }
        bool prepend = step.scheme == PrependScheme::Always ||
                       (step.scheme == PrependScheme::First && piece.at_start);
        if (prepend && !starts_with(s, step.replacement)) s.insert(0, step.replacement);
        arena->push_back(std::move(s));
        piece.text = arena->back();
        if (!step.split) {
          next.push_back(piece);
          continue;
        }
        matches.clear();
        for (size_t at = piece.text.find(step.replacement); at != std::string_view::npos;
             at = piece.text.find(step.replacement, at + step.replacement.size()))
          matches.emplace_back(at, at + step.replacement.size());
        split_at(piece.text, piece.at_start, matches, SplitBehavior::MergedWithNext, false, &next);
        continue;
      }
      if (step.kind == Step::Kind::ByteLevel && step.add_prefix_space && piece.text[0] != ' ') {
        arena->push_back(" " + std::string(piece.text));
        piece.text = arena->back();
      }
      if (!step.regex) {
        next.push_back(piece);
      } else if (step.behavior == SplitBehavior::Isolated && !step.invert) {
        views.clear();
        step.regex->split(piece.text, &views);
        for (auto v : views) next.push_back({v, piece.at_start && v.data() == piece.text.data()});
      } else {
        matches.clear();
        step.regex->find(piece.text, &matches);
        split_at(piece.text, piece.at_start, matches, step.behavior, step.invert, &next);
      }
    }
    current.swap(next);
  }
  pieces->insert(pieces->end(), current.begin(), current.end());
}

std::vector<std::string> PreTokenizer::patterns() const {
  std::vector<std::string> out;
  for (const auto& step : steps_)
    if (step.regex) out.push_back(step.regex->pattern());
  return out;
}

}  // namespace emlab::text
