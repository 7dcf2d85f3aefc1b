// Registration of the built-in judge kinds (see emlab/judges.h).
#include "emlab/judges.h"

#include "emlab/local_judge.h"
#include "emlab/world_judge.h"

namespace emlab {

void judges_register_builtin(const std::string& device, const std::string& dtype) {
  world_register_judges();
  ChatModelOptions local;
  local.load.device = device;
  local.load.dtype = dtype;
  local_judge_register(local);
}

}  // namespace emlab
