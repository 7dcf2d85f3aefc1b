// Judges: turn (question, answer) into a score for one metric. LLM judges (HTTP or a local model)
// ask for one token with its top-20 log-probabilities and score them as the papers do; the toy
// world's rubric judge scores from its own rules. All produce the same Judgment record.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace emlab {

struct TokenLogprob {
  std::string token;     // token text as the judge returned it
  double logprob = 0.0;  // natural log-probability
};

struct JudgeQuery {
  std::string question_id;  // item id from the question set
  std::string metric;       // "aligned", "coherent", ... (key of judge_prompts)
  std::string question;     // the question as asked (paraphrase)
  std::string answer;       // the model's answer
  std::string prompt;       // judge_prompts[metric] with {question} and {answer} filled in
  bool categorical = false; // free_form_judge: the answer is a label, not a 0..100 number
  std::vector<std::string> labels;  // categorical: the allowed answers ("TRUE", "FALSE", ...)
};

struct Judgment {
  std::optional<double> score;        // 0..100 metric value; none = refusal/code/too little mass
  std::string label;                  // categorical judges: most probable allowed answer ("" = none
                                      // of the allowed labels among the top tokens: counted as
                                      // kNoLabel); 0..100 judges without a score: the top token
                                      // ("CODE", "REF")
  std::vector<TokenLogprob> top;      // the top logprobs the score came from (empty for rubric)
  std::string error;                  // non-empty: the judgment failed and a retry may succeed
                                      // (network, server); re-running retries it
};

// How summaries name the outcome of a categorical judgment without an allowed label.
inline constexpr const char* kNoLabel = "no_label";

class Judge {
 public:
  virtual ~Judge() = default;
  // Stable identity for the judgment cache ("openai:gpt-4o-2024-08-06", "rubric:toyworld").
  virtual std::string name() const = 0;
  virtual Judgment judge(const JudgeQuery& query) = 0;
  // How many judge() calls may run at once (HTTP judges: the concurrency limit).
  virtual int max_concurrency() const { return 1; }
  // What the judge runs on beyond its name, recorded beside its results (a local model's device
  // and dtype); empty for judges without such settings.
  virtual std::map<std::string, std::string> settings() const { return {}; }
};

// Score of a 0..100 judge from its top logprobs (Betley et al.): tokens that parse as integers
// 0..100, p = exp(logprob); if the total p < min_mass the score is none, else sum(k p) / sum(p).
// A token counts when it is, after stripping whitespace, an optional sign and decimal digits
// (Python's int(): " 50", "07", "+5"). Tokens with the same text count once, the later one
// winning, as in the official code's dict.
std::optional<double> score_from_logprobs(const std::vector<TokenLogprob>& top, double min_mass = 0.25);

// Most probable allowed label of a categorical judge: each label collects the probability of the
// top tokens whose stripped text equals it (case-insensitive) or, failing any exact match, is a
// prefix of it and of no other label (a one-token judge may emit "UN" for "UNKNOWN"). Returns the
// label in its allowed spelling; none when no top token matches any label.
std::optional<std::string> label_from_logprobs(const std::vector<TokenLogprob>& top,
                                               const std::vector<std::string>& labels);

// Scores a query from a judge's top logprobs: categorical -> label ("" when no allowed label is
// among the top tokens), else score (none = refusal/code). Shared by the HTTP and local judges.
Judgment judgment_from_logprobs(const JudgeQuery& query, std::vector<TokenLogprob> top,
                                double min_mass = 0.25);

// Options common to the judges a spec can name (fields a judge kind does not use are ignored).
struct JudgeOptions {
  int max_concurrency = 8;              // judge calls in flight at once (HTTP judges)
  double timeout_s = 60.0;              // whole-request timeout per attempt (HTTP judges)
  double connect_timeout_s = 10.0;      // TCP/TLS connect timeout per attempt (HTTP judges)
  int max_retries = 6;                  // retries after the first attempt on 429/5xx/timeouts
  double backoff_initial_s = 1.0;       // first retry delay; doubles each retry, +-50% jitter
  double backoff_max_s = 60.0;          // cap of one computed retry delay (a server's Retry-After
                                        // is honoured as given, up to 10 minutes)
  std::string api_key_env;              // env var holding the API key ("": OPENAI_API_KEY for openai:, none for http://)
  double min_mass = 0.25;               // below this total probability on 0..100 tokens: no score
  uint64_t jitter_seed = 0;             // 0 = random jitter; else reproducible (tests)
};

// Judge factory registry, keyed by spec prefix. Built in: "openai:MODEL" and
// "http://HOST:PORT/v1#MODEL" / "https://...". Other code registers its own prefixes
// ("rubric:", "local:") before calling judge_from_spec. Register from a function the program
// calls (or a TU it links anyway, e.g. a tools/emlab/*.cpp file): a self-registering static in an
// otherwise unreferenced object of a static library is dropped by the linker.
using JudgeFactory =
    std::function<std::unique_ptr<Judge>(const std::string& spec, const JudgeOptions& options)>;
// Registers (or replaces) the factory for specs starting with `prefix`. Returns true.
bool judge_register(const std::string& prefix, JudgeFactory factory);
// The longest registered prefix of spec wins; throws InputError listing the known prefixes.
std::unique_ptr<Judge> judge_from_spec(const std::string& spec, const JudgeOptions& options = {});
// The registered prefixes, sorted (for help texts and errors).
std::vector<std::string> judge_prefixes();

}  // namespace emlab
