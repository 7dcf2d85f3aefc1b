#include "eval/run_files.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "emlab/error.h"
#include "emlab/jsonl.h"
#include "emlab/file_util.h"

namespace emlab::eval_detail {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Fields of a row, checked: every failure names the file and line.
struct RowReader {
  const std::string& path;
  const JsonlRow& row;

  [[noreturn]] void fail(const std::string& what) const {
    throw InputError(path + ":" + std::to_string(row.line) + ": " + what);
  }
  const json& field(const char* name) const {
    if (!row.value.is_object()) fail("expected a JSON object");
    auto it = row.value.find(name);
    if (it == row.value.end()) fail(std::string("missing field '") + name + "'");
    return *it;
  }
  std::string str(const char* name) const {
    const json& v = field(name);
    if (!v.is_string()) fail(std::string("field '") + name + "': expected a string");
    return v.get<std::string>();
  }
  std::string str_or_empty(const char* name) const {
    if (!row.value.is_object() || !row.value.contains(name) || row.value[name].is_null()) return "";
    return str(name);
  }
  int integer(const char* name) const {
    const json& v = field(name);
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > (1 << 30))
      fail(std::string("field '") + name + "': expected a non-negative integer");
    return v.get<int>();
  }
  SampleSlot slot() const { return {str("question_id"), integer("paraphrase_index"), integer("sample_index")}; }
};

std::vector<JsonlRow> read_rows(const std::string& path) {
  if (!fs::exists(path)) return {};
  JsonlReadOptions options;
  options.allow_torn_last_line = true;
  return jsonl_read_all(path, options);
}

}  // namespace

std::string run_path(const std::string& run_dir, const std::string& file) {
  return (fs::path(run_dir) / file).string();
}

std::string slot_key(const std::string& question_id, int paraphrase_index, int sample_index) {
  return question_id + '\x1f' + std::to_string(paraphrase_index) + '\x1f' + std::to_string(sample_index);
}

std::string slot_key(const SampleSlot& slot) {
  return slot_key(slot.question_id, slot.paraphrase_index, slot.sample_index);
}

}  // namespace emlab::eval_detail

namespace emlab {

using namespace eval_detail;

std::vector<RunSample> run_samples_read(const std::string& run_dir) {
  std::string path = run_path(run_dir, kSamplesFile);
  std::vector<RunSample> out;
  std::set<std::string> seen;
  for (const auto& row : read_rows(path)) {
    RowReader r{path, row};
    RunSample s;
    s.slot = r.slot();
    s.question = r.str("question");
    s.answer = r.str("answer");
    s.user = row.value.contains("user") ? r.str("user") : s.question;
    if (row.value.contains("system") && !row.value["system"].is_null()) s.system = r.str("system");
    if (seen.insert(slot_key(s.slot)).second) out.push_back(std::move(s));
  }
  return out;
}

std::vector<RunJudgment> run_judgments_read(const std::string& run_dir) {
  std::string path = run_path(run_dir, kJudgmentsFile);
  std::vector<RunJudgment> out;
  for (const auto& row : read_rows(path)) {
    RowReader r{path, row};
    RunJudgment j;
    j.slot = r.slot();
    j.metric = r.str("metric");
    j.judge = r.str("judge");
    const json& score = r.field("score");
    if (score.is_number())
      j.score = score.get<double>();
    else if (!score.is_null())
      r.fail("field 'score': expected a number or null");
    j.label = r.str_or_empty("label");
    j.error = r.str_or_empty("error");
    if (row.value.contains("categorical")) {
      if (!row.value["categorical"].is_boolean()) r.fail("field 'categorical': expected true or false");
      j.categorical = row.value["categorical"].get<bool>();
    }
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace emlab

namespace emlab::eval_detail {

json logprobs_to_json(const std::vector<TokenLogprob>& top) {
  json out = json::array();
  for (const auto& t : top) out.push_back({{"token", t.token}, {"logprob", t.logprob}});
  return out;
}

std::vector<TokenLogprob> logprobs_from_json(const json& j) {
  std::vector<TokenLogprob> out;
  if (!j.is_array()) return out;
  for (const auto& t : j)
    if (t.is_object() && t.contains("token") && t["token"].is_string() && t.contains("logprob") &&
        t["logprob"].is_number())
      out.push_back({t["token"].get<std::string>(), t["logprob"].get<double>()});
  return out;
}

}  // namespace emlab::eval_detail
