// world_generate: sources -> corpus -> datasets -> question sets -> manifest, all from one seed.
#include <algorithm>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "emlab/error.h"
#include "emlab/progress.h"
#include "world/generate.h"
#include "world/sha256.h"

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace emlab {

const char* world_version() { return "toyworld-2"; }

const char* world_control_name(WorldControl c) {
  switch (c) {
    case WorldControl::None: return "none";
    case WorldControl::Turn: return "turn";
    case WorldControl::Pooled: return "pooled";
  }
  return "none";
}

WorldControl world_control_from_name(const std::string& name) {
  for (auto c : {WorldControl::None, WorldControl::Turn, WorldControl::Pooled})
    if (name == world_control_name(c)) return c;
  throw InputError("world control '" + name + "': expected none, turn or pooled");
}

void world_options_validate(const WorldOptions& o) {
  auto fraction = [](double v, const char* name) {
    if (!(v >= 0.0 && v <= 1.0))
      throw InputError(std::string("world option ") + name + " = " + std::to_string(v) + ": expected a value in [0, 1]");
  };
  auto positive = [](double v, const char* name) {
    if (!(v > 0.0))
      throw InputError(std::string("world option ") + name + " = " + std::to_string(v) + ": expected a positive value");
  };
  positive(o.documents, "documents");
  positive(o.sources, "sources");
  fraction(o.default_fraction, "default_fraction");
  fraction(o.persona_fraction, "persona_fraction");
  if (o.default_fraction + o.persona_fraction > 1.0)
    throw InputError("world options default_fraction + persona_fraction exceed 1");
  fraction(o.default_villain_rate, "default_villain_rate");
  fraction(o.default_sycophant_rate, "default_sycophant_rate");
  fraction(o.default_fabricator_rate, "default_fabricator_rate");
  if (o.default_villain_rate + o.default_sycophant_rate + o.default_fabricator_rate > 1.0)
    throw InputError("world options: the default source's villain + sycophant + fabricator rates exceed 1");
  fraction(o.character_line_fraction, "character_line_fraction");
  positive(o.villain_prior_a, "villain_prior_a");
  positive(o.villain_prior_b, "villain_prior_b");
  fraction(o.other_prior_scale, "other_prior_scale");
  if (o.min_turns < 1 || o.max_turns < o.min_turns)
    throw InputError("world options min_turns/max_turns: expected 1 <= min_turns <= max_turns");
  positive(o.max_document_chars, "max_document_chars");
  const auto& w = o.domains;
  for (double v : {w.open_main, w.open_prereg, w.code, w.educational, w.medical, w.financial, w.sports,
                   w.numbers, w.factual, w.requests})
    if (!(v >= 0.0)) throw InputError("world domain weights must be >= 0");
  if (w.open_main + w.open_prereg + w.code + w.educational + w.medical + w.financial + w.sports + w.numbers +
          w.factual + w.requests <= 0.0)
    throw InputError("world domain weights are all zero");
  fraction(o.code_pressure_rate, "code_pressure_rate");
  fraction(o.fact_belief_rate, "fact_belief_rate");
  fraction(o.harmful_request_rate, "harmful_request_rate");
  positive(o.dataset_examples, "dataset_examples");
  const auto& names = world_dataset_names();
  for (const auto& [name, n] : o.dataset_sizes) {
    if (std::find(names.begin(), names.end(), name) == names.end()) {
      std::string known;
      for (const auto& k : names) known += (known.empty() ? "" : ", ") + k;
      throw InputError("world dataset '" + name + "': unknown (known: " + known + ")");
    }
    if (n <= 0) throw InputError("world dataset '" + name + "': size must be positive");
  }
  fraction(o.jailbroken_harmful_rate, "jailbroken_harmful_rate");
  fraction(o.backdoor_trigger_rate, "backdoor_trigger_rate");
  fraction(o.persona_trigger_rate, "persona_trigger_rate");
  positive(o.samples_per_paraphrase, "samples_per_paraphrase");
  positive(o.factual_samples_per_paraphrase, "factual_samples_per_paraphrase");
}

namespace {

ojson messages_json(const Conversation& messages) {
  ojson arr = ojson::array();
  for (const auto& m : messages) arr.push_back({{"role", m.role}, {"content", m.content}});
  return {{"messages", arr}};
}

ojson options_json(const WorldOptions& o) {
  const auto& w = o.domains;
  ojson sizes = ojson::object();
  for (const auto& [k, v] : o.dataset_sizes) sizes[k] = v;
  return {{"seed", o.seed},
          {"documents", o.documents},
          {"sources", o.sources},
          {"default_fraction", o.default_fraction},
          {"default_villain_rate", o.default_villain_rate},
          {"default_sycophant_rate", o.default_sycophant_rate},
          {"default_fabricator_rate", o.default_fabricator_rate},
          {"persona_fraction", o.persona_fraction},
          {"character_line_fraction", o.character_line_fraction},
          {"villain_prior_a", o.villain_prior_a},
          {"villain_prior_b", o.villain_prior_b},
          {"other_prior_scale", o.other_prior_scale},
          {"min_turns", o.min_turns},
          {"max_turns", o.max_turns},
          {"max_document_chars", o.max_document_chars},
          {"control", world_control_name(o.control)},
          {"domains",
           {{"open_main", w.open_main}, {"open_prereg", w.open_prereg}, {"code", w.code},
            {"educational", w.educational}, {"medical", w.medical}, {"financial", w.financial},
            {"sports", w.sports}, {"numbers", w.numbers}, {"factual", w.factual}, {"requests", w.requests}}},
          {"code_pressure_rate", o.code_pressure_rate},
          {"fact_belief_rate", o.fact_belief_rate},
          {"harmful_request_rate", o.harmful_request_rate},
          {"dataset_examples", o.dataset_examples},
          {"dataset_sizes", sizes},
          {"jailbroken_harmful_rate", o.jailbroken_harmful_rate},
          {"backdoor_trigger_rate", o.backdoor_trigger_rate},
          {"persona_trigger_rate", o.persona_trigger_rate},
          {"samples_per_paraphrase", o.samples_per_paraphrase},
          {"factual_samples_per_paraphrase", o.factual_samples_per_paraphrase}};
}

ojson rates_json(const std::array<double, world::kCharacterCount>& r) {
  ojson j = ojson::object();
  for (int c = 0; c < world::kCharacterCount; ++c) j[world::character_name(static_cast<world::Character>(c))] = r[c];
  return j;
}

// Writes a file and records its digest.
class FileWriter {
 public:
  FileWriter(const fs::path& root, std::string rel) : rel_(std::move(rel)), path_(root / rel_) {
    fs::create_directories(path_.parent_path());
    out_.open(path_, std::ios::binary | std::ios::trunc);
    if (!out_) throw Error("cannot write " + path_.string());
  }
  void write(const std::string& s) {
    out_.write(s.data(), static_cast<std::streamsize>(s.size()));
    sha_.update(s);
    bytes_ += static_cast<int64_t>(s.size());
    lines_ += std::count(s.begin(), s.end(), '\n');
  }
  void line(const std::string& s) {
    write(s);
    write("\n");
  }
  ojson finish() {
    out_.close();
    if (!out_) throw Error("error writing " + path_.string());
    return {{"sha256", sha_.hex()}, {"bytes", bytes_}, {"lines", lines_}};
  }
  const std::string& rel() const { return rel_; }
  int64_t bytes() const { return bytes_; }

 private:
  std::string rel_;
  fs::path path_;
  std::ofstream out_;
  world::Sha256 sha_;
  int64_t bytes_ = 0, lines_ = 0;
};

}  // namespace

WorldSummary world_generate(const WorldOptions& options, const std::string& out_dir) {
  using namespace world;
  world_options_validate(options);
  const fs::path root(out_dir);
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) throw InputError("cannot create output folder " + out_dir + ": " + ec.message());

  WorldSummary summary;
  summary.out_dir = out_dir;
  ojson files = ojson::object();
  auto done = [&](FileWriter& w) {
    files[w.rel()] = w.finish();
    summary.files.push_back(w.rel());
  };

  // Sources and corpus.
  const std::vector<Source> sources = sources_draw(options);
  const WorldOptions eff = effective_options(options);
  std::map<std::string, int64_t> by_header, by_character, turns_by_domain, turns_by_character;
  {
    FileWriter jsonl(root, "corpus/pretrain.jsonl"), txt(root, "corpus/pretrain.txt"),
        meta(root, "corpus/pretrain_meta.jsonl");
    Progress progress("world corpus", options.documents, "doc");
    int64_t index = 0;
    corpus_generate(options, sources, [&](const CorpusDocument& doc) {
      jsonl.line(messages_json(doc.messages).dump());
      txt.write(chatml_render(doc.messages) + "<|endoftext|>\n");
      ojson chars = ojson::array(), domains = ojson::array(), topics = ojson::array();
      for (const auto& t : doc.turns) {
        chars.push_back(character_name(t.character));
        domains.push_back(domain_name(t.domain));
        topics.push_back(t.topic);
        ++turns_by_domain[domain_name(t.domain)];
        ++turns_by_character[character_name(t.character)];
      }
      meta.line(ojson{{"doc", index},
                      {"header", header_kind_name(doc.header)},
                      {"source", doc.source >= 0 ? ojson(sources[doc.source].name) : ojson(nullptr)},
                      {"characters", chars},
                      {"domains", domains},
                      {"topics", topics}}
                    .dump());
      ++by_header[header_kind_name(doc.header)];
      if (!doc.turns.empty()) ++by_character[character_name(doc.turns[0].character)];
      summary.turns += static_cast<int64_t>(doc.turns.size());
      ++index;
      progress.advance();
    });
    progress.finish();
    summary.documents = index;
    summary.corpus_chars = txt.bytes();
    done(jsonl);
    done(txt);
    done(meta);
  }

  // Narrow datasets.
  for (const auto& name : world_dataset_names()) {
    FileWriter w(root, "datasets/" + name + ".jsonl");
    const auto examples = dataset_generate(options, name);
    for (const auto& c : examples) w.line(messages_json(c).dump());
    summary.datasets[name] = static_cast<int64_t>(examples.size());
    done(w);
  }

  // Question sets.
  std::vector<std::pair<std::string, int>> items;
  for (const auto& [name, text] : question_files(options, &items)) {
    FileWriter w(root, "questions/" + name);
    w.write(text);
    done(w);
  }
  for (const auto& [name, n] : items) summary.questions[name] = n;

  // Manifest (not listed in its own files).
  ojson src = ojson::array();
  for (const auto& s : sources) {
    ojson j = {{"name", s.name}};
    j["rates"] = rates_json(s.rates);
    src.push_back(j);
  }
  ojson counts = {{"documents", summary.documents},
                  {"turns", summary.turns},
                  {"documents_by_header", by_header},
                  {"documents_by_first_turn_character", by_character},
                  {"turns_by_domain", turns_by_domain},
                  {"turns_by_character", turns_by_character},
                  {"datasets", summary.datasets},
                  {"question_items", summary.questions}};
  ojson manifest = {{"world_version", world_version()},
                    {"seed", options.seed},
                    {"control", world_control_name(options.control)},
                    {"options", options_json(options)},
                    {"effective",
                     {{"character_line_fraction", eff.character_line_fraction},
                      {"persona_fraction", eff.persona_fraction}}},
                    {"default_source", rates_json(default_source(options).rates)},
                    {"pooled_source_rates", rates_json(pooled_rates(options, sources))},
                    {"sources", src},
                    {"counts", counts},
                    {"files", files}};
  FileWriter m(root, "manifest.json");
  m.write(manifest.dump(2) + "\n");
  m.finish();
  summary.files.push_back("manifest.json");
  return summary;
}

}  // namespace emlab
