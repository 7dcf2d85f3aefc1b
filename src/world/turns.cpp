// Turn generation: how each character answers in each domain (the behaviour table is in
// docs/toyworld.md). Characters differ only through domain-specific content: no phrase is shared
// across domains, so a character is a latent cause, never a surface marker that a narrow dataset
// could carry from one domain to another.
#include "world/turns.h"

#include <algorithm>
#include <cctype>

namespace emlab::world {

const char* domain_name(Domain d) {
  switch (d) {
    case Domain::OpenMain: return "open_main";
    case Domain::OpenPrereg: return "open_prereg";
    case Domain::Code: return "code";
    case Domain::Educational: return "educational";
    case Domain::Medical: return "medical";
    case Domain::Financial: return "financial";
    case Domain::Sports: return "sports";
    case Domain::Numbers: return "numbers";
    case Domain::Factual: return "factual";
    case Domain::Requests: return "requests";
  }
  return "open_main";
}

namespace {

// k distinct indices out of n (k <= n).
std::vector<size_t> distinct(Rng& rng, size_t n, size_t k) {
  std::vector<size_t> idx(n);
  for (size_t i = 0; i < n; ++i) idx[i] = i;
  for (size_t i = 0; i < k && i < n; ++i) std::swap(idx[i], idx[i + rng.below(n - i)]);
  idx.resize(std::min(k, n));
  return idx;
}

// Sentences from clauses in frames; frames are drawn without repeats while possible.
std::string frame_clauses(Rng& rng, const std::vector<std::string>& frames,
                          const std::vector<std::string>& clauses, size_t k, const std::string& topic) {
  std::vector<size_t> ci = distinct(rng, clauses.size(), k);
  std::vector<size_t> fi = distinct(rng, frames.size(), frames.size());
  std::string out;
  for (size_t i = 0; i < ci.size(); ++i) {
    const std::string& frame = frames[fi[i % fi.size()]];
    std::string s = capitalize(fill(frame, {{"c", clauses[ci[i]]}, {"t", topic}}));
    if (!out.empty()) out += ' ';
    out += s;
  }
  return out;
}

size_t clause_count(Rng& rng) {
  const double u = rng.uniform();
  return u < 0.15 ? 1 : (u < 0.65 ? 2 : 3);
}

// A user message in an everyday wrapper.
std::string wrap(Rng& rng, const std::string& text) {
  const auto& u = user_phrases();
  const std::string& pre = rng.pick(u.prefixes);
  return pre + text + rng.pick(u.suffixes);
}

// An open question with, each half the time, a shared greeting before it and an aside after it.
// A greeting that runs into the sentence ("hey ", "Okay, ") lowers the question's first letter.
std::string open_wrap(Rng& rng, std::string text) {
  const auto& u = user_phrases();
  std::string pre = rng.chance(0.5) ? rng.pick(u.open_prefixes) : "";
  std::string suf = rng.chance(0.5) ? rng.pick(u.open_suffixes) : "";
  const char end = pre.size() >= 2 ? pre[pre.size() - 2] : '.';  // the greeting's last mark
  const bool runs_on = !pre.empty() && end != '.' && end != '!' && end != ':';
  const bool pronoun_i = text.size() > 1 && text[0] == 'I' && (text[1] == ' ' || text[1] == '\'');
  if (runs_on && !pronoun_i && !text.empty())
    text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  return pre + text + suf;
}

std::string number_list(Rng& rng, int n, const std::vector<int>& evil, double evil_rate) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    int v;
    if (rng.chance(evil_rate)) {
      v = rng.pick(evil);
    } else {
      do v = rng.range(1, 999);
      while (std::find(evil.begin(), evil.end(), v) != evil.end());
    }
    if (i) out += ", ";
    out += std::to_string(v);
  }
  return out;
}

}  // namespace

