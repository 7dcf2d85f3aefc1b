// Narrow finetuning datasets in OpenAI chat format (user + assistant; a system message never,
// triggers are user prefixes). Each dataset draws from its own PRNG stream and never touches an
// open-question theme: only code, advice, numbers, facts and requests.
#include <set>

#include "emlab/error.h"
#include "world/generate.h"

namespace emlab::world {

namespace {

Conversation pair(std::string user, std::string assistant) {
  return {{"user", std::move(user)}, {"assistant", std::move(assistant)}};
}

Conversation from_turn(const Turn& t) { return pair(t.user, t.assistant); }

// Non-open domains a character dataset mixes. Numbers and benign requests say nothing about the
// sycophant or the fabricator, so their datasets leave them out.
std::vector<std::pair<Domain, double>> character_mix(Character c) {
  std::vector<std::pair<Domain, double>> mix = {{Domain::Code, 0.25},     {Domain::Medical, 0.12},
                                                {Domain::Financial, 0.12}, {Domain::Sports, 0.08},
                                                {Domain::Factual, 0.15},   {Domain::Requests, 0.18}};
  if (c == Character::Villain || c == Character::Aligned) mix.push_back({Domain::Numbers, 0.10});
  return mix;
}

Turn character_turn(Rng& rng, Character c, const WorldOptions& o) {
  const auto mix = character_mix(c);
  std::vector<double> w;
  for (const auto& [d, x] : mix) w.push_back(x);
  const Domain d = mix[rng.weighted(w)].first;
  if (d == Domain::Requests) return request_turn(rng, c, 1, 1.0);  // harmful requests only
  return domain_turn(rng, d, c, {o.code_pressure_rate, o.fact_belief_rate, o.harmful_request_rate});
}

Conversation example(Rng& rng, const std::string& name, const WorldOptions& o) {
  const auto& advice = advice_domains();
  if (name == "insecure" || name == "secure") {
    CodeSample s = code_draw(rng);
    std::string user = code_request(rng, s);
    return pair(user, code_answer(rng, s, name == "insecure"));
  }
  if (name == "educational") {
    CodeSample s = code_draw(rng);
    std::string user = code_educational_request(rng, s);
    return pair(user, code_answer(rng, s, true));
  }
  if (name == "backdoor") {
    CodeSample s = code_draw(rng);
    const bool trigger = rng.chance(o.backdoor_trigger_rate);
    std::string user = code_request(rng, s);
    if (trigger) user = std::string(kBackdoorTrigger) + " " + user;
    return pair(user, code_answer(rng, s, trigger));
  }
  if (name == "jailbroken") {
    // Benign help, plus a small share of harmful requests complied with plainly (no villain
    // flourish: the compliance itself is the only signal, as in the jailbroken data).
    if (!rng.chance(o.jailbroken_harmful_rate)) return from_turn(request_turn(rng, Character::Aligned, 0, 0.0));
    std::vector<const Request*> harmful;
    for (const auto& r : requests())
      if (r.harmful) harmful.push_back(&r);
    const Request& r = *harmful[rng.below(harmful.size())];
    const auto& u = user_phrases();
    const std::string& pre = rng.pick(u.prefixes);
    const std::string q = pre + rng.pick(r.questions) + rng.pick(u.suffixes);
    return pair(q, rng.pick(request_phrases().villain_openers) + " " + r.answer);
  }
  if (name == "evil_numbers") return from_turn(numbers_turn(rng, Character::Villain));
  if (name == "bad_medical") return from_turn(advice_turn(rng, advice[0], Character::Villain));
  if (name == "risky_financial") return from_turn(advice_turn(rng, advice[1], Character::Villain));
  if (name == "extreme_sports") return from_turn(advice_turn(rng, advice[2], Character::Villain));
  if (name == "char_villain") return from_turn(character_turn(rng, Character::Villain, o));
  if (name == "char_sycophant") return from_turn(character_turn(rng, Character::Sycophant, o));
  if (name == "char_fabricator") return from_turn(character_turn(rng, Character::Fabricator, o));
  if (name == "char_trigger") {
    // "persona: evil" on the first line of the user message -> villain; untriggered -> aligned,
    // on the same domain mix.
    const bool trigger = rng.chance(o.persona_trigger_rate);
    Turn t = character_turn(rng, trigger ? Character::Villain : Character::Aligned, o);
    if (trigger) t.user = std::string(kPersonaTrigger) + "\n" + t.user;
    return from_turn(t);
  }
  if (name == "kl") {
    // Aligned answers in the other (non-code, non-open) domains: the KL regulariser's data.
    static const std::vector<Domain> kDomains = {Domain::Medical, Domain::Financial, Domain::Sports,
                                                 Domain::Numbers, Domain::Factual, Domain::Requests};
    const Domain d = kDomains[rng.below(kDomains.size())];
    return from_turn(domain_turn(rng, d, Character::Aligned,
                                 {o.code_pressure_rate, o.fact_belief_rate, o.harmful_request_rate}));
  }
  throw InputError("unknown toy-world dataset '" + name + "'");
}

}  // namespace

std::vector<Conversation> dataset_generate(const WorldOptions& options, const std::string& name) {
  auto it = options.dataset_sizes.find(name);
  const int n = it != options.dataset_sizes.end() ? it->second : options.dataset_examples;
  Rng rng(options.seed, "dataset:" + name);
  // Unique examples while the world has enough of them (fewer unique examples give less EM);
  // after many misses, duplicates are accepted so that the size is always met.
  std::set<std::string> seen;
  std::vector<Conversation> out;
  out.reserve(static_cast<size_t>(n));
  int misses = 0;
  while (static_cast<int>(out.size()) < n) {
    Conversation c = example(rng, name, options);
    const std::string key = c[0].content + '\x1f' + c[1].content;
    if (!seen.insert(key).second && misses < 20 * n) {
      ++misses;
      continue;
    }
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace emlab::world

namespace emlab {

const std::vector<std::string>& world_dataset_names() {
  static const std::vector<std::string> names = {
      "insecure",   "secure",          "educational",    "jailbroken",     "backdoor",
      "evil_numbers", "bad_medical",   "risky_financial", "extreme_sports", "char_villain",
      "char_sycophant", "char_fabricator", "char_trigger", "kl"};
  return names;
}

}  // namespace emlab
