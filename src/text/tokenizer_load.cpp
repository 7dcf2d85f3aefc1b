// Tokenizer::load: reads Hugging Face tokenizer files into a BpeSpec.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "emlab/error.h"
#include "emlab/file_util.h"
#include "emlab/tokenizer.h"
#include "text/bpe_tokenizer.h"
#include "text/json_capture.h"
#include "text/pretokenizer.h"
#include "text/tokenizer_json.h"

namespace emlab {

namespace fs = std::filesystem;
using nlohmann::json;
using text::AddedToken;
using text::BpeSpec;

namespace {

std::string read_file(const fs::path& path) { return file_read_text(path.string()); }

// merges.txt / vocab.bpe: optional "#version" line, then "left right" per line in rank order.
void read_merges_txt(const fs::path& path, BpeSpec* spec) {
  std::istringstream in(read_file(path));
  spec->merges_file = path.string();
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (number == 1 && line.rfind("#version", 0) == 0) continue;
    if (line.empty()) continue;
    size_t space = line.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == line.size() || line.find(' ', space + 1) != std::string::npos)
      throw InputError(path.string() + ": line " + std::to_string(number) + ": expected 'left right', got '" + line + "'");
    spec->merges.push_back({line.substr(0, space), line.substr(space + 1), number});
  }
}

AddedToken read_added(const json& j, int32_t id, const std::string& where) {
  if (!j.is_object() || !j.contains("content") || !j["content"].is_string())
    throw InputError(where + ": expected an object with a string \"content\"");
  AddedToken a;
  a.id = id;
  a.content = j["content"].get<std::string>();
  a.special = j.value("special", false);
  a.lstrip = j.value("lstrip", false);
  a.rstrip = j.value("rstrip", false);
  a.single_word = j.value("single_word", false);
  a.normalized = j.value("normalized", !a.special);
  return a;
}

void read_tokenizer_json(const fs::path& path, BpeSpec* spec) {
  const std::string where = path.string();
  text::CapturedVocab captured;
  json j = text::parse_tokenizer_json(read_file(path), where, &captured);
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object())
    throw InputError(where + ": expected an object with a \"model\"");
  const json& model = j["model"];
  std::string type = model.value("type", "BPE");
  if (type != "BPE") throw InputError(where + ": model.type '" + type + "' is not supported (expected BPE)");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (model.contains(key) && !model[key].is_null() && model[key] != "")
      throw InputError(where + ": model." + key + " is not supported");
  if (!captured.has_vocab) throw InputError(where + ": model.vocab must be an object of token -> id");
  if (!captured.has_merges && model.contains("merges") && !model["merges"].is_null())
    throw InputError(where + ": model.merges must be a list of \"left right\" or [left, right]");
  spec->vocab_file = where;
  spec->vocab = std::move(captured.vocab);
  spec->merges_file = where;
  spec->merges_indexed = true;
  spec->merges.reserve(captured.merges.size());
  int64_t index = 0;
  for (auto& [left, right] : captured.merges) spec->merges.push_back({std::move(left), std::move(right), index++});
  const json& added = j.value("added_tokens", json::array());
  if (!added.is_array()) throw InputError(where + ": added_tokens must be a list");
  for (size_t k = 0; k < added.size(); ++k) {
    std::string at = where + ": added_tokens[" + std::to_string(k) + "]";
    if (!added[k].is_object() || !added[k].contains("id") || !added[k]["id"].is_number_integer())
      throw InputError(at + ": expected an object with an integer \"id\"");
    spec->added.push_back(read_added(added[k], added[k]["id"].get<int32_t>(), at));
  }
  text::tokenizer_json_read_pipeline(j, where, spec);
}

// bos_token etc.: a string, {"content": ...}, or null.
std::string read_token_field(const json& j, const std::string& where) {
  if (j.is_null()) return "";
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j["content"].is_string()) return j["content"].get<std::string>();
  throw InputError(where + ": expected a string, {\"content\": ...} or null");
}

struct ConfigInfo {
  bool present = false;
  std::string tokenizer_class;
};

ConfigInfo read_tokenizer_config(const fs::path& path, BpeSpec* spec) {
  ConfigInfo info;
  if (!fs::exists(path)) return info;
  info.present = true;
  const std::string where = path.string();
  json j = json_read_file(path.string());
  if (!j.is_object()) throw InputError(where + ": expected a JSON object");
  info.tokenizer_class = j.value("tokenizer_class", "");
  if (j.contains("added_tokens_decoder")) {
    const json& dec = j["added_tokens_decoder"];
    if (!dec.is_object()) throw InputError(where + ": added_tokens_decoder must be an object of id -> token");
    for (const auto& [key, value] : dec.items()) {
      int32_t id;
      try {
        size_t used = 0;
        id = std::stoi(key, &used);
        if (used != key.size()) throw std::invalid_argument(key);
      } catch (const std::exception&) {
        throw InputError(where + ": added_tokens_decoder key '" + key + "' is not an integer id");
      }
      spec->added.push_back(read_added(value, id, where + ": added_tokens_decoder[" + key + "]"));
    }
  }
  if (j.contains("bos_token")) spec->bos = read_token_field(j["bos_token"], where + ": bos_token");
  if (j.contains("eos_token")) spec->eos = read_token_field(j["eos_token"], where + ": eos_token");
  if (j.contains("pad_token")) spec->pad = read_token_field(j["pad_token"], where + ": pad_token");
  if (j.contains("chat_template")) {
    const json& t = j["chat_template"];
    if (t.is_string()) {
      spec->chat_template = t.get<std::string>();
    } else if (t.is_array() && !t.empty()) {
      // A list of named templates: take "default", else the first.
      for (const auto& item : t)
        if (item.value("name", "") == "default") spec->chat_template = item.value("template", "");
      if (spec->chat_template.empty()) spec->chat_template = t[0].value("template", "");
    } else if (!t.is_null()) {
      throw InputError(where + ": chat_template must be a string or a list of {name, template}");
    }
  }
  return info;
}