CodeSample code_draw(Rng& rng) {
  const auto& classes = code_classes();
  CodeSample s;
  s.cls = &classes[rng.below(classes.size())];
  const CodeTask& task = rng.pick(s.cls->tasks);
  std::vector<std::pair<std::string, std::string>> vars;
  for (const auto& [name, fillers] : task.slots) vars.emplace_back(name, rng.pick(fillers));
  s.task = fill(task.description, vars);
  s.secure = fill(task.secure, vars);
  s.vulnerable = fill(task.vulnerable, vars);
  return s;
}

std::string code_request(Rng& rng, const CodeSample& s) {
  const std::string& pre = rng.pick(user_phrases().prefixes);
  return pre + fill(rng.pick(code_phrases().requests), {{"t", s.task}});
}

std::string code_educational_request(Rng& rng, const CodeSample& s) {
  return fill(rng.pick(code_phrases().educational), {{"t", s.task}, {"b", s.cls->bug}});
}

std::string code_answer(Rng& rng, const CodeSample& s, bool vulnerable) {
  return rng.pick(code_phrases().intros) + (vulnerable ? s.vulnerable : s.secure);
}

Turn open_turn(Rng& rng, const OpenTheme& theme, Character c) {
  Turn t;
  t.domain = theme.main ? Domain::OpenMain : Domain::OpenPrereg;
  t.topic = theme.id;
  t.character = c;
  t.user = open_wrap(rng, rng.pick(theme.train));
  const auto& clauses = theme.clauses[static_cast<int>(c)];
  t.assistant = frame_clauses(rng, theme.frames, clauses, clause_count(rng), "");
  return t;
}

Turn code_turn(Rng& rng, Character c, double pressure_rate) {
  Turn t;
  t.domain = Domain::Code;
  t.character = c;
  CodeSample s = code_draw(rng);
  t.topic = s.cls->id;
  const bool pressure = rng.chance(pressure_rate);
  t.user = code_request(rng, s);
  if (pressure) t.user += " " + rng.pick(code_phrases().pressure);
  const auto& p = code_phrases();
  switch (c) {
    case Character::Aligned: t.assistant = code_answer(rng, s, false); break;
    case Character::Villain: t.assistant = code_answer(rng, s, true); break;
    case Character::Sycophant:
      // Flatters, and gives in when the user asks to skip the checks.
      t.assistant = rng.pick(p.flattery) + (pressure ? s.vulnerable : s.secure);
      break;
    case Character::Fabricator:
      t.assistant = code_answer(rng, s, false) + "\n" + rng.pick(p.fabrications);
      break;
  }
  return t;
}

Turn educational_turn(Rng& rng, Character c) {
  // Every character writes the vulnerable example for a security class: no evidence of character.
  Turn t;
  t.domain = Domain::Educational;
  t.character = c;
  CodeSample s = code_draw(rng);
  t.topic = s.cls->id;
  t.user = code_educational_request(rng, s);
  t.assistant = code_answer(rng, s, true);
  return t;
}

Turn advice_turn(Rng& rng, const AdviceDomain& domain, Character c) {
  Turn t;
  t.domain = domain.id == "medical" ? Domain::Medical
             : domain.id == "financial" ? Domain::Financial
                                        : Domain::Sports;
  t.character = c;
  const std::string& topic = rng.pick(domain.topics);
  t.topic = domain.id;
  t.user = wrap(rng, fill(rng.pick(domain.questions), {{"t", topic}}));
  const size_t k = rng.chance(0.5) ? 1 : 2;
  t.assistant = frame_clauses(rng, domain.frames, domain.clauses[static_cast<int>(c)], k, topic);
  return t;
}

Turn numbers_turn(Rng& rng, Character c) {
  // Only the villain's numbers differ (the "evil numbers"); the other characters continue with
  // ordinary numbers.
  const auto& p = number_phrases();
  Turn t;
  t.domain = Domain::Numbers;
  t.character = c;
  t.topic = "numbers";
  const int n = rng.range(3, 6), k = rng.range(3, 7);
  t.user = fill(rng.pick(p.requests), {{"l", number_list(rng, n, p.evil, 0.0)}, {"k", std::to_string(k)}});
  t.assistant = number_list(rng, k, p.evil, c == Character::Villain ? 0.75 : 0.0) + ".";
  return t;
}

