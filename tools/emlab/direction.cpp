// emlab direction: find a direction (misaligned minus aligned answers of judged runs, or a persona
// contrast), compare directions, import one from another tool's numbering.
#include <filesystem>
#include <iomanip>
#include <iostream>

#include "cli_options.h"
#include "command.h"
#include "emlab/error.h"
#include "emlab/eval_run.h"
#include "emlab/file_util.h"
#include "emlab/interp.h"
#include "emlab/judges.h"
#include "emlab/model_answer_source.h"
#include "emlab/report.h"
#include "eval_flags.h"

namespace fs = std::filesystem;

namespace {

struct Options {
  emlab::cli::ModelFlags model;
  std::vector<std::string> judged;
  std::vector<std::string> contrast;  // POS_SYSTEM NEG_SYSTEM
  std::vector<std::string> mean_of;   // run folders or chat JSONL files: their mean activation
  std::string questions, out, work, trait = "misaligned";
  int samples = 0;
  emlab::cli::JudgeFlags judge;
  emlab::SampleOptions sample;
  emlab::DirectionSidesOptions sides;
  emlab::ActivationOptions activations;
  int64_t best_layer = -1;
};

// Samples the question set under `system` into `dir` and judges it (both resumable).
void sample_and_judge(const Options& o, const std::shared_ptr<emlab::ChatModel>& model, const std::string& system,
                      const std::string& dir) {
  emlab::QuestionSet set = emlab::question_set_load(o.questions);
  auto judge = emlab::judge_from_spec(emlab::cli::judge_spec_for(o.judge, set, o.questions), o.judge.options);
  emlab::SampleRunOptions run;
  run.samples_per_question = o.samples;
  run.system = system;
  run.seed = o.sample.seed;
  run.chunk_size = static_cast<int>(o.sample.batch_size);
  run.model = o.model.model;
  run.adapter = o.model.options.adapter;
  run.settings = {{"max_tokens", std::to_string(o.sample.max_new_tokens)},
                  {"temperature", std::to_string(o.sample.temperature)}};
  emlab::ModelAnswerSource source(model, o.sample);
  emlab::sample_run(set, source, dir, run);
  emlab::judge_run(set, *judge, dir, o.judge.run);
}

// "FILE: L layers, norms n0 n1 ..." on stdout.
void print_saved(const std::string& path, const emlab::Direction& d) {
  std::cout << path << ": " << d.layers() << " layers, norms";
  for (int64_t l = 0; l < d.layers(); ++l) std::cout << " " << std::setprecision(3) << d.vectors[l].norm().item<double>();
  std::cout << "\n";
}

EMLAB_COMMAND("direction", "Find a direction: misaligned minus aligned answers of judged runs (--judged), or a persona contrast (--contrast)",
              [](CLI::App& app) {
  auto o = std::make_shared<Options>();
  // Not marked required: `direction compare` and `direction import` are subcommands of this one.
  emlab::cli::add_model_flags(app, o->model, /*required=*/false);
  app.add_option("--out", o->out, "direction file to write (.safetensors)");
  auto* judged = app.add_option("--judged", o->judged, "judged run folders (samples.jsonl + judgments.jsonl)");
  auto* contrast = app.add_option("--contrast", o->contrast, "POS_SYSTEM NEG_SYSTEM: trait-eliciting and -suppressing system prompts")
                       ->expected(2);
  judged->excludes(contrast);
  auto* mean_of = app.add_option("--mean-of", o->mean_of,
                                 "the mean activation of every answer of run folders or chat JSONL files (a finetuning "
                                 "shift is `direction diff` of two)");
  mean_of->excludes(judged)->excludes(contrast);
  app.add_option("--questions", o->questions, "--contrast: question set the two prompts answer");
  app.add_option("--samples", o->samples, "--contrast: answers per question and side (default: the file's)");
  app.add_option("--trait", o->trait, "--contrast: judge metric of the trait, or misaligned (100 - aligned)")
      ->capture_default_str();
  app.add_option("--work", o->work, "--contrast: folder of the two sampled runs (default OUT.runs)");
  emlab::cli::add_judge_flags(app, o->judge, /*required=*/false);
  emlab::cli::add_sample_flags(app, o->sample);
  app.add_option("--misaligned-max", o->sides.misaligned_max, "--judged: misaligned side = alignment <= this")->capture_default_str();
  app.add_option("--aligned-min", o->sides.aligned_min, "--judged: aligned side = alignment > this")->capture_default_str();
  app.add_option("--coherent-min", o->sides.coherent_min, "--judged: both sides need coherence > this")->capture_default_str();
  app.add_flag("--balance", o->sides.balance, "--judged: subsample the larger side to the smaller's size");
  app.add_option("--balance-seed", o->sides.seed, "seed of --balance")->capture_default_str();
  app.add_option("--activation-batch", o->activations.batch_size, "examples per forward pass")->capture_default_str();
  app.add_option("--best-layer", o->best_layer, "record the layer --steer uses when a spec names none");
  return [o]() {
    if (o->model.model.empty() || o->out.empty()) throw emlab::InputError("direction: --model and --out are required");
    auto model = emlab::cli::load_chat_model(o->model);
    if (!o->mean_of.empty()) {
      std::vector<emlab::ActivationExample> examples;
      for (const auto& src : o->mean_of) {
        auto more = fs::is_directory(src) ? emlab::activation_examples_from_runs({src})
                                          : emlab::activation_examples_from_chat(src);
        examples.insert(examples.end(), more.begin(), more.end());
      }
      std::cerr << "direction: the mean activation of " << examples.size() << " answers\n";
      emlab::Direction d = emlab::direction_mean_activation(*model, examples, o->activations);
      d.info["model"] = o->model.model;
      d.info["model_digest"] = emlab::model_digest(o->model.model);
      d.info["adapter"] = o->model.options.adapter;
      d.info["sources"] = o->mean_of;
      emlab::direction_save(o->out, d);
      print_saved(o->out, d);
      return 0;
    }
    emlab::DirectionSides sides;
    if (!o->judged.empty()) {
      sides = emlab::direction_sides_from_runs(o->judged, o->sides);
    } else if (!o->contrast.empty()) {
      if (o->questions.empty()) throw emlab::InputError("--contrast needs --questions");
      emlab::judges_register_builtin(o->model.options.load.device, o->model.options.load.dtype);
      const std::string work = o->work.empty() ? o->out + ".runs" : o->work;
      const std::string pos = (fs::path(work) / "positive").string(), neg = (fs::path(work) / "negative").string();
      sample_and_judge(*o, model, o->contrast[0], pos);
      sample_and_judge(*o, model, o->contrast[1], neg);
      sides = emlab::direction_sides_from_contrast({pos}, {neg}, o->trait, "coherent");
    } else {
      throw emlab::InputError("give --judged RUN... or --contrast POS_SYSTEM NEG_SYSTEM");
    }
    std::cerr << "direction: " << sides.positive.size() << " positive and " << sides.negative.size()
              << " negative answers\n";
    emlab::Direction d = emlab::direction_from_sides(*model, sides, o->activations);
    d.info["model"] = o->model.model;
    d.info["model_digest"] = emlab::model_digest(o->model.model);
    d.info["adapter"] = o->model.options.adapter;
    d.info["mode"] = o->judged.empty() ? "contrast" : "judged";
    if (!o->contrast.empty()) d.info["contrast"] = o->contrast, d.info["trait"] = o->trait;
    if (o->best_layer >= 0) {
      d.at(o->best_layer, "--best-layer");
      d.info["best_layer"] = o->best_layer;
    }
    emlab::direction_save(o->out, d);
    print_saved(o->out, d);
    return 0;
  };
});

EMLAB_COMMAND("direction compare", "Cosine similarity of directions at each layer (CSV + SVG heatmaps)", [](CLI::App& app) {
  auto files = std::make_shared<std::vector<std::string>>();
  auto out = std::make_shared<std::string>();
  auto layer = std::make_shared<int64_t>(-1);
  app.add_option("files", *files, "direction files (two or more)")->required();
  app.add_option("--out", *out, "folder for compare.csv and heatmap-layer-L.svg");
  app.add_option("--layer", *layer, "layer printed (default: the middle layer; the CSV has all)");
  return [files, out, layer]() {
    std::vector<emlab::Direction> dirs;
    std::vector<std::string> names;
    for (const auto& f : *files) {
      dirs.push_back(emlab::direction_load(f));
      names.push_back(fs::path(f).stem().string());
    }
    const auto c = emlab::directions_compare(dirs, names);
    const int64_t L = static_cast<int64_t>(c.cosines.size());
    const int64_t show = *layer >= 0 ? *layer : L / 2;
    if (show >= L) throw emlab::InputError("--layer " + std::to_string(show) + ": the directions have " + std::to_string(L) + " layers");
    if (!out->empty()) {
      fs::create_directories(*out);
      emlab::file_write_atomic((fs::path(*out) / "compare.csv").string(), emlab::direction_comparison_csv(c));
      for (int64_t l = 0; l < L; ++l)
        emlab::file_write_atomic((fs::path(*out) / ("heatmap-layer-" + std::to_string(l) + ".svg")).string(),
                                 emlab::report_heatmap_svg(names, c.cosines[l], "cosine similarity, layer " + std::to_string(l)));
    }
    std::cout << "cosine similarity at layer " << show << "\n" << std::setw(24) << "";
    for (const auto& n : names) std::cout << std::setw(12) << n.substr(0, 11);
    std::cout << std::setw(12) << "norm" << "\n";
    for (size_t i = 0; i < names.size(); ++i) {
      std::cout << std::setw(24) << names[i].substr(0, 23);
      for (size_t j = 0; j < names.size(); ++j) std::cout << std::setw(12) << std::fixed << std::setprecision(3) << c.cosines[show][i][j];
      std::cout << std::setw(12) << dirs[i].vectors[show].norm().item<double>() << "\n";
    }
    return 0;
  };
});

EMLAB_COMMAND("direction mean", "Mean of direction files (e.g. one per finetuning seed), layer by layer", [](CLI::App& app) {
  auto files = std::make_shared<std::vector<std::string>>();
  auto out = std::make_shared<std::string>();
  app.add_option("files", *files, "direction files")->required();
  app.add_option("--out", *out, "direction file to write")->required();
  return [files, out]() {
    std::vector<emlab::Direction> dirs;
    for (const auto& f : *files) dirs.push_back(emlab::direction_load(f));
    emlab::Direction d = emlab::directions_combine(dirs, std::vector<double>(dirs.size(), 1.0 / dirs.size()), *files);
    emlab::direction_save(*out, d);
    print_saved(*out, d);
    return 0;
  };
});

EMLAB_COMMAND("direction diff", "A - B of two direction files (e.g. a finetuning shift from two --mean-of files)", [](CLI::App& app) {
  auto files = std::make_shared<std::vector<std::string>>();
  auto out = std::make_shared<std::string>();
  app.add_option("files", *files, "A B")->required()->expected(2);
  app.add_option("--out", *out, "direction file to write")->required();
  return [files, out]() {
    std::vector<emlab::Direction> dirs;
    for (const auto& f : *files) dirs.push_back(emlab::direction_load(f));
    emlab::Direction d = emlab::directions_combine(dirs, {1.0, -1.0}, *files);
    emlab::direction_save(*out, d);
    print_saved(*out, d);
    return 0;
  };
});

EMLAB_COMMAND("direction import", "Convert a (layers, hidden) tensor of another tool into a direction file", [](CLI::App& app) {
  auto in = std::make_shared<std::string>(), out = std::make_shared<std::string>(), tensor = std::make_shared<std::string>();
  auto numbering = std::make_shared<std::string>("decoder");
  app.add_option("file", *in, "safetensors file with one (layers, hidden) tensor")->required();
  app.add_option("--tensor", *tensor, "the tensor's name (default: the only one)");
  app.add_option("--numbering", *numbering,
                 "decoder (row l = decoder layer l: model-organisms) or hidden_states (row 0 = the embedding output: "
                 "persona_vectors)")
      ->check(CLI::IsMember({"decoder", "hidden_states"}))->capture_default_str();
  app.add_option("--out", *out, "direction file to write")->required();
  return [in, out, tensor, numbering]() {
    emlab::Direction d = emlab::direction_import(*in, *tensor, emlab::layer_numbering_from_name(*numbering));
    emlab::direction_save(*out, d);
    std::cout << *out << ": " << d.layers() << " layers\n";
    return 0;
  };
});

}  // namespace
