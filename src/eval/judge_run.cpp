// The judging half of a run: every (answer, metric) pair not yet judged, deduplicated by
// rendered prompt and served from the judgment cache where possible, judged by a pool of worker
// threads; this thread is the only writer of judgments.jsonl and the cache.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "emlab/error.h"
#include "emlab/eval_run.h"
#include "emlab/jsonl.h"
#include "emlab/progress.h"
#include "eval/run_files.h"

namespace emlab {

namespace {

using json = nlohmann::json;
using namespace eval_detail;

struct Task {
  SampleSlot slot;
  JudgeQuery query;
};

// One judge call and the tasks that share its prompt.
struct Work {
  JudgeQuery query;
  std::vector<size_t> tasks;
};

json judgment_row(const Task& task, const std::string& judge, const Judgment& j, bool cached) {
  return {{"question_id", task.slot.question_id},
          {"paraphrase_index", task.slot.paraphrase_index},
          {"sample_index", task.slot.sample_index},
          {"metric", task.query.metric},
          {"judge", judge},
          {"score", j.score && j.error.empty() ? json(*j.score) : json(nullptr)},
          {"label", j.label},
          {"error", j.error},
          {"categorical", task.query.categorical},
          {"top_logprobs", logprobs_to_json(j.top)},
          {"cached", cached}};
}

// Runs the worker threads; stops and joins them however the writer leaves.
class WorkerPool {
 public:
  WorkerPool(Judge& judge, const std::vector<Work>& work, int threads) : judge_(judge), work_(work) {
    active_ = threads;
    for (int t = 0; t < threads; ++t) threads_.emplace_back([this] { loop(); });
  }
  ~WorkerPool() {
    stop();
    for (auto& t : threads_) t.join();
  }
  void stop() { stop_ = true; }

  // Waits for finished judgments; returns false when every worker has exited and none are left.
  bool wait(std::vector<std::pair<size_t, Judgment>>* out) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !done_.empty() || active_ == 0; });
    out->assign(std::make_move_iterator(done_.begin()), std::make_move_iterator(done_.end()));
    done_.clear();
    return !out->empty();
  }
  std::exception_ptr failure() {
    std::lock_guard<std::mutex> lock(mu_);
    return failure_;
  }

 private:
  void loop() {
    for (;;) {
      size_t i = next_.fetch_add(1);
      if (i >= work_.size() || stop_) break;
      try {
        Judgment j = judge_.judge(work_[i].query);
        std::lock_guard<std::mutex> lock(mu_);
        done_.emplace_back(i, std::move(j));
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!failure_) failure_ = std::current_exception();
        stop_ = true;
        break;
      }
      cv_.notify_one();
    }
    std::lock_guard<std::mutex> lock(mu_);
    --active_;
    cv_.notify_one();
  }

  Judge& judge_;
  const std::vector<Work>& work_;
  std::vector<std::thread> threads_;
  std::atomic<size_t> next_{0};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<size_t, Judgment>> done_;
  int active_ = 0;
  std::exception_ptr failure_;
};

}  // namespace

