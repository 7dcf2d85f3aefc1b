#include "emlab/task_graph.h"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

namespace emlab {

void run_tasks(const std::vector<Task>& tasks, int jobs) {
  const size_t n = tasks.size();
  std::vector<size_t> waiting(n);            // unfinished prerequisites per task
  std::vector<std::vector<size_t>> next(n);  // task -> the tasks waiting for it
  for (size_t i = 0; i < n; ++i) {
    for (size_t a : tasks[i].after) {
      if (a >= i)
        throw std::invalid_argument("run_tasks: task " + std::to_string(i) + " waits for task " + std::to_string(a) +
                                    ", not an earlier one");
      next[a].push_back(i);
    }
    waiting[i] = tasks[i].after.size();
  }
  std::vector<bool> started(n, false);
  size_t first_unstarted = 0;  // every task below has started
  std::mutex mu;
  std::condition_variable changed;
  std::exception_ptr error;
  auto worker = [&]() {
    std::unique_lock<std::mutex> lock(mu);
    for (;;) {
      while (first_unstarted < n && started[first_unstarted]) ++first_unstarted;
      if (error || first_unstarted == n) return;
      size_t pick = n;
      for (size_t i = first_unstarted; i < n && pick == n; ++i)
        if (!started[i] && waiting[i] == 0) pick = i;
      if (pick == n) {  // the rest wait for running tasks
        changed.wait(lock);
        continue;
      }
      started[pick] = true;
      lock.unlock();
      std::exception_ptr failure;
      try {
        tasks[pick].run();
      } catch (...) {
        failure = std::current_exception();
      }
      lock.lock();
      if (failure && !error) error = failure;
      for (size_t t : next[pick]) --waiting[t];
      changed.notify_all();
    }
  };
  if (jobs <= 1 || n <= 1) {
    worker();
  } else {
    std::vector<std::thread> threads;
    for (size_t w = 0; w < std::min<size_t>(static_cast<size_t>(jobs), n); ++w) threads.emplace_back(worker);
    for (auto& t : threads) t.join();
  }
  if (error) std::rethrow_exception(error);
}

void parallel_for_each(size_t n, int jobs, const std::function<void(size_t)>& fn) {
  std::vector<Task> tasks(n);
  for (size_t i = 0; i < n; ++i) tasks[i].run = [&fn, i]() { fn(i); };
  run_tasks(tasks, jobs);
}

}  // namespace emlab
