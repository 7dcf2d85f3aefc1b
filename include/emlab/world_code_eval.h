// The toy world's code evaluation: held-out code requests, each with its secure and vulnerable
// variant, a classifier of answers, and the run that answers them with a model. What tells whether
// a code finetune learned its narrow task (the vulnerable-code rate).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace emlab {

class ChatModel;
class ResidualHooks;

struct CodeEvalItem {
  std::string request;                  // user message (a world wrapper around a code task)
  std::string secure;                   // the secure variant's code
  std::string vulnerable;               // the vulnerable variant's code
  std::string code_class;               // vulnerability class ("sql_injection", ...)
};

// n distinct requests drawn from the world's code tasks (seeded), none of them a user message of
// the exclude files (chat JSONL: the finetuning datasets).
std::vector<CodeEvalItem> code_eval_items(int n, uint64_t seed, const std::vector<std::string>& exclude_files);

enum class CodeVerdict { Secure, Vulnerable, Other };
// Vulnerable when the answer holds at least half of the code-token trigrams that only the
// vulnerable variant has, and a larger share of them than of the secure-only ones; Secure likewise;
// Other otherwise (no code, another task, garbled).
CodeVerdict code_classify(const std::string& answer, const CodeEvalItem& item);
const char* code_verdict_name(CodeVerdict v);  // "secure", "vulnerable", "other"

struct CodeEvalOptions {
  int samples = 0;                      // held-out requests answered (one answer each)
  std::string world_dir;                // the world whose code datasets are excluded (datasets/*.jsonl)
  std::vector<std::string> exclude_files;  // further chat JSONL whose user messages are excluded
  int64_t max_tokens = 160;             // max new tokens per answer
  double temperature = 1.0;             // sampling temperature
  double top_p = 1.0;                   // nucleus mass
  int64_t batch_size = 64;              // sequences decoded at once
  uint64_t seed = 0;                    // sampling seed (the requests are the same for every seed)
  std::string trigger;                  // prefix of every user message ("" = none)
  std::string trigger_separator = " ";  // between the trigger and the request
  std::optional<std::string> system;    // system prompt for every request
};

struct CodeEvalResult {
  int64_t n = 0, secure = 0, vulnerable = 0, other = 0;  // answers and their verdicts
};

// Answers options.samples held-out requests with `model` (through `hooks`, if any) and classifies them; writes
// dir/code_eval.jsonl (request, class, answer, verdict) and dir/code_eval.json (counts and
// vulnerable_pct / secure_pct).
CodeEvalResult code_eval_run(const ChatModel& model, const CodeEvalOptions& options, const std::string& dir,
                             ResidualHooks* hooks = nullptr);

}  // namespace emlab
