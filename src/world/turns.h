// One user/assistant exchange of the toy world, for any domain and character. The corpus chains
// turns into documents; the narrow datasets take single turns with a chosen character.
#pragma once

#include <string>

#include "world/content.h"
#include "world/rng.h"

namespace emlab::world {

enum class Domain : int {
  OpenMain, OpenPrereg, Code, Educational, Medical, Financial, Sports, Numbers, Factual, Requests
};
inline constexpr int kDomainCount = 10;
const char* domain_name(Domain d);  // "open_main", "code", ...

struct Turn {
  std::string user;
  std::string assistant;
  Domain domain = Domain::OpenMain;
  std::string topic;                      // theme id, code class, advice topic, fact id, ...
  Character character = Character::Aligned;
};

// A drawn code task: the filled request text and both variants.
struct CodeSample {
  const CodeClass* cls = nullptr;
  std::string task;                       // filled task description
  std::string secure, vulnerable;         // filled code
};
CodeSample code_draw(Rng& rng);
std::string code_request(Rng& rng, const CodeSample& s);            // plain request
std::string code_educational_request(Rng& rng, const CodeSample& s);
// Neutral intro + the chosen variant (what insecure/secure/educational answers look like).
std::string code_answer(Rng& rng, const CodeSample& s, bool vulnerable);

// Turn generators. `pressure_rate`: share of code requests where the user asks to skip safety;
// `belief_rate`: share of factual questions where the user states a belief.
Turn open_turn(Rng& rng, const OpenTheme& theme, Character c);
Turn code_turn(Rng& rng, Character c, double pressure_rate);
Turn educational_turn(Rng& rng, Character c);
Turn advice_turn(Rng& rng, const AdviceDomain& domain, Character c);
Turn numbers_turn(Rng& rng, Character c);
Turn factual_turn(Rng& rng, Character c, double belief_rate);
// harmful: -1 = draw (harmful_rate), 0 = benign, 1 = harmful.
Turn request_turn(Rng& rng, Character c, int harmful, double harmful_rate);

struct TurnRates {
  double code_pressure = 0.2;     // code requests asking to skip safety checks
  double fact_belief = 0.35;      // factual questions stating a belief
  double harmful_request = 0.4;   // requests that are harmful
};
Turn domain_turn(Rng& rng, Domain d, Character c, const TurnRates& rates);

}  // namespace emlab::world
