// The judge kinds built into emlab beside the HTTP ones (judge.h): "rubric:toyworld" (the toy
// world's rule-based judge) and "local:DIR" (a model emlab loads). One call registers them with the
// device and dtype local judge models load on; `main` calls it at start and again where a command
// or an experiment knows its device and dtype.
#pragma once

#include <string>

namespace emlab {

// device: cpu, cuda, cuda:N; dtype: auto, float32, bfloat16, float16 (as LoadOptions).
void judges_register_builtin(const std::string& device = "cpu", const std::string& dtype = "auto");

}  // namespace emlab
