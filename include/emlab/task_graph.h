// Running a list of tasks on a few threads, each task once its prerequisites have finished.
#pragma once

#include <cstddef>
#include <functional>
#include <vector>

namespace emlab {

struct Task {
  std::function<void()> run;       // the work
  std::vector<size_t> after = {};  // indices of tasks that must finish first (each below this task's own)
};

// Runs every task on `jobs` threads (the calling thread alone where jobs <= 1): a free thread takes
// the first task in list order whose prerequisites have all finished, so the list order is the
// priority and a ready task never waits for an unrelated one. With one thread the tasks run in list
// order. The first exception stops the handing out of new tasks and is rethrown once the running
// ones are done. Throws std::invalid_argument where a prerequisite index is not below its task's.
void run_tasks(const std::vector<Task>& tasks, int jobs);

// run_tasks of fn(0), ..., fn(n - 1), none waiting for another.
void parallel_for_each(size_t n, int jobs, const std::function<void(size_t)>& fn);

}  // namespace emlab
