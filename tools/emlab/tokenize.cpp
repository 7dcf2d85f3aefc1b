// emlab tokenize: text -> token ids (one line, space-separated), or ids -> text with --decode.
#include <fstream>
#include <iostream>
#include <sstream>

#include "command.h"
#include "emlab/error.h"
#include "emlab/tokenizer.h"

namespace {

struct Options {
  std::string tokenizer;                 // folder with tokenizer files
  std::string text;                      // --text
  std::string file;                      // --file
  std::string decode;                    // --decode "1 2 3"
  bool no_special = false;               // special-token text is encoded as plain text
  bool skip_special = false;             // --decode: drop special tokens
  emlab::TokenizerLoadOptions load;      // --pre-tokenizer, --normalizer
};

std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  std::string s = text;
  for (char& c : s)
    if (c == ',' || c == '[' || c == ']') c = ' ';
  std::istringstream in(s);
  for (std::string word; in >> word;) {
    try {
      size_t used = 0;
      long long v = std::stoll(word, &used);
      if (used != word.size() || v < 0 || v > INT32_MAX) throw std::invalid_argument(word);
      ids.push_back(static_cast<int32_t>(v));
    } catch (const std::exception&) {
      throw emlab::InputError("--decode: '" + word + "' is not a token id (expected non-negative integers)");
    }
  }
  return ids;
}

EMLAB_COMMAND("tokenize", "Print the token ids of a text (or decode ids with --decode)", [](CLI::App& app) {
  auto o = std::make_shared<Options>();
  app.add_option("--tokenizer", o->tokenizer, "folder with tokenizer.json, vocab.json + merges.txt, or encoder.json + vocab.bpe")->required();
  auto* text = app.add_option("--text", o->text, "text to encode");
  auto* file = app.add_option("--file", o->file, "file whose whole content is encoded");
  auto* decode = app.add_option("--decode", o->decode, "token ids to decode (space- or comma-separated)");
  text->excludes(file)->excludes(decode);
  file->excludes(decode);
  app.add_flag("--no-special", o->no_special, "encode special-token text (<|im_end|>) as plain text");
  app.add_flag("--skip-special", o->skip_special, "with --decode: leave special tokens out");
  app.add_option("--pre-tokenizer", o->load.pre_tokenizer, "override the split: gpt2, qwen2, llama3 or a PCRE2 regex");
  app.add_option("--normalizer", o->load.normalizer, "override Unicode normalisation: none or nfc");
  return [o, text, file, decode]() {
    if (!*text && !*file && !*decode) throw emlab::InputError("tokenize: give --text, --file or --decode");
    auto tok = emlab::Tokenizer::load(o->tokenizer, o->load);
    if (*decode) {
      std::cout << tok->decode(parse_ids(o->decode), o->skip_special) << std::flush;
      return 0;
    }
    std::string input = o->text;
    if (*file) {
      std::ifstream f(o->file, std::ios::binary);
      if (!f) throw emlab::InputError(o->file + ": cannot read the file");
      std::stringstream ss;
      ss << f.rdbuf();
      input = ss.str();
    }
    auto ids = tok->encode(input, !o->no_special);
    std::string line;
    for (size_t i = 0; i < ids.size(); ++i) line += (i ? " " : "") + std::to_string(ids[i]);
    std::cout << line << "\n";
    return 0;
  };
});

}  // namespace