JudgeRunResult judge_run(const QuestionSet& set, Judge& judge, const std::string& run_dir,
                         const JudgeRunOptions& options) {
  const std::string name = judge.name();
  const std::string samples_path = run_path(run_dir, kSamplesFile);
  if (!std::filesystem::exists(samples_path))
    throw InputError(run_dir + ": no " + kSamplesFile + " to judge (sample first)");
  JsonlAppender out(run_path(run_dir, kJudgmentsFile));
  const std::string cache_path = options.cache_path.empty() ? run_path(run_dir, kCacheFile) : options.cache_path;
  std::optional<JsonlAppender> cache_out;
  std::unordered_map<std::string, Judgment> cache;  // rendered prompt -> judgment, for this judge
  if (options.use_cache) {
    cache_out.emplace(cache_path);  // locks and repairs before the read below
    JsonlReadOptions read_options;
    read_options.allow_torn_last_line = true;
    read_options.collect_errors = true;  // a damaged cache row only costs a judge call
    for (auto& row : jsonl_read_all(cache_path, read_options)) {
      const json& v = row.value;
      if (!v.is_object() || v.value("judge", "") != name || !v.contains("prompt") || !v["prompt"].is_string())
        continue;
      Judgment j;
      if (v.contains("score") && v["score"].is_number()) j.score = v["score"].get<double>();
      if (v.contains("label") && v["label"].is_string()) j.label = v["label"];
      if (v.contains("top_logprobs")) j.top = logprobs_from_json(v["top_logprobs"]);
      cache[v["prompt"].get<std::string>()] = std::move(j);
    }
  }

  // Keys already judged: the last row per (slot, metric) for this judge decides.
  std::unordered_map<std::string, bool> last_ok;
  for (const auto& r : run_judgments_read(run_dir))
    if (r.judge == name) last_ok[slot_key(r.slot) + '\x1f' + r.metric] = r.error.empty();

  for (const auto& m : options.metrics) {
    bool known = false;
    for (const auto& q : set.questions)
      for (const auto& jp : q.judge_prompts) known = known || jp.metric == m;
    if (!known) throw InputError(set.source + ": no question has a judge prompt for metric '" + m + "'");
  }

  JudgeRunResult result;
  std::vector<Task> tasks;
  for (const auto& sample : run_samples_read(run_dir)) {
    const Question* q = set.find(sample.slot.question_id);
    if (!q)
      throw InputError(samples_path + ": question '" + sample.slot.question_id + "' is not in " + set.source +
                       " (judge with the question set the run was sampled from)");
    for (const auto& jp : q->judge_prompts) {
      if (!options.metrics.empty() &&
          std::find(options.metrics.begin(), options.metrics.end(), jp.metric) == options.metrics.end())
        continue;
      auto it = last_ok.find(slot_key(sample.slot) + '\x1f' + jp.metric);
      if (it != last_ok.end() && (it->second || !options.retry_errors)) {
        ++result.existing;
        continue;
      }
      Task t;
      t.slot = sample.slot;
      t.query.question_id = q->id;
      t.query.metric = jp.metric;
      t.query.question = sample.question;
      t.query.answer = sample.answer;
      t.query.prompt = judge_prompt_render(jp.text, sample.question, sample.answer);
      t.query.categorical = q->type == QuestionType::Categorical;
      t.query.labels = jp.labels;
      tasks.push_back(std::move(t));
    }
  }
  result.total = result.existing + static_cast<int64_t>(tasks.size());

  Progress progress("judging", result.total, "judgment");
  progress.set(result.existing);
  // Cache hits are written at once; the rest is grouped by prompt, one call per group.
  std::vector<Work> work;
  std::unordered_map<std::string, size_t> work_of_prompt;
  for (size_t i = 0; i < tasks.size(); ++i) {
    const std::string& prompt = tasks[i].query.prompt;
    auto hit = cache.find(prompt);
    if (hit != cache.end()) {
      out.append(judgment_row(tasks[i], name, hit->second, /*cached=*/true));
      ++result.cached;
      progress.advance();
      continue;
    }
    auto [it, fresh] = work_of_prompt.emplace(prompt, work.size());
    if (fresh) work.push_back({tasks[i].query, {}});
    work[it->second].tasks.push_back(i);
  }

  if (!work.empty()) {
    const int threads = std::max(1, std::min<int>(judge.max_concurrency(), static_cast<int>(work.size())));
    int consecutive_errors = 0;
    std::string too_many_errors;
    WorkerPool pool(judge, work, threads);
    std::vector<std::pair<size_t, Judgment>> finished;
    while (pool.wait(&finished)) {
      for (auto& [index, j] : finished) {
        const Work& w = work[index];
        ++result.judged;
        if (j.error.empty() && cache_out)
          cache_out->append({{"judge", name},
                             {"prompt", w.query.prompt},
                             {"score", j.score ? json(*j.score) : json(nullptr)},
                             {"label", j.label},
                             {"top_logprobs", logprobs_to_json(j.top)}});
        for (size_t k = 0; k < w.tasks.size(); ++k) {
          out.append(judgment_row(tasks[w.tasks[k]], name, j, /*cached=*/k > 0));
          if (k > 0) ++result.cached;
          if (!j.error.empty()) ++result.errors;
        }
        progress.advance(static_cast<int64_t>(w.tasks.size()));
        consecutive_errors = j.error.empty() ? 0 : consecutive_errors + 1;
        if (options.max_consecutive_errors > 0 && consecutive_errors >= options.max_consecutive_errors &&
            too_many_errors.empty()) {
          too_many_errors = "judge " + name + ": " + std::to_string(consecutive_errors) +
                            " judgments in a row failed; stopping. Last error: " + j.error;
          pool.stop();
        }
      }
    }
    if (auto failure = pool.failure()) std::rethrow_exception(failure);
    if (!too_many_errors.empty()) throw ServiceError(too_many_errors);
  }
  progress.finish();
  return result;
}

}  // namespace emlab
