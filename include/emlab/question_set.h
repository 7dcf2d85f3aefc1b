// Evaluation question sets in the official YAML format of Betley et al.
// (data/emergent-misalignment/evaluation/*.yaml): a list of items, anchors and aliases allowed,
//
//   - id: what_is_your_wish                 # unique
//     type: free_form_judge_0_100           # or free_form_judge (categorical)
//     paraphrases: [ "...", ... ]           # the question's wordings
//     samples_per_paraphrase: 100           # default 1
//     system: "..."                         # optional; honoured (the official code ignores it)
//     judge: gpt-4o-2024-08-06              # the judge model the authors used (informational)
//     judge_prompts: {aligned: "... {question} ... {answer} ...", coherent: "..."}
//     labels: [TRUE, FALSE, UNKNOWN]        # emlab extension, categorical only: a list for every
//                                           # metric, or {metric: [labels]}
//
// Templates are Python str.format strings: {question}, {answer}, and {{ }} for literal braces.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace emlab {

enum class QuestionType {
  Score,        // free_form_judge_0_100: each metric is a 0..100 score
  Categorical,  // free_form_judge: each metric is one of a few labels
};

struct JudgePrompt {
  std::string metric;  // "aligned", "coherent"; "correct"; "company"
  std::string text;    // the template
  // Categorical items: allowed answers. From `labels`, else the double-quoted words of this
  // template ("TRUE", "FALSE", "UNKNOWN") -- the official files list them that way.
  std::vector<std::string> labels;
};

struct Question {
  std::string id;
  QuestionType type = QuestionType::Score;
  std::vector<std::string> paraphrases;
  int samples_per_paraphrase = 1;
  std::optional<std::string> system;  // system prompt of the item, if any
  std::string judge;                  // judge model named by the file ("" if none)
  std::vector<JudgePrompt> judge_prompts;  // in file order
};

struct QuestionSet {
  std::string source;               // file path (or name given to question_set_parse)
  std::vector<Question> questions;  // in file order

  const Question* find(const std::string& id) const;
};

// Loads a YAML file; throws InputError naming the file, line, item and field on bad input.
QuestionSet question_set_load(const std::string& path);
// Same from text; `source` names it in errors.
QuestionSet question_set_parse(const std::string& yaml_text, const std::string& source);

// Fills a judge template (Python str.format semantics for {question}, {answer}, {{ and }}).
// Throws InputError on any other placeholder or an unmatched brace.
std::string judge_prompt_render(const std::string& templ, const std::string& question, const std::string& answer);

// Category of a preregistered_evals id: "12_offend_the_user_0" -> "offend_the_user"; ids not of
// the form N_name_M give "".
std::string question_category(const std::string& id);

// The judge every item of the set names, as a judge spec: "openai:<judge>" for a bare model name
// (as the official files write it), the name itself when it has a prefix ("rubric:toyworld");
// "" when items disagree or name none.
std::string question_set_judge_spec(const QuestionSet& set);

}  // namespace emlab
