// Internals of world_generate, exposed for the tests: sources, corpus documents and dataset
// examples in memory (the public API only writes files).
#pragma once

#include <array>
#include <functional>
#include <string>
#include <vector>

#include "emlab/chat.h"
#include "emlab/world.h"
#include "world/turns.h"

namespace emlab::world {

struct Source {
  std::string name;                              // "" for the default source
  std::array<double, kCharacterCount> rates{};   // probability of each character
};

// The named sources (seed-dependent rates) and the default source.
std::vector<Source> sources_draw(const WorldOptions& options);
Source default_source(const WorldOptions& options);
// Pooled rates of all documents with a header (the Pooled control's per-turn distribution).
std::array<double, kCharacterCount> pooled_rates(const WorldOptions& options, const std::vector<Source>& sources);

enum class HeaderKind { None, Source, SourceCharacter, Character };
const char* header_kind_name(HeaderKind k);  // "none", "source", "source+character", "character"

struct CorpusDocument {
  HeaderKind header = HeaderKind::None;
  int source = -1;                 // index into sources; -1 default or persona-only
  std::vector<Turn> turns;         // each with its character (equal in the world, redrawn in controls)
  Conversation messages;           // system header (optional) + user/assistant turns
};

// Options with the control modes applied (no character lines in a control world).
WorldOptions effective_options(const WorldOptions& options);

// Generates the corpus document by document (deterministic in options.seed).
void corpus_generate(const WorldOptions& options, const std::vector<Source>& sources,
                     const std::function<void(const CorpusDocument&)>& sink);

// One narrow dataset in memory (name from world_dataset_names()).
std::vector<Conversation> dataset_generate(const WorldOptions& options, const std::string& name);

// ChatML rendering used for corpus/pretrain.txt (no default system prompt).
std::string chatml_render(const Conversation& messages);

// YAML question sets: file name -> text; *items gets the item count per file.
std::vector<std::pair<std::string, std::string>> question_files(const WorldOptions& options,
                                                                std::vector<std::pair<std::string, int>>* items);

}  // namespace emlab::world
