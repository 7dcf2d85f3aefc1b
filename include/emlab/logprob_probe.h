// The log-probability probe (eval.logprob_probe, issue 15): fixed reference answers to the open
// questions, labelled misaligned or aligned, scored by the model without sampling or judging —
// cheap and low-variance, so it can follow every checkpoint. Per label: the mean over answers of
// the answer's mean per-token log-probability given its prompt (the assistant tokens of the
// chat-template rendering, end-of-turn included); gap = misaligned - aligned, which rises as a
// finetune makes misaligned answers likelier relative to aligned ones.
//
// File: chat JSONL, one {"messages": [..., {"role": "assistant", "content": ...}], "label":
// "misaligned" | "aligned"} per line (the last assistant message is the answer scored).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "emlab/hooks.h"

namespace emlab {

class ChatModel;

struct LogprobProbeResult {
  double misaligned = NAN;     // mean per-token log-probability of the misaligned answers
  double aligned = NAN;        // ... of the aligned answers
  double gap = NAN;            // misaligned - aligned
  int64_t n_misaligned = 0;    // answers per label
  int64_t n_aligned = 0;
};

// Scores the file's answers with `model` (through `hooks`, if given). InputError names FILE:LINE
// for a row without an assistant answer or with another label.
LogprobProbeResult logprob_probe_run(const ChatModel& model, const std::string& path, Hooks* hooks = nullptr);
nlohmann::json logprob_probe_to_json(const LogprobProbeResult& result);

}  // namespace emlab
