// emlab init-model: a randomly initialised model in Hugging Face format (tests, benchmarks, toy world).
#include <filesystem>
#include <iostream>

#include "command.h"
#include "emlab/hf_config.h"
#include "emlab/model.h"

namespace {

struct Options {
  std::string config;
  std::string out;
  uint64_t seed = 0;
  std::string dtype = "float32";
  std::string tokenizer;
};

EMLAB_COMMAND("init-model", "Write a randomly initialised model (config.json + model.safetensors)",
              [](CLI::App& app) {
                auto o = std::make_shared<Options>();
                app.add_option("--config", o->config, "config.json to instantiate")->required();
                app.add_option("--out", o->out, "output directory")->required();
                app.add_option("--seed", o->seed, "random seed")->capture_default_str();
                app.add_option("--dtype", o->dtype, "float32, bfloat16 or float16")->capture_default_str();
                app.add_option("--tokenizer", o->tokenizer, "copy these tokenizer files into --out");
                return [o]() {
                  namespace fs = std::filesystem;
                  emlab::ModelConfig config = emlab::ModelConfig::load(o->config);
                  emlab::LoadOptions lo;
                  lo.dtype = o->dtype;
                  auto model = emlab::CausalLM::init_random(config, o->seed, lo);
                  model->save(o->out);
                  if (!o->tokenizer.empty()) {
                    for (const auto& e : fs::directory_iterator(o->tokenizer)) {
                      const std::string name = e.path().filename().string();
                      if (name.rfind("tokenizer", 0) == 0 || name == "vocab.json" || name == "merges.txt" ||
                          name == "special_tokens_map.json")
                        fs::copy_file(e.path(), fs::path(o->out) / name, fs::copy_options::overwrite_existing);
                    }
                  }
                  std::cout << o->out << ": " << config.model_type << ", " << model->num_parameters()
                            << " parameters, seed " << o->seed << "\n";
                  return 0;
                };
              });

}  // namespace
