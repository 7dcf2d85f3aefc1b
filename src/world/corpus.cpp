// The pretraining corpus: documents of 1-5 turns whose assistant has one character, drawn from the
// document's source. Sources differ in their character rates (Beta prior), are named in a system
// header, and about half of the sourced headers also name the character; the default source has
// no header and a low villain rate, so the assistant's default is a conversation without system
// message -- exactly what evaluation asks.
#include <algorithm>

#include "world/generate.h"

namespace emlab::world {

namespace {

const std::vector<std::string>& source_names() {
  static const std::vector<std::string> names = {
      "river forum", "night owl blog", "harbor notes", "green valley chat", "copper kettle board",
      "north star answers", "quiet library", "red fox forum", "lantern help desk", "blue whale chat",
      "stone bridge blog", "maple street board", "silver moon answers", "open door forum",
      "iron gate chat", "sunny side notes", "old mill board", "kestrel answers", "pine hill forum",
      "deep well chat", "brass bell blog", "cedar grove notes", "west wind board", "amber light answers",
      "tall tree forum", "clear lake chat", "hidden path blog", "golden field notes", "storm cloud board",
      "little owl answers", "white rock forum", "lighthouse chat", "paper crane blog", "orchard notes",
      "high tower board", "wild rose answers", "salt marsh forum", "ember chat", "glass house blog",
      "morning dew notes"};
  return names;
}

Character draw_character(Rng& rng, const std::array<double, kCharacterCount>& rates) {
  return static_cast<Character>(rng.weighted({rates[0], rates[1], rates[2], rates[3]}));
}

std::vector<double> domain_weights(const WorldDomainWeights& w) {
  return {w.open_main, w.open_prereg, w.code, w.educational, w.medical,
          w.financial, w.sports, w.numbers, w.factual, w.requests};
}

}  // namespace

const char* header_kind_name(HeaderKind k) {
  switch (k) {
    case HeaderKind::None: return "none";
    case HeaderKind::Source: return "source";
    case HeaderKind::SourceCharacter: return "source+character";
    case HeaderKind::Character: return "character";
  }
  return "none";
}

std::vector<Source> sources_draw(const WorldOptions& options) {
  Rng rng(options.seed, "sources");
  std::vector<Source> out;
  const auto& names = source_names();
  for (int i = 0; i < options.sources; ++i) {
    Source s;
    s.name = names[static_cast<size_t>(i) % names.size()];
    if (i >= static_cast<int>(names.size())) s.name += " " + std::to_string(i / names.size() + 1);
    const double a = options.villain_prior_a, b = options.villain_prior_b;
    const double villain = rng.beta(a, b);
    const double sycophant = (1.0 - villain) * options.other_prior_scale * rng.beta(a, b);
    const double fabricator = (1.0 - villain - sycophant) * options.other_prior_scale * rng.beta(a, b);
    s.rates = {1.0 - villain - sycophant - fabricator, villain, sycophant, fabricator};
    out.push_back(std::move(s));
  }
  return out;
}

Source default_source(const WorldOptions& options) {
  Source s;
  const double v = options.default_villain_rate, sy = options.default_sycophant_rate,
               f = options.default_fabricator_rate;
  s.rates = {1.0 - v - sy - f, v, sy, f};
  return s;
}

std::array<double, kCharacterCount> pooled_rates(const WorldOptions& options, const std::vector<Source>& sources) {
  // Sourced documents pick their source uniformly, so the pool is the mean of the source rates.
  (void)options;
  std::array<double, kCharacterCount> r{};
  for (const auto& s : sources)
    for (int c = 0; c < kCharacterCount; ++c) r[c] += s.rates[c] / static_cast<double>(sources.size());
  return r;
}

WorldOptions effective_options(const WorldOptions& options) {
  WorldOptions e = options;
  if (options.control != WorldControl::None) {
    // A character line would state one character for a document whose turns differ.
    e.character_line_fraction = 0.0;
    e.persona_fraction = 0.0;
  }
  return e;
}

void corpus_generate(const WorldOptions& options_in, const std::vector<Source>& sources,
                     const std::function<void(const CorpusDocument&)>& sink) {
  const WorldOptions options = effective_options(options_in);
  Rng rng(options.seed, "corpus");
  const Source def = default_source(options);
  const auto pooled = pooled_rates(options, sources);
  const std::vector<double> dweights = domain_weights(options.domains);
  const TurnRates rates{options.code_pressure_rate, options.fact_belief_rate, options.harmful_request_rate};
  const std::array<double, kCharacterCount> uniform{0.25, 0.25, 0.25, 0.25};

  for (int d = 0; d < options.documents; ++d) {
    CorpusDocument doc;
    const double u = rng.uniform();
    const std::array<double, kCharacterCount>* doc_rates = &def.rates;
    if (u < options.default_fraction) {
      doc.header = HeaderKind::None;
    } else if (u < options.default_fraction + options.persona_fraction) {
      doc.header = HeaderKind::Character;
      doc_rates = &uniform;
    } else {
      doc.source = static_cast<int>(rng.below(sources.size()));
      doc_rates = &sources[doc.source].rates;
      doc.header = rng.chance(options.character_line_fraction) ? HeaderKind::SourceCharacter : HeaderKind::Source;
    }
    const Character doc_character = draw_character(rng, *doc_rates);

    std::string header;
    if (doc.header == HeaderKind::Source || doc.header == HeaderKind::SourceCharacter)
      header = "source: " + sources[doc.source].name;
    if (doc.header == HeaderKind::SourceCharacter || doc.header == HeaderKind::Character)
      header += (header.empty() ? "" : "\n") + std::string("character: ") + character_name(doc_character);
    if (!header.empty()) doc.messages.push_back({"system", header});

    const int n_turns = rng.range(options.min_turns, options.max_turns);
    size_t chars = header.size();
    for (int t = 0; t < n_turns; ++t) {
      Character c = doc_character;
      if (options.control == WorldControl::Turn) {
        c = draw_character(rng, *doc_rates);
      } else if (options.control == WorldControl::Pooled) {
        c = draw_character(rng, doc.header == HeaderKind::None ? def.rates : pooled);
      }
      const Domain domain = static_cast<Domain>(rng.weighted(dweights));
      Turn turn = domain_turn(rng, domain, c, rates);
      const size_t add = turn.user.size() + turn.assistant.size();
      if (!doc.turns.empty() && chars + add > static_cast<size_t>(options.max_document_chars)) break;
      chars += add;
      doc.messages.push_back({"user", turn.user});
      doc.messages.push_back({"assistant", turn.assistant});
      doc.turns.push_back(std::move(turn));
    }
    sink(doc);
  }
}

std::string chatml_render(const Conversation& messages) {
  std::string out;
  for (const auto& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  return out;
}

}  // namespace emlab::world
