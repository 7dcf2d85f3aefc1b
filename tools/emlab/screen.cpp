// emlab screen: rank datasets by how far along a direction their answers lie beyond the model's
// own answers to the same prompts (persona vectors' projection difference).
#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <iostream>

#include "cli_options.h"
#include "command.h"
#include "emlab/error.h"
#include "emlab/interp.h"
#include "emlab/file_util.h"
#include "emlab/jsonl.h"

namespace {

struct Options {
  emlab::cli::ModelFlags model;
  std::string direction, out;
  std::vector<std::string> data;
  emlab::ScreenOptions screen;
};

EMLAB_COMMAND("screen", "Rank datasets by the projection difference of their answers onto a direction", [](CLI::App& app) {
  auto o = std::make_shared<Options>();
  emlab::cli::add_model_flags(app, o->model);
  app.add_option("--direction", o->direction, "direction file (FILE or FILE:layer=L)")->required();
  app.add_option("--data", o->data, "chat JSONL datasets to screen")->required();
  app.add_option("--out", o->out, "folder for screen.jsonl (per example) and screen.csv (per dataset)");
  app.add_option("--examples", o->screen.max_examples, "examples per dataset (0 = all)")->capture_default_str();
  app.add_option("--max-tokens", o->screen.max_new_tokens, "length of the model's own answers")->capture_default_str();
  app.add_option("--temperature", o->screen.temperature, "their sampling temperature")->capture_default_str();
  app.add_option("--seed", o->screen.seed, "their sampling seed and the example subsample")->capture_default_str();
  app.add_option("--batch-size", o->screen.batch_size, "examples per batch")->capture_default_str();
  return [o]() {
    // FILE[:layer=L]: the steering spec's syntax, layer as --steer resolves it.
    const emlab::SteerSpec spec = emlab::steer_spec_parse(o->direction, /*ablate=*/false);
    const emlab::Direction d = emlab::direction_load(spec.file);
    if (spec.layer) o->screen.layer = *spec.layer;
    else if (d.info.contains("best_layer")) o->screen.layer = d.info["best_layer"];
    else throw emlab::InputError("--direction " + o->direction + ": give :layer=L (the file names no best_layer)");
    auto model = emlab::cli::load_chat_model(o->model);
    std::vector<emlab::ScreenResult> results;
    std::vector<nlohmann::json> rows;
    for (const auto& data : o->data) {
      std::cerr << "screening " << data << "\n";
      results.push_back(emlab::screen_dataset(*model, d, data, o->screen));
      rows.insert(rows.end(), results.back().rows.begin(), results.back().rows.end());
    }
    std::vector<size_t> order(results.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return results[a].difference > results[b].difference; });
    std::string csv = "rank,dataset,examples,dataset_projection,own_projection,difference\n";
    std::cout << "rank  difference  dataset  own  examples  dataset file (layer " << o->screen.layer << ")\n";
    for (size_t r = 0; r < order.size(); ++r) {
      const auto& s = results[order[r]];
      std::cout << std::setw(4) << r + 1 << std::fixed << std::setprecision(4) << std::setw(12) << s.difference
                << std::setw(9) << s.dataset_projection << std::setw(9) << s.own_projection << std::setw(10) << s.examples
                << "  " << s.dataset << "\n";
      csv += std::to_string(r + 1) + "," + s.dataset + "," + std::to_string(s.examples) + "," +
             std::to_string(s.dataset_projection) + "," + std::to_string(s.own_projection) + "," +
             std::to_string(s.difference) + "\n";
    }
    if (!o->out.empty()) {
      std::filesystem::create_directories(o->out);
      emlab::jsonl_write_all((std::filesystem::path(o->out) / "screen.jsonl").string(), rows);
      emlab::file_write_atomic((std::filesystem::path(o->out) / "screen.csv").string(), csv);
    }
    return 0;
  };
});

}  // namespace
