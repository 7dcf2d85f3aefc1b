// Private helpers of src/eval: the rows of a run folder (formats in emlab/eval_run.h), read
// back with validation.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "emlab/eval_run.h"
#include "emlab/judge.h"

namespace emlab::eval_detail {

inline const char* kSamplesFile = "samples.jsonl";
inline const char* kJudgmentsFile = "judgments.jsonl";
inline const char* kCacheFile = "judge_cache.jsonl";
inline const char* kRunFile = "run.json";

std::string run_path(const std::string& run_dir, const std::string& file);

// FNV-1a hash of a text: derives stable per-key seeds (sampling calls, bootstrap groups).
uint64_t fnv1a64(const std::string& s);

// Unique text key of a slot (and of a slot + metric + judge).
std::string slot_key(const std::string& question_id, int paraphrase_index, int sample_index);
std::string slot_key(const SampleSlot& slot);

struct SampleRow {
  SampleSlot slot;
  std::string question;  // paraphrase without trigger
  std::string answer;
};

struct JudgmentRow {
  SampleSlot slot;
  std::string metric, judge;
  std::optional<double> score;
  std::string label, error;
  bool categorical = false;
};

// Rows of samples.jsonl, first row per slot (a missing file gives none). A torn last line
// (writer killed mid-row) is ignored; a row without the expected fields throws InputError
// naming file and line.
std::vector<SampleRow> read_samples(const std::string& run_dir);
// Rows of judgments.jsonl in file order (a missing file gives none).
std::vector<JudgmentRow> read_judgments(const std::string& run_dir);

nlohmann::json logprobs_to_json(const std::vector<TokenLogprob>& top);
std::vector<TokenLogprob> logprobs_from_json(const nlohmann::json& j);

// Reads a whole JSON file (InputError naming it when absent or bad).
nlohmann::json read_json_file(const std::string& path);
// Writes a file atomically (temporary file + rename).
void write_text_atomic(const std::string& path, const std::string& text);

}  // namespace emlab::eval_detail
