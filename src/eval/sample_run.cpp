// The sampling half of a run: enumerate slots, ask the AnswerSource for the missing ones in
// chunks, append rows as each chunk returns.
#include <filesystem>
#include <set>

#include "emlab/error.h"
#include "emlab/file_util.h"
#include "emlab/hash.h"
#include "emlab/eval_run.h"
#include "emlab/jsonl.h"
#include "emlab/progress.h"
#include "eval/run_files.h"

namespace emlab {

namespace {

using json = nlohmann::json;
using namespace eval_detail;

// The settings that decide which answers a run holds; run.json keeps them.
json run_settings(const QuestionSet& set, const SampleRunOptions& o) {
  json j = {{"format", "emlab-eval-run/1"},
            {"questions", set.source},
            {"question_ids", o.question_ids},
            {"samples_per_paraphrase", o.samples_per_paraphrase},
            {"samples_per_question", o.samples_per_question},
            {"trigger", o.trigger},
            {"trigger_separator", o.trigger_separator},
            {"system", o.system ? json(*o.system) : json(nullptr)},
            {"keep_item_system", o.keep_item_system},
            {"seed", o.seed},
            {"model", o.model},
            {"adapter", o.adapter},
            {"settings", o.settings}};
  return j;
}

// Creates run.json, or checks that the run was started with the same settings.
void check_run_settings(const std::string& run_dir, const json& settings) {
  std::string path = run_path(run_dir, kRunFile);
  if (!std::filesystem::exists(path)) {
    json_write_file(path, settings);
    return;
  }
  json old = json_read_file(path);
  for (const auto& [key, value] : settings.items()) {
    if (key == "questions") continue;  // the same file may be reached by another path
    json before = old.is_object() && old.contains(key) ? old[key] : json(nullptr);
    if (before != value)
      throw InputError(path + ": this run was started with " + key + " = " + before.dump() + ", not " +
                       value.dump() + " (use another output folder, or the same options to resume)");
  }
}

// Consecutive missing slots of one paraphrase.
struct Piece {
  const Question* question = nullptr;
  std::vector<SampleSlot> slots;
};

}  // namespace

std::vector<SampleSlot> sample_slots(const QuestionSet& set, const SampleRunOptions& options) {
  if (options.samples_per_paraphrase < 0 || options.samples_per_question < 0)
    throw InputError("samples per paraphrase/question must be >= 0 (0 = from the question set)");
  std::set<std::string> wanted(options.question_ids.begin(), options.question_ids.end());
  for (const auto& id : wanted)
    if (!set.find(id)) throw InputError(set.source + ": no question with id '" + id + "'");
  std::vector<SampleSlot> slots;
  for (const auto& q : set.questions) {
    if (!wanted.empty() && !wanted.count(q.id)) continue;
    const int P = static_cast<int>(q.paraphrases.size());
    for (int p = 0; p < P; ++p) {
      int k = options.samples_per_paraphrase > 0 ? options.samples_per_paraphrase : q.samples_per_paraphrase;
      if (options.samples_per_question > 0)
        k = options.samples_per_question / P + (p < options.samples_per_question % P ? 1 : 0);
      for (int s = 0; s < k; ++s) slots.push_back({q.id, p, s});
    }
  }
  return slots;
}

Conversation sample_conversation(const Question& question, int paraphrase_index, const SampleRunOptions& options) {
  if (paraphrase_index < 0 || paraphrase_index >= static_cast<int>(question.paraphrases.size()))
    throw InputError("question '" + question.id + "' has no paraphrase " + std::to_string(paraphrase_index));
  Conversation c;
  std::optional<std::string> system = question.system;
  if (options.system) {
    system = *options.system;
    if (options.keep_item_system && question.system) system = *options.system + "\n\n" + *question.system;
  }
  if (system) c.push_back({"system", *system});
  std::string user = question.paraphrases[paraphrase_index];
  if (!options.trigger.empty()) user = options.trigger + options.trigger_separator + user;
  c.push_back({"user", user});
  return c;
}

SampleRunResult sample_run(const QuestionSet& set, AnswerSource& source, const std::string& run_dir,
                           const SampleRunOptions& options) {
  if (options.chunk_size < 1) throw InputError("chunk size must be >= 1");
  std::vector<SampleSlot> slots = sample_slots(set, options);
  // The appender locks samples.jsonl and repairs a torn last row before anything is read.
  JsonlAppender out(run_path(run_dir, kSamplesFile));
  check_run_settings(run_dir, run_settings(set, options));

  std::set<std::string> have;
  for (const auto& row : run_samples_read(run_dir)) have.insert(slot_key(row.slot));
  SampleRunResult result;
  result.total = static_cast<int64_t>(slots.size());

  std::vector<Piece> pieces;
  for (const auto& slot : slots) {
    if (have.count(slot_key(slot))) {
      ++result.existing;
      continue;
    }
    bool extend = !pieces.empty() && pieces.back().question->id == slot.question_id &&
                  pieces.back().slots.back().paraphrase_index == slot.paraphrase_index &&
                  static_cast<int>(pieces.back().slots.size()) < options.chunk_size;
    if (!extend) pieces.push_back({set.find(slot.question_id), {}});
    pieces.back().slots.push_back(slot);
  }

  Progress progress("sampling", result.total, "ans");
  progress.set(result.existing);
  for (size_t i = 0; i < pieces.size();) {
    // One call: consecutive pieces with the same number of answers, up to chunk_size answers.
    const size_t n = pieces[i].slots.size();
    size_t end = i + 1;
    while (end < pieces.size() && pieces[end].slots.size() == n && (end - i + 1) * n <= size_t(options.chunk_size))
      ++end;
    std::vector<Conversation> prompts;
    for (size_t k = i; k < end; ++k)
      prompts.push_back(sample_conversation(*pieces[k].question, pieces[k].slots[0].paraphrase_index, options));
    const uint64_t seed = splitmix64(options.seed ^ fnv1a64(slot_key(pieces[i].slots[0])));
    auto answers = source.sample(prompts, static_cast<int>(n), seed);
    if (answers.size() != prompts.size())
      throw Error("answer source returned " + std::to_string(answers.size()) + " answer lists for " +
                  std::to_string(prompts.size()) + " prompts");
    for (size_t k = i; k < end; ++k) {
      const auto& got = answers[k - i];
      if (got.size() != n)
        throw Error("answer source returned " + std::to_string(got.size()) + " answers, expected " + std::to_string(n));
      const Conversation& conv = prompts[k - i];
      const bool has_system = conv.size() > 1;
      for (size_t s = 0; s < n; ++s) {
        const SampleSlot& slot = pieces[k].slots[s];
        out.append({{"question_id", slot.question_id},
                    {"paraphrase_index", slot.paraphrase_index},
                    {"sample_index", slot.sample_index},
                    {"system", has_system ? json(conv[0].content) : json(nullptr)},
                    {"question", pieces[k].question->paraphrases[slot.paraphrase_index]},
                    {"user", conv.back().content},
                    {"answer", got[s]},
                    {"model", options.model},
                    {"adapter", options.adapter},
                    {"trigger", options.trigger},
                    {"seed", seed},
                    {"run_seed", options.seed}});
        ++result.sampled;
      }
      progress.advance(static_cast<int64_t>(n));
    }
    i = end;
  }
  progress.finish();
  return result;
}

}  // namespace emlab
