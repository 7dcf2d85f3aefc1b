// emlab orthogonalize: a direction projected out of the weights that write into the residual
// stream, written as an adapter (LoRA B of o_proj/down_proj) or a model (o_proj, down_proj,
// embed_tokens) that every command loads.
#include <iostream>

#include "command.h"
#include "emlab/adapter.h"
#include "emlab/error.h"
#include "emlab/interp.h"
#include "emlab/model.h"
#include "emlab/peft.h"
#include "emlab/runtime.h"
#include "emlab/tokenizer.h"

namespace {

struct Options {
  std::string model, adapter, direction, out, dtype = "float32";
  emlab::OrthogonalizeOptions ortho;
};

EMLAB_COMMAND("orthogonalize", "Project a direction out of the weights that write into the residual stream",
              [](CLI::App& app) {
  auto o = std::make_shared<Options>();
  app.add_option("--model", o->model, "base model directory (or a fully finetuned one)")->required();
  app.add_option("--adapter", o->adapter, "PEFT LoRA adapter: orthogonalize its o_proj/down_proj B matrices");
  app.add_option("--direction", o->direction, "direction file (emlab direction)")->required();
  app.add_option("--layer", o->ortho.layer, "the direction's layer whose vector is projected out")->required();
  app.add_flag("!--no-rescale", o->ortho.rescale, "LoRA: keep the projected B matrices at their projected norm "
                                                  "(default: rescaled to the original norm, as model-organisms)");
  app.add_option("--dtype", o->dtype, "dtype of a written model (float32, bfloat16, float16)")->capture_default_str();
  app.add_option("--out", o->out, "output adapter / model directory")->required();
  return [o]() {
    const emlab::Direction d = emlab::direction_load(o->direction);
    emlab::LoadOptions lo;
    lo.dtype = "float32";
    auto model = emlab::CausalLM::load(o->model, lo);
    if (!o->adapter.empty()) {
      if (emlab::steering_exists(o->adapter))
        throw emlab::InputError(o->adapter + ": a steering vector, not a LoRA adapter (use --ablate at run time)");
      emlab::PeftAdapter a = emlab::peft_load(o->adapter, *model);
      const auto changed = emlab::orthogonalize_lora(*a.lora, d, o->ortho);
      if (changed.empty())
        throw emlab::InputError(o->adapter + ": no adapter on o_proj or down_proj, nothing writes into the residual stream");
      emlab::peft_save(o->out, *a.lora, a.config);
      std::cout << o->out << ": " << changed.size() << " adapters orthogonalized\n";
    } else {
      emlab::orthogonalize_model(*model, d, o->ortho);
      model->save(o->out, emlab::dtype_from_option(o->dtype, torch::Device(torch::kCPU)));
      emlab::tokenizer_files_copy(o->model, o->out);
      std::cout << o->out << ": model orthogonalized\n";
    }
    return 0;
  };
});

}  // namespace
