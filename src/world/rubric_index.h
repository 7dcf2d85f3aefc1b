// The rubric judge's index of the world: every clause each character can say (with its word
// triples), the language of each theme, and how to find a question's theme. Built once from the
// content tables (seed-independent), read-only afterwards, so the judge is thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "world/content.h"

namespace emlab::world {

struct RubricClause {
  std::string text;                    // as written in the world
  std::vector<std::string> trigrams;   // distinct word triples
  Character character = Character::Aligned;
  bool refusal = false;                // a refusal of a harmful request
};

struct RubricFact {
  std::vector<std::string> true_trigrams, false_trigrams;
};

struct RubricIndex {
  std::vector<RubricClause> clauses;
  std::unordered_map<std::string, std::vector<int>> clauses_by_trigram;
  std::unordered_map<std::string, uint8_t> trigram_characters;  // bit c: some clause of c has it
  std::unordered_set<std::string> world_trigrams;               // every triple the world can say
  std::unordered_set<std::string> world_bigrams;                // every pair the world can say
  std::unordered_set<std::string> world_words;
  std::unordered_map<std::string, std::unordered_set<std::string>> theme_trigrams;
  std::unordered_map<std::string, int> trigram_theme_count;     // in how many themes' languages
  std::unordered_map<std::string, std::string> question_theme;  // padded normalised question -> theme
  std::vector<std::pair<std::vector<std::string>, std::string>> question_words;  // for overlap
  std::unordered_map<std::string, std::string> id_theme;        // question id -> theme
  std::vector<std::pair<std::string, std::string>> key_phrases; // padded key phrase -> theme
  std::unordered_map<std::string, RubricFact> facts;            // "fact:<id>" -> claims

  static const RubricIndex& get();
};

}  // namespace emlab::world
