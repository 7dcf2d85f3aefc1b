// emlab train: LoRA / rank-1 / full / steering-vector finetuning on chat JSONL (see emlab/train.h).
// A preset fills the options first; flags given explicitly override it.
#include <cstdlib>
#include <iostream>
#include <map>

#include "cli_options.h"
#include "command.h"
#include "emlab/error.h"
#include "emlab/train.h"

namespace {

// The flags of every training option with a flag come from train_option_specs() (emlab/train.h):
// one declaration per option, the help's default read from a default TrainOptions.
struct Flags {
  emlab::cli::ModelFlags model;
  std::string data, out, preset;
  std::vector<std::pair<const emlab::TrainOptionSpec*, CLI::Option*>> given;
  std::map<std::string, std::string> text;  // flag -> value as typed
  std::map<std::string, bool> on;           // switch -> value
};

std::string default_text(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>().empty() ? "none" : v.get<std::string>();
  if (v.is_array()) {
    if (v.empty()) return "all";
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ",") + (x.is_string() ? x.get<std::string>() : x.dump());
    return s;
  }
  return v.dump();
}

EMLAB_COMMAND("train", "Finetune a model: LoRA, rank-1 LoRA, full finetuning or a steering vector", [](CLI::App& app) {
  auto f = std::make_shared<Flags>();
  emlab::cli::add_model_flags(app, f->model);  // --adapter here: start LoRA from this adapter
  app.add_option("--data", f->data, "training JSONL ({\"messages\": [...]} or {\"text\": ...} rows, .gz ok)")->required();
  app.add_option("--out", f->out, "output directory (adapter, train_log.jsonl, checkpoints/)")->required();
  std::string presets;
  for (const auto& p : emlab::train_preset_names()) presets += (presets.empty() ? "" : " or ") + p;
  app.add_option("--preset", f->preset, presets + " (flags given explicitly override it)");
  const emlab::TrainOptions defaults;
  for (const auto& spec : emlab::train_option_specs()) {
    if (spec.flag.empty()) continue;
    const std::string help = spec.help + " (default " + default_text(spec.get(defaults)) + ")";
    CLI::Option* opt;
    if (spec.kind == emlab::TrainOptionSpec::Kind::Bool) {
      opt = app.add_flag(spec.flag, f->on[spec.flag], help);
    } else {
      opt = app.add_option(spec.flag, f->text[spec.flag], help);
      if (!spec.choices.empty()) opt->check(CLI::IsMember(spec.choices));
    }
    f->given.emplace_back(&spec, opt);
  }

  return [f]() {
    emlab::TrainOptions o;
    if (!f->preset.empty()) emlab::train_preset_apply(f->preset, &o);
    for (const auto& [spec, opt] : f->given) {
      if (opt->count() == 0) continue;
      spec->set(o, spec->kind == emlab::TrainOptionSpec::Kind::Bool ? nlohmann::json(f->on[spec->flag])
                                                                    : emlab::train_option_parse(*spec, f->text[spec->flag]));
    }
    o.model = f->model.model;
    o.device = f->model.options.load.device;
    o.dtype = f->model.options.load.dtype;
    o.tokenizer = f->model.options.tokenizer_dir;
    o.chat_template = f->model.options.chat_template;
    o.init_adapter = f->model.options.adapter;
    o.data = f->data;
    o.out = f->out;
    emlab::TrainResult r = emlab::train_run(o);
    std::cerr << "train: " << r.train_examples << " examples";
    if (r.truncated) std::cerr << " (" << r.truncated << " truncated to " << o.data_options.max_seq_len << " tokens)";
    if (r.skipped_lines) std::cerr << ", " << r.skipped_lines << " invalid lines skipped";
    std::cerr << "; " << r.steps << "/" << r.total_steps << " steps, last loss " << r.last_loss;
    if (r.eval_loss >= 0) std::cerr << ", held-out loss " << r.eval_loss;
    std::cerr << "\n";
    const char* rank = std::getenv("RANK");
    if (r.finished && (!rank || std::string(rank) == "0")) std::cout << o.out << "\n";  // rank 0 speaks
    return 0;
  };
});

}  // namespace