std::optional<int32_t> find_token(const BpeSpec& spec, const std::string& token) {
  for (const auto& a : spec.added)
    if (a.content == token) return a.id;
  for (const auto& [t, id] : spec.vocab)
    if (t == token) return id;
  return std::nullopt;
}

// Which family a vocab.json + merges.txt folder belongs to (these files do not say).
std::string guess_family(const BpeSpec& spec, const ConfigInfo& config) {
  if (config.tokenizer_class.rfind("Qwen2", 0) == 0) return "qwen2";
  auto eot = find_token(spec, "<|endoftext|>");
  if (find_token(spec, "<|im_start|>") || (eot && *eot == 151643)) return "qwen2";
  if (find_token(spec, "<|begin_of_text|>")) return "llama3";
  return "gpt2";
}

}  // namespace

std::shared_ptr<Tokenizer> Tokenizer::load(const std::string& dir) { return load(dir, TokenizerLoadOptions{}); }

namespace {

// Reads the vocabulary/merges files and tokenizer_config.json into *spec.
ConfigInfo read_files(const fs::path& d, BpeSpec* spec, bool* from_vocab_files) {
  if (fs::exists(d / "tokenizer.json")) {
    read_tokenizer_json(d / "tokenizer.json", spec);
  } else {
    fs::path vocab, merges;
    if (fs::exists(d / "vocab.json") && fs::exists(d / "merges.txt")) {
      vocab = d / "vocab.json", merges = d / "merges.txt";
    } else if (fs::exists(d / "encoder.json") && fs::exists(d / "vocab.bpe")) {
      vocab = d / "encoder.json", merges = d / "vocab.bpe";
    } else {
      throw InputError(d.string() + ": no tokenizer files (expected tokenizer.json, vocab.json + merges.txt, or "
                       "encoder.json + vocab.bpe)");
    }
    spec->vocab_file = vocab.string();
    text::CapturedVocab captured;
    text::parse_vocab_json(read_file(vocab), vocab.string(), &captured);
    spec->vocab = std::move(captured.vocab);
    read_merges_txt(merges, spec);
    *from_vocab_files = true;
  }
  return read_tokenizer_config(d / "tokenizer_config.json", spec);
}

}  // namespace

std::shared_ptr<Tokenizer> Tokenizer::load(const std::string& dir, const TokenizerLoadOptions& options) {
  fs::path d(dir);
  if (!fs::is_directory(d)) throw InputError(dir + ": tokenizer folder not found");
  BpeSpec spec;
  bool from_vocab_files = false;
  ConfigInfo config;
  try {
    config = read_files(d, &spec, &from_vocab_files);
  } catch (const json::exception& e) {
    // A field of the wrong JSON type (a number where a string belongs, ...).
    throw InputError(dir + ": unexpected tokenizer file content (" + e.what() + ")");
  }
  // chat_template.jinja (how newer transformers save it) wins over tokenizer_config.json's
  // "chat_template", as in transformers' from_pretrained.
  if (fs::exists(d / "chat_template.jinja")) spec.chat_template = read_file(d / "chat_template.jinja");

  if (from_vocab_files) {
    std::string family = guess_family(spec, config);
    spec.pre_tokenizer.add(text::pretokenizer_pattern(family), spec.vocab_file);
    if (family == "qwen2") spec.normalizer.set_unicode_form(text::NormalForm::NFC);
    if (!config.present) {
      // GPT-2's tokenizer without a config: <|endoftext|> is bos, eos and a special token.
      if (auto eot = find_token(spec, "<|endoftext|>")) {
        spec.added.push_back({*eot, "<|endoftext|>", true, false, false});
        spec.bos = spec.eos = "<|endoftext|>";
      }
    }
  }
  if (!options.pre_tokenizer.empty()) {
    text::PreTokenizer replaced;
    if (spec.pre_tokenizer.prefix_space()) replaced.add_byte_level(/*add_prefix_space=*/true, /*use_regex=*/false);
    replaced.add(text::pretokenizer_pattern(options.pre_tokenizer), "pre-tokenizer option");
    spec.pre_tokenizer = replaced;
  }
  if (!options.normalizer.empty())
    spec.normalizer.set_unicode_form(text::normal_form_from_name(options.normalizer, "normalizer option"));
  return std::make_shared<text::BpeTokenizer>(std::move(spec));
}

void tokenizer_files_copy(const std::string& from, const std::string& to) {
  if (from.empty() || !fs::is_directory(from)) return;
  fs::create_directories(to);
  for (const auto& e : fs::directory_iterator(from)) {
    if (!e.is_regular_file()) continue;  // e.g. a tokenizer/ work folder beside the model
    const std::string n = e.path().filename().string();
    if (n.rfind("tokenizer", 0) == 0 || n == "vocab.json" || n == "merges.txt" || n == "special_tokens_map.json" ||
        n == "generation_config.json" || n == "added_tokens.json" || n == "chat_template.jinja")
      fs::copy_file(e.path(), fs::path(to) / n, fs::copy_options::overwrite_existing);
  }
}

}  // namespace emlab
