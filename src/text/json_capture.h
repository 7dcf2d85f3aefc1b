// Reads tokenizer JSON files with the big parts (the vocabulary object, the merges array) taken
// straight from the SAX stream instead of through a DOM of 150k nodes (several times faster).
// Internal to src/text.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

namespace emlab::text {

struct CapturedVocab {
  std::vector<std::pair<std::string, int32_t>> vocab;  // token -> id, in file order
  std::vector<std::pair<std::string, std::string>> merges;  // "a b" or ["a", "b"], split
  bool has_vocab = false, has_merges = false;
};

// vocab.json / encoder.json: the whole file is one {"token": id} object. Throws InputError
// naming `where` when it is not.
void parse_vocab_json(const std::string& text, const std::string& where, CapturedVocab* out);

// tokenizer.json: returns the DOM with model.vocab and model.merges replaced by null; their
// contents go to *out. Throws InputError naming `where` for malformed JSON or entries.
nlohmann::json parse_tokenizer_json(const std::string& text, const std::string& where, CapturedVocab* out);

}  // namespace emlab::text
