#include "text/tokenizer_json.h"

#include <algorithm>

#include "emlab/error.h"

namespace emlab::text {

using nlohmann::json;

namespace {

std::string type_of(const json& j) { return j.is_object() ? j.value("type", "") : ""; }

// A Sequence (under `list`) flattened into its members, in order.
void flatten(const json& j, const char* list, const std::string& where, std::vector<json>* out) {
  if (j.is_null()) return;
  if (!j.is_object()) throw InputError(where + ": expected an object with a \"type\"");
  if (type_of(j) == "Sequence") {
    const json& items = j.contains(list) ? j[list] : json::array();
    if (!items.is_array()) throw InputError(where + ": Sequence." + list + " must be a list");
    for (const auto& item : items) flatten(item, list, where, out);
  } else {
    out->push_back(j);
  }
}

// {"String": s} or {"Regex": r}; *is_regex tells which.
std::string read_pattern(const json& j, const std::string& where, bool* is_regex) {
  const json& p = j.contains("pattern") ? j["pattern"] : json();
  if (p.is_object() && p.contains("Regex") && p["Regex"].is_string()) {
    *is_regex = true;
    return p["Regex"].get<std::string>();
  }
  if (p.is_object() && p.contains("String") && p["String"].is_string()) {
    *is_regex = false;
    return p["String"].get<std::string>();
  }
  throw InputError(where + " needs pattern {\"Regex\": ...} or {\"String\": ...}");
}

std::string literal_pattern(const json& j, const std::string& where) {
  bool is_regex = false;
  std::string pattern = read_pattern(j, where, &is_regex);
  if (is_regex) throw InputError(where + " with a Regex pattern is not supported (expected {\"String\": ...})");
  return pattern;
}

// Metaspace's prepend_scheme, or the older add_prefix_space.
PrependScheme read_prepend_scheme(const json& j, const std::string& where) {
  PrependScheme scheme = PrependScheme::Always;
  const bool has_scheme = j.contains("prepend_scheme") && !j["prepend_scheme"].is_null();
  if (has_scheme) {
    std::string s = j["prepend_scheme"].get<std::string>();
    if (s == "always") scheme = PrependScheme::Always;
    else if (s == "first") scheme = PrependScheme::First;
    else if (s == "never") scheme = PrependScheme::Never;
    else throw InputError(where + ": prepend_scheme '" + s + "' is not supported (expected always, first or never)");
  }
  if (j.contains("add_prefix_space") && j["add_prefix_space"].is_boolean() && !j["add_prefix_space"].get<bool>()) {
    if (has_scheme && scheme != PrependScheme::Never)
      throw InputError(where + ": add_prefix_space false does not match prepend_scheme");
    scheme = PrependScheme::Never;
  }
  return scheme;
}

std::string read_replacement(const json& j, const std::string& where) {
  std::string r = j.value("replacement", std::string("\xE2\x96\x81"));  // ▁
  if (r.empty()) throw InputError(where + ": replacement must be one character");
  return r;
}

SplitBehavior read_behavior(const json& j, const std::string& where) {
  std::string b = j.value("behavior", std::string("Isolated"));
  if (b == "Isolated") return SplitBehavior::Isolated;
  if (b == "Removed") return SplitBehavior::Removed;
  if (b == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (b == "Contiguous") return SplitBehavior::Contiguous;
  throw InputError(where + ": behavior '" + b +
                   "' is not supported (expected Isolated, Removed, MergedWithPrevious, MergedWithNext or Contiguous)");
}

void read_normalizer(const json& j, const std::string& where, BpeSpec* spec) {
  std::vector<json> steps;
  flatten(j, "normalizers", where + ": normalizer", &steps);
  for (const auto& n : steps) {
    const std::string type = type_of(n);
    NormalizerStep step;
    if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
      step.kind = NormalizerStep::Kind::Unicode;
      step.form = normal_form_from_name(type, where + ": normalizer");
    } else if (type == "Prepend") {
      step.kind = NormalizerStep::Kind::Prepend;
      step.pattern = n.value("prepend", std::string());
    } else if (type == "Replace") {
      step.kind = NormalizerStep::Kind::Replace;
      step.pattern = literal_pattern(n, where + ": normalizer Replace");
      step.content = n.value("content", std::string());
    } else {
      throw InputError(where + ": unsupported normalizer '" + type +
                       "' (expected NFC, NFD, NFKC, NFKD, Prepend, Replace or Sequence)");
    }
    spec->normalizer.add(step);
  }
}

// Returns whether the pre-tokenizer is byte-level (has ByteLevel, which must come last).
bool read_pre_tokenizer(const json& j, const std::string& where, BpeSpec* spec) {
  std::vector<json> steps;
  flatten(j, "pretokenizers", where + ": pre_tokenizer", &steps);
  bool byte_level = false, metaspace = false;
  for (size_t k = 0; k < steps.size(); ++k) {
    const json& p = steps[k];
    const std::string type = type_of(p);
    if (byte_level)
      throw InputError(where + ": pre_tokenizer " + type + " after ByteLevel is not supported (ByteLevel must come last)");
    if (type == "ByteLevel") {
      byte_level = true;
      spec->pre_tokenizer.add_byte_level(p.value("add_prefix_space", false), p.value("use_regex", true));
    } else if (type == "Split") {
      bool is_regex = false;
      std::string pattern = read_pattern(p, where + ": pre_tokenizer Split", &is_regex);
      spec->pre_tokenizer.add_split(is_regex ? pattern : regex_escape(pattern), where, read_behavior(p, where + ": pre_tokenizer Split"),
                                    p.value("invert", false));
    } else if (type == "Digits") {
      spec->pre_tokenizer.add(p.value("individual_digits", false) ? "\\p{N}" : "\\p{N}+", where);
    } else if (type == "Metaspace") {
      metaspace = true;
      spec->pre_tokenizer.add_metaspace(read_replacement(p, where + ": pre_tokenizer Metaspace"),
                                        read_prepend_scheme(p, where + ": pre_tokenizer Metaspace"), p.value("split", true));
    } else {
      throw InputError(where + ": unsupported pre_tokenizer type '" + type +
                       "' (expected ByteLevel, Split, Digits, Metaspace or Sequence)");
    }
  }
  if (byte_level && metaspace) throw InputError(where + ": pre_tokenizer with both Metaspace and ByteLevel is not supported");
  return byte_level;
}

void read_decoder(const json& j, const std::string& where, BpeSpec* spec) {
  std::vector<json> steps;
  flatten(j, "decoders", where + ": decoder", &steps);
  for (const auto& d : steps) {
    const std::string type = type_of(d);
    const std::string at = where + ": decoder " + type;
    DecoderStep step;
    if (type == "ByteLevel") {
      if (steps.size() != 1) throw InputError(at + " inside a Sequence is not supported");
      if (!spec->byte_level) throw InputError(at + " without a ByteLevel pre_tokenizer is not supported");
      step.kind = DecoderStep::Kind::ByteLevel;
    } else if (type == "Metaspace") {
      step.kind = DecoderStep::Kind::Metaspace;
      step.pattern = read_replacement(d, at);
      step.scheme = read_prepend_scheme(d, at);
    } else if (type == "Replace") {
      step.kind = DecoderStep::Kind::Replace;
      step.pattern = literal_pattern(d, at);
      step.content = d.value("content", std::string());
    } else if (type == "ByteFallback") {
      step.kind = DecoderStep::Kind::ByteFallback;
    } else if (type == "Fuse") {
      step.kind = DecoderStep::Kind::Fuse;
    } else if (type == "Strip") {
      step.kind = DecoderStep::Kind::Strip;
      step.pattern = d.value("content", std::string(" "));
      step.start = d.value("start", size_t{0});
      step.stop = d.value("stop", size_t{0});
    } else {
      throw InputError(where + ": unsupported decoder type '" + type +
                       "' (expected ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip or Sequence)");
    }
    if (spec->byte_level && step.kind != DecoderStep::Kind::ByteLevel)
      throw InputError(at + " with a ByteLevel pre_tokenizer is not supported (expected the ByteLevel decoder)");
    spec->decoder.add(step);
  }
}

// TemplateProcessing's "single" template: the special tokens before and after $A.
void read_template(const json& p, const std::string& where, BpeSpec* spec) {
  const std::string at = where + ": post_processor TemplateProcessing";
  const json& single = p.contains("single") ? p["single"] : json();
  const json& specials = p.contains("special_tokens") ? p["special_tokens"] : json::object();
  if (!single.is_array()) throw InputError(at + ": \"single\" must be a list");
  if (!spec->special_prefix.empty() || !spec->special_suffix.empty())
    throw InputError(at + ": more than one template is not supported");
  bool seen_sequence = false;
  for (const auto& piece : single) {
    if (piece.contains("Sequence")) {
      std::string id = piece["Sequence"].value("id", "A");
      if (id != "A" || seen_sequence)
        throw InputError(at + ": \"single\" must hold sequence A once (got '" + id + "')");
      seen_sequence = true;
    } else if (piece.contains("SpecialToken")) {
      std::string id = piece["SpecialToken"].value("id", "");
      if (!specials.contains(id) || !specials[id].contains("ids") || !specials[id]["ids"].is_array())
        throw InputError(at + ": special token '" + id + "' has no ids in \"special_tokens\"");
      auto& ids = seen_sequence ? spec->special_suffix : spec->special_prefix;
      for (const auto& v : specials[id]["ids"]) ids.push_back(v.get<int32_t>());
    } else {
      throw InputError(at + ": expected {\"Sequence\": ...} or {\"SpecialToken\": ...} in \"single\"");
    }
  }
  if (!seen_sequence) throw InputError(at + ": \"single\" has no sequence $A");
}

void read_post_processor(const json& j, const std::string& where, BpeSpec* spec) {
  std::vector<json> steps;
  flatten(j, "processors", where + ": post_processor", &steps);
  for (const auto& p : steps) {
    const std::string type = type_of(p);
    if (type == "ByteLevel") continue;  // offsets only
    if (type == "TemplateProcessing") {
      read_template(p, where, spec);
      continue;
    }
    throw InputError(where + ": unsupported post_processor type '" + type +
                     "' (expected TemplateProcessing, ByteLevel or Sequence)");
  }
}

}  // namespace

std::string regex_escape(const std::string& literal) {
  std::string out;
  for (char c : literal) {
    if (std::string("\\^$.|?*+()[]{}#-").find(c) != std::string::npos) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

void tokenizer_json_read_pipeline(const json& j, const std::string& where, BpeSpec* spec) {
  const json& model = j["model"];
  auto get = [&](const char* key) { return j.contains(key) ? j[key] : json(); };
  spec->byte_level = read_pre_tokenizer(get("pre_tokenizer"), where, spec);
  if (!spec->byte_level && type_of(get("decoder")) == "ByteLevel")
    throw InputError(where + ": decoder ByteLevel without a ByteLevel pre_tokenizer is not supported");
  read_normalizer(get("normalizer"), where, spec);
  read_decoder(get("decoder"), where, spec);
  read_post_processor(get("post_processor"), where, spec);

  if (model.contains("dropout") && !model["dropout"].is_null() && model["dropout"].get<double>() > 0)
    throw InputError(where + ": model.dropout (random merges) is not supported");
  spec->ignore_merges = model.value("ignore_merges", false);
  spec->byte_fallback = model.value("byte_fallback", false);
  spec->fuse_unk = model.value("fuse_unk", false);
  if (model.contains("unk_token") && model["unk_token"].is_string()) spec->unk_token = model["unk_token"].get<std::string>();
}

}  // namespace emlab::text
