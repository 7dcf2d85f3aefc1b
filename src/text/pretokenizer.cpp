#define PCRE2_CODE_UNIT_WIDTH 8
#include "text/pretokenizer.h"

#include <pcre2.h>

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
  auto* code = static_cast<pcre2_code*>(code_);
  MatchScratch& s = scratch();
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0, emitted = 0;
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
    if (end == start) {
      // An empty match splits nothing; continue after the next character.
      pos = start + 1;
      while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
      continue;
    }
    if (start > emitted) pieces->push_back(text.substr(emitted, start - emitted));
    pieces->push_back(text.substr(start, end - start));
    emitted = pos = end;
  }
  if (emitted < text.size()) pieces->push_back(text.substr(emitted));
}

void PreTokenizer::add(const std::string& pattern, const std::string& context) {
  regexes_.push_back(std::make_shared<SplitRegex>(pattern, context));
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

std::vector<std::string> PreTokenizer::patterns() const {
  std::vector<std::string> out;
  for (const auto& r : regexes_) out.push_back(r->pattern());
  return out;
}

}  // namespace emlab::text
