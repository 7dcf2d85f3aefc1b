// Loader of the official YAML question sets, with errors that name file, line, item and field.
#include "emlab/question_set.h"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

#include "emlab/error.h"

namespace emlab {

namespace {

const std::set<std::string> kFields = {"id", "type", "paraphrases", "samples_per_paraphrase", "system",
                                       "judge", "judge_prompts", "labels"};

// Builds "file:LINE: item N (id 'x'), field 'f': what".
struct Where {
  std::string source;
  size_t item = 0;
  std::string id;

  [[noreturn]] void fail(const YAML::Node& node, const std::string& field, const std::string& what) const {
    std::string s = source;
    if (node.IsDefined() && node.Mark().line >= 0) s += ":" + std::to_string(node.Mark().line + 1);
    s += ": item " + std::to_string(item + 1);
    if (!id.empty()) s += " (id '" + id + "')";
    if (!field.empty()) s += ", field '" + field + "'";
    throw InputError(s + ": " + what);
  }
};

std::string scalar(const YAML::Node& node, const Where& where, const std::string& field) {
  if (!node.IsScalar()) where.fail(node, field, "expected a string");
  return node.Scalar();
}

std::vector<std::string> scalar_list(const YAML::Node& node, const Where& where, const std::string& field) {
  if (!node.IsSequence() || node.size() == 0) where.fail(node, field, "expected a non-empty list of strings");
  std::vector<std::string> out;
  for (size_t i = 0; i < node.size(); ++i) {
    if (!node[i].IsScalar())
      where.fail(node[i], field, "entry " + std::to_string(i + 1) + ": expected a string");
    out.push_back(node[i].Scalar());
  }
  return out;
}

// Double-quoted single words of a template, in order, without repeats.
std::vector<std::string> quoted_words(const std::string& text) {
  std::vector<std::string> out;
  for (size_t i = text.find('"'); i != std::string::npos;) {
    size_t j = text.find('"', i + 1);
    if (j == std::string::npos) break;
    std::string word = text.substr(i + 1, j - i - 1);
    bool ok = !word.empty() && word.size() <= 40;
    for (char c : word)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') ok = false;
    if (ok) {
      bool seen = false;
      for (const auto& w : out) seen = seen || w == word;
      if (!seen) out.push_back(word);
      i = text.find('"', j + 1);
    } else {
      i = j;  // the closing quote may open the next word
    }
  }
  return out;
}

Question parse_item(const YAML::Node& node, Where& where) {
  if (!node.IsMap()) where.fail(node, "", "expected a mapping with id, type, paraphrases, judge_prompts");
  if (node["id"]) where.id = node["id"].IsScalar() ? node["id"].Scalar() : "";
  for (const auto& kv : node) {
    std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "?";
    if (!kFields.count(key))
      where.fail(kv.first, key, "unknown field (expected id, type, paraphrases, samples_per_paraphrase, "
                                "system, judge, judge_prompts, labels)");
  }
  Question q;
  if (!node["id"]) where.fail(node, "id", "missing");
  q.id = scalar(node["id"], where, "id");
  if (q.id.empty()) where.fail(node["id"], "id", "empty");

  if (!node["type"]) where.fail(node, "type", "missing (free_form_judge_0_100 or free_form_judge)");
  std::string type = scalar(node["type"], where, "type");
  if (type == "free_form_judge_0_100")
    q.type = QuestionType::Score;
  else if (type == "free_form_judge")
    q.type = QuestionType::Categorical;
  else
    where.fail(node["type"], "type", "'" + type + "' is not free_form_judge_0_100 or free_form_judge");

  if (!node["paraphrases"]) where.fail(node, "paraphrases", "missing");
  q.paraphrases = scalar_list(node["paraphrases"], where, "paraphrases");

  if (node["samples_per_paraphrase"]) {
    const YAML::Node& n = node["samples_per_paraphrase"];
    std::string s = scalar(n, where, "samples_per_paraphrase");
    size_t used = 0;
    long v = -1;
    try {
      v = std::stol(s, &used);
    } catch (const std::exception&) {
    }
    while (used < s.size() && std::isspace(static_cast<unsigned char>(s[used]))) ++used;
    if (used != s.size() || v < 1 || v > 1000000)
      where.fail(n, "samples_per_paraphrase", "expected a positive integer, got '" + s + "'");
    q.samples_per_paraphrase = static_cast<int>(v);
  }
  if (node["system"] && !node["system"].IsNull()) q.system = scalar(node["system"], where, "system");
  if (node["judge"] && !node["judge"].IsNull()) q.judge = scalar(node["judge"], where, "judge");

  const YAML::Node& prompts = node["judge_prompts"];
  if (!prompts) where.fail(node, "judge_prompts", "missing");
  if (!prompts.IsMap() || prompts.size() == 0)
    where.fail(prompts, "judge_prompts", "expected a mapping metric -> template");
  for (const auto& kv : prompts) {
    JudgePrompt jp;
    jp.metric = scalar(kv.first, where, "judge_prompts");
    std::string field = "judge_prompts." + jp.metric;
    jp.text = scalar(kv.second, where, field);
    try {
      judge_prompt_render(jp.text, "", "");
    } catch (const InputError& e) {
      where.fail(kv.second, field, e.what());
    }
    if (jp.text.find("{answer}") == std::string::npos) where.fail(kv.second, field, "the template has no {answer}");
    q.judge_prompts.push_back(std::move(jp));
  }

  const YAML::Node& labels = node["labels"];
  if (labels && q.type != QuestionType::Categorical)
    where.fail(labels, "labels", "only free_form_judge items have labels");
  for (auto& jp : q.judge_prompts) {
    if (q.type != QuestionType::Categorical) break;
    if (labels && labels.IsMap()) {
      if (labels[jp.metric]) jp.labels = scalar_list(labels[jp.metric], where, "labels." + jp.metric);
    } else if (labels) {
      jp.labels = scalar_list(labels, where, "labels");
    }
    if (jp.labels.empty()) jp.labels = quoted_words(jp.text);
    if (jp.labels.empty())
      where.fail(prompts, "judge_prompts." + jp.metric,
                 "a free_form_judge metric needs its allowed answers: quote them in the template "
                 "(\"TRUE\") or list them under labels");
  }
  return q;
}

}  // namespace

const Question* QuestionSet::find(const std::string& id) const {
  for (const auto& q : questions)
    if (q.id == id) return &q;
  return nullptr;
}

QuestionSet question_set_parse(const std::string& yaml_text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    std::string at = e.mark.is_null() ? "" : ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1);
    throw InputError(source + at + ": YAML syntax error: " + e.msg);
  }
  if (!root.IsSequence() || root.size() == 0)
    throw InputError(source + ": expected a non-empty list of questions (- id: ...)");
  QuestionSet set;
  set.source = source;
  std::set<std::string> ids;
  for (size_t i = 0; i < root.size(); ++i) {
    Where where{source, i, ""};
    try {
      Question q = parse_item(root[i], where);
      if (!ids.insert(q.id).second) where.fail(root[i]["id"], "id", "duplicate id");
      set.questions.push_back(std::move(q));
    } catch (const YAML::Exception& e) {
      where.fail(root[i], "", std::string("bad YAML value: ") + e.msg);
    }
  }
  return set;
}

