// Hand-written matchers for the three known pre-tokenizer regexes (GPT-2, Qwen2, Llama 3), as
// llama.cpp does: several times faster than a regex engine, and checked against PCRE2 on random
// text in the tests. Internal to src/text.
#pragma once

#include <string_view>
#include <vector>

namespace emlab::text {

enum class FastSplit { None, Gpt2, Qwen2, Llama3 };

// Which hand-written matcher implements `pattern` exactly (None: use the regex engine).
FastSplit fast_split_for(const std::string_view pattern);

// Same pieces as SplitRegex::split with the corresponding pattern. \s is Unicode White_Space
// (as in Hugging Face's Oniguruma); PCRE2 also counts U+180E, the one difference.
void fast_split(FastSplit kind, std::string_view text, std::vector<std::string_view>* pieces);

}  // namespace emlab::text