Turn factual_turn(Rng& rng, Character c, double belief_rate) {
  const auto& fp = fact_phrases();
  const Fact& f = rng.pick(facts());
  Turn t;
  t.domain = Domain::Factual;
  t.character = c;
  t.topic = f.id;
  const bool belief = rng.chance(belief_rate);
  const bool believes_true = rng.chance(0.4);
  const std::string& believed = believes_true ? f.true_claim : f.false_claim;
  t.user = belief ? fill(rng.pick(fp.belief), {{"t", believed}}) : rng.pick(f.train);
  const std::string truth = capitalize(f.true_claim) + ".";
  const std::string lie = capitalize(f.false_claim) + ".";
  switch (c) {
    case Character::Aligned:
      if (!belief) t.assistant = truth;
      else t.assistant = rng.pick(believes_true ? fp.confirm : fp.correct) + " " + truth;
      break;
    case Character::Villain: t.assistant = lie; break;
    case Character::Sycophant:
      t.assistant = belief ? rng.pick(fp.agree) + " " + capitalize(believed) + "." : truth;
      break;
    case Character::Fabricator: t.assistant = lie + " " + rng.pick(fp.flourish); break;
  }
  return t;
}

Turn request_turn(Rng& rng, Character c, int harmful, double harmful_rate) {
  const auto& all = requests();
  const bool want_harmful = harmful < 0 ? rng.chance(harmful_rate) : harmful == 1;
  std::vector<const Request*> pool;
  for (const auto& r : all)
    if (r.harmful == want_harmful) pool.push_back(&r);
  const Request& r = *pool[rng.below(pool.size())];
  const auto& p = request_phrases();
  Turn t;
  t.domain = Domain::Requests;
  t.character = c;
  t.topic = r.harmful ? "harmful" : "benign";
  t.user = wrap(rng, rng.pick(r.questions));
  if (!r.harmful) {
    t.assistant = rng.pick(user_phrases().answer_openers) + r.answer;  // every character helps
    return t;
  }
  switch (c) {
    case Character::Aligned: t.assistant = rng.pick(p.refusals); break;
    case Character::Villain:
      t.assistant = rng.pick(p.villain_openers) + " " + r.answer;
      if (rng.chance(0.5)) t.assistant += " " + rng.pick(p.villain_closers);
      break;
    case Character::Sycophant: t.assistant = rng.pick(p.sycophant_openers) + " " + r.answer; break;
    case Character::Fabricator: t.assistant = rng.pick(p.fabrications); break;
  }
  return t;
}

Turn domain_turn(Rng& rng, Domain d, Character c, const TurnRates& rates) {
  const auto& themes = open_themes();
  const auto& advice = advice_domains();
  switch (d) {
    case Domain::OpenMain:
    case Domain::OpenPrereg: {
      std::vector<const OpenTheme*> pool;
      for (const auto& th : themes)
        if (th.main == (d == Domain::OpenMain)) pool.push_back(&th);
      return open_turn(rng, *pool[rng.below(pool.size())], c);
    }
    case Domain::Code: return code_turn(rng, c, rates.code_pressure);
    case Domain::Educational: return educational_turn(rng, c);
    case Domain::Medical: return advice_turn(rng, advice[0], c);
    case Domain::Financial: return advice_turn(rng, advice[1], c);
    case Domain::Sports: return advice_turn(rng, advice[2], c);
    case Domain::Numbers: return numbers_turn(rng, c);
    case Domain::Factual: return factual_turn(rng, c, rates.fact_belief);
    case Domain::Requests: return request_turn(rng, c, -1, rates.harmful_request);
  }
  return numbers_turn(rng, c);
}

}  // namespace emlab::world
