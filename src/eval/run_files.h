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

// Unique text key of a slot (and of a slot + metric + judge).
std::string slot_key(const std::string& question_id, int paraphrase_index, int sample_index);
std::string slot_key(const SampleSlot& slot);

nlohmann::json logprobs_to_json(const std::vector<TokenLogprob>& top);
std::vector<TokenLogprob> logprobs_from_json(const nlohmann::json& j);

}  // namespace emlab::eval_detail
