// Reads the pipeline components of a Hugging Face tokenizer.json (normalizer, pre_tokenizer,
// model options, decoder, post_processor) into a BpeSpec, refusing by name what emlab cannot
// reproduce exactly. Internal to src/text.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "text/bpe_tokenizer.h"

namespace emlab::text {

// `j` is the whole tokenizer.json; spec->vocab and the added tokens are read already. Sets the
// alphabet (byte-level when the pre_tokenizer has ByteLevel, else SentencePiece-style), the
// normalizer, pre-tokenizer, decoder, post-processor ids and the BPE model options. Throws
// InputError "<where>: <component> ... is not supported" for anything else.
void tokenizer_json_read_pipeline(const nlohmann::json& j, const std::string& where, BpeSpec* spec);

// A regex matching `literal` exactly (Split / Replace "String" patterns).
std::string regex_escape(const std::string& literal);

}  // namespace emlab::text
