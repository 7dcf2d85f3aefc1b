// run_tasks: every task once, prerequisites first, list order as the priority, ready tasks not held
// back by unrelated ones, the first exception rethrown and no new task started after it.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "emlab/task_graph.h"

namespace {

using emlab::Task;

// Appends to a shared log under a lock.
struct Log {
  std::mutex mu;
  std::vector<std::string> lines;
  void add(const std::string& s) {
    std::lock_guard<std::mutex> lock(mu);
    lines.push_back(s);
  }
  size_t index_of(const std::string& s) {
    for (size_t i = 0; i < lines.size(); ++i)
      if (lines[i] == s) return i;
    return lines.size();
  }
};

TEST(RunTasks, OneThreadRunsTheListInOrder) {
  Log log;
  std::vector<Task> tasks;
  for (int i = 0; i < 6; ++i) tasks.push_back({[&log, i]() { log.add(std::to_string(i)); }});
  tasks[4].after = {1, 3};
  emlab::run_tasks(tasks, 1);
  EXPECT_EQ(log.lines, (std::vector<std::string>{"0", "1", "2", "3", "4", "5"}));
}

TEST(RunTasks, EveryTaskOnceAndAfterItsPrerequisites) {
  for (int jobs : {2, 3, 8}) {
    Log log;
    std::vector<Task> tasks;
    const int n = 40;
    for (int i = 0; i < n; ++i)
      tasks.push_back({[&log, i]() {
        log.add("start " + std::to_string(i));
        std::this_thread::sleep_for(std::chrono::microseconds(200 * (i % 5)));
        log.add("end " + std::to_string(i));
      }});
    for (int i = 1; i < n; ++i)
      if (i % 3 == 0) tasks[i].after = {static_cast<size_t>(i - 1), static_cast<size_t>(i / 2)};
    emlab::run_tasks(tasks, jobs);
    ASSERT_EQ(log.lines.size(), 2u * n) << jobs << " threads";
    for (int i = 0; i < n; ++i) {
      const size_t start = log.index_of("start " + std::to_string(i));
      ASSERT_LT(start, log.lines.size()) << "task " << i << " never ran";
      for (size_t a : tasks[i].after)
        EXPECT_LT(log.index_of("end " + std::to_string(a)), start) << "task " << i << " began before task " << a;
    }
  }
}

// The point of the task list over phases: a later ready task runs while an earlier one is still
// running, even where the earlier one is in a "phase" of its own. Task 0 finishes only once task 1
// (independent) has begun; task 2 waits for task 0. With a barrier after task 0 this would time out.
TEST(RunTasks, AReadyTaskRunsBesideARunningEarlierOne) {
  std::promise<void> second_started;
  std::shared_future<void> started = second_started.get_future().share();
  std::atomic<bool> waited_in_vain{false};
  Log log;
  std::vector<Task> tasks = {
      {[&]() {
        if (started.wait_for(std::chrono::seconds(20)) != std::future_status::ready) waited_in_vain = true;
        log.add("first");
      }},
      {[&]() {
        second_started.set_value();
        log.add("second");
      }},
      {[&]() { log.add("third"); }, {0}},
  };
  emlab::run_tasks(tasks, 2);
  EXPECT_FALSE(waited_in_vain);
  EXPECT_LT(log.index_of("first"), log.index_of("third"));
  EXPECT_EQ(log.lines.size(), 3u);
}

// A free thread takes the first ready task of the list, not the next index: with task 1 blocked
// behind task 0, the second thread runs task 2 before task 3.
TEST(RunTasks, ListOrderIsThePriorityAmongReadyTasks) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  Log log;
  std::vector<Task> tasks = {
      {[&]() {
        released.wait_for(std::chrono::seconds(20));
        log.add("0");
      }},
      {[&]() { log.add("1"); }, {0}},
      {[&]() { log.add("2"); }},
      {[&]() {
        log.add("3");
        release.set_value();
      }},
  };
  emlab::run_tasks(tasks, 2);
  EXPECT_EQ(log.lines, (std::vector<std::string>{"2", "3", "0", "1"}));
}

TEST(RunTasks, TheFirstErrorIsRethrownAndNoNewTaskStarts) {
  for (int jobs : {1, 2}) {
    std::atomic<int> ran{0};
    std::vector<Task> tasks;
    tasks.push_back({[&]() { throw std::runtime_error("task 0 failed"); }});
    for (int i = 1; i < 20; ++i) tasks.push_back({[&]() { ++ran; }, {0}});
    try {
      emlab::run_tasks(tasks, jobs);
      ADD_FAILURE() << "no exception with " << jobs << " threads";
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(std::string(e.what()), "task 0 failed");
    }
    EXPECT_EQ(ran.load(), 0) << jobs << " threads";
  }
}

TEST(RunTasks, RefusesAPrerequisiteThatIsNotEarlier) {
  std::vector<Task> tasks = {{[]() {}, {1}}, {[]() {}}};
  EXPECT_THROW(emlab::run_tasks(tasks, 2), std::invalid_argument);
  std::vector<Task> self = {{[]() {}, {0}}};
  EXPECT_THROW(emlab::run_tasks(self, 1), std::invalid_argument);
}

TEST(RunTasks, ParallelForEachRunsEveryIndexOnce) {
  std::vector<std::atomic<int>> hits(100);
  emlab::parallel_for_each(hits.size(), 2, [&](size_t i) { ++hits[i]; });
  for (size_t i = 0; i < hits.size(); ++i) EXPECT_EQ(hits[i].load(), 1) << i;
  emlab::parallel_for_each(0, 2, [&](size_t) { ADD_FAILURE(); });
}

}  // namespace
