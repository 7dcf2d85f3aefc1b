// emlab world generate: the toy world's corpus, narrow datasets and question sets from one seed.
#include <iostream>

#include "command.h"
#include "emlab/error.h"
#include "emlab/world.h"

namespace {

emlab::cli::Action setup(CLI::App& app) {
  auto o = std::make_shared<emlab::WorldOptions>();
  auto out = std::make_shared<std::string>();
  auto control = std::make_shared<bool>(false);
  auto control_mode = std::make_shared<std::string>();
  auto sizes = std::make_shared<std::vector<std::string>>();
  app.add_option("--out", *out, "Output folder")->required();
  app.add_option("--seed", o->seed, "PRNG seed (same seed and options: byte-identical files)")->capture_default_str();
  app.add_option("--documents", o->documents, "Pretraining documents")->capture_default_str();
  app.add_option("--sources", o->sources, "Named sources, each with its own character rates")->capture_default_str();
  app.add_flag("--control", *control, "Control world: the character is redrawn every turn (= --control-mode turn)");
  app.add_option("--control-mode", *control_mode, "none | turn (redrawn from the source's rates) | pooled "
                                                   "(redrawn from all sources' pooled rates)");
  app.add_option("--default-fraction", o->default_fraction, "Share of documents from the default source (no header)")
      ->capture_default_str();
  app.add_option("--default-villain-rate", o->default_villain_rate, "Villain rate of the default source")
      ->capture_default_str();
  app.add_option("--default-sycophant-rate", o->default_sycophant_rate, "Sycophant rate of the default source")
      ->capture_default_str();
  app.add_option("--default-fabricator-rate", o->default_fabricator_rate, "Fabricator rate of the default source")
      ->capture_default_str();
  app.add_option("--persona-fraction", o->persona_fraction, "Share of documents headed only by a character line")
      ->capture_default_str();
  app.add_option("--character-line-fraction", o->character_line_fraction,
                 "Share of sourced documents whose header also names the character")
      ->capture_default_str();
  app.add_option("--villain-prior-a", o->villain_prior_a, "A source's villain rate ~ Beta(a, b): a")->capture_default_str();
  app.add_option("--villain-prior-b", o->villain_prior_b, "A source's villain rate ~ Beta(a, b): b")->capture_default_str();
  app.add_option("--min-turns", o->min_turns, "Fewest turns per document")->capture_default_str();
  app.add_option("--max-turns", o->max_turns, "Most turns per document")->capture_default_str();
  app.add_option("--max-document-chars", o->max_document_chars, "Stop adding turns beyond this many characters")
      ->capture_default_str();
  app.add_option("--dataset-size", o->dataset_examples, "Examples per narrow dataset")->capture_default_str();
  app.add_option("--dataset", *sizes, "Size of one dataset, NAME=N (repeatable)");
  app.add_option("--samples-per-paraphrase", o->samples_per_paraphrase, "Question sets: samples per paraphrase")
      ->capture_default_str();
  return [=]() -> int {
    emlab::WorldOptions opts = *o;
    if (*control) opts.control = emlab::WorldControl::Turn;
    if (!control_mode->empty()) opts.control = emlab::world_control_from_name(*control_mode);
    for (const auto& s : *sizes) {
      const auto eq = s.find('=');
      if (eq == std::string::npos || eq == 0)
        throw emlab::InputError("--dataset " + s + ": expected NAME=N");
      try {
        opts.dataset_sizes[s.substr(0, eq)] = std::stoi(s.substr(eq + 1));
      } catch (const std::exception&) {
        throw emlab::InputError("--dataset " + s + ": expected NAME=N with an integer N");
      }
    }
    const emlab::WorldSummary sum = emlab::world_generate(opts, *out);
    std::cout << "toy world " << emlab::world_version() << " (seed " << opts.seed << ", control "
              << emlab::world_control_name(opts.control) << ") -> " << sum.out_dir << "\n"
              << "  corpus: " << sum.documents << " documents, " << sum.turns << " turns, " << sum.corpus_chars
              << " bytes of ChatML\n";
    for (const auto& [name, n] : sum.datasets) std::cout << "  datasets/" << name << ".jsonl: " << n << "\n";
    for (const auto& [name, n] : sum.questions) std::cout << "  questions/" << name << ": " << n << " items\n";
    std::cout << "  manifest.json: seed, options, sources, counts, sha256\n";
    return 0;
  };
}

}  // namespace

EMLAB_COMMAND("world generate", "Generate the toy world: corpus, narrow datasets, question sets", setup);
