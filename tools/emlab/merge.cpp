// emlab merge: writes a full model with a LoRA adapter merged into its weights (W + scale·B·A),
// plus the tokenizer files, so tools without adapter support can load the finetune.
#include <filesystem>
#include <iostream>

#include "command.h"
#include "emlab/adapter.h"
#include "emlab/error.h"
#include "emlab/model.h"
#include "emlab/peft.h"
#include "emlab/runtime.h"
#include "emlab/tokenizer.h"

namespace {

struct Options {
  std::string model, adapter, out, dtype = "auto";
};

EMLAB_COMMAND("merge", "Merge a PEFT LoRA adapter into the base weights and write a full model", [](CLI::App& app) {
  auto o = std::make_shared<Options>();
  app.add_option("--model", o->model, "base model directory")->required();
  app.add_option("--adapter", o->adapter, "PEFT LoRA adapter directory")->required();
  app.add_option("--out", o->out, "output model directory")->required();
  app.add_option("--dtype", o->dtype, "dtype to save: auto (the base model's), float32, bfloat16, float16")
      ->capture_default_str();
  return [o]() {
    if (emlab::steering_exists(o->adapter))
      throw emlab::InputError(o->adapter + ": holds a steering vector, which a Llama-family checkpoint cannot hold "
                              "without biases; load it with --adapter instead of merging");
    emlab::LoadOptions lo;
    lo.dtype = "float32";  // merge in float32, then save in the requested dtype
    auto model = emlab::CausalLM::load(o->model, lo);
    emlab::PeftAdapter a = emlab::peft_load(o->adapter, *model);
    for (const auto& w : a.warnings) std::cerr << "emlab merge: " << w << "\n";
    emlab::lora_merge(*model, *a.lora);
    std::string dtype = o->dtype;
    if (dtype == "auto") dtype = model->config().torch_dtype.empty() ? "float32" : model->config().torch_dtype;
    model->save(o->out, emlab::dtype_from_option(dtype, torch::Device(torch::kCPU)));
    emlab::tokenizer_files_copy(o->model, o->out);
    std::cout << o->out << ": " << a.lora->modules.size() << " adapters merged\n";
    return 0;
  };
});

}  // namespace