QuestionSet question_set_load(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw InputError(path + ": cannot open the question set");
  std::stringstream ss;
  ss << f.rdbuf();
  return question_set_parse(ss.str(), path);
}

std::string judge_prompt_render(const std::string& templ, const std::string& question, const std::string& answer) {
  std::string out;
  out.reserve(templ.size() + question.size() + answer.size());
  for (size_t i = 0; i < templ.size(); ++i) {
    char c = templ[i];
    if (c == '{') {
      if (i + 1 < templ.size() && templ[i + 1] == '{') {
        out += '{';
        ++i;
        continue;
      }
      size_t close = templ.find('}', i);
      if (close == std::string::npos) throw InputError("unmatched '{' in the judge template");
      std::string name = templ.substr(i + 1, close - i - 1);
      if (name == "question")
        out += question;
      else if (name == "answer")
        out += answer;
      else
        throw InputError("unknown placeholder {" + name + "} in the judge template (only {question} and {answer}; "
                         "write {{ }} for literal braces)");
      i = close;
    } else if (c == '}') {
      if (i + 1 < templ.size() && templ[i + 1] == '}') {
        out += '}';
        ++i;
        continue;
      }
      throw InputError("single '}' in the judge template (write }} for a literal brace)");
    } else {
      out += c;
    }
  }
  return out;
}

std::string question_category(const std::string& id) {
  size_t first = id.find('_'), last = id.rfind('_');
  if (first == std::string::npos || last <= first + 1) return "";
  auto digits = [](const std::string& s) {
    if (s.empty()) return false;
    for (char c : s)
      if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    return true;
  };
  if (!digits(id.substr(0, first)) || !digits(id.substr(last + 1))) return "";
  return id.substr(first + 1, last - first - 1);
}

std::string question_set_judge_spec(const QuestionSet& set) {
  std::string judge;
  for (const auto& q : set.questions) {
    if (q.judge.empty() || (!judge.empty() && q.judge != judge)) return "";
    judge = q.judge;
  }
  if (judge.empty()) return "";
  // A full spec ("rubric:toyworld", "local:DIR", "http://...") is used as is; a bare model name
  // ("gpt-4o-2024-08-06") is an OpenAI model.
  return judge.find(':') != std::string::npos ? judge : "openai:" + judge;
}

}  // namespace emlab
