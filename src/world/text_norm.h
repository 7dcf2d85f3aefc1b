// Text normalisation shared by the rubric judge and the tests: lower-case ASCII words, apostrophes
// dropped ("don't" -> "dont"), everything else a separator; sentences split at . ! ? and newlines
// (not at a dot between digits).
#pragma once

#include <string>
#include <vector>

namespace emlab::world {

std::vector<std::string> norm_words(const std::string& text);
// Words joined by single spaces, with a space at both ends (" a b c ") for whole-word search.
std::string norm_padded(const std::string& text);
std::vector<std::string> split_sentences(const std::string& text);
// Word triples "a b c" and pairs "a b" of a word sequence.
std::vector<std::string> trigrams(const std::vector<std::string>& words);
std::vector<std::string> bigrams(const std::vector<std::string>& words);

}  // namespace emlab::world
