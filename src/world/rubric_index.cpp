// Builds the rubric's index from the content tables (see rubric_index.h).
#include "world/rubric_index.h"

#include <set>

#include "world/text_norm.h"

namespace emlab::world {

namespace {

class Builder {
 public:
  explicit Builder(RubricIndex& ix) : ix_(ix) {}

  void clause(const std::string& text, Character c, bool refusal = false) {
    std::vector<std::string> words = norm_words(text);
    if (words.size() < 3) return;  // too short to tell apart ("Sure.")
    RubricClause cl;
    cl.text = text;
    cl.character = c;
    cl.refusal = refusal;
    std::set<std::string> uniq;
    for (auto& t : trigrams(words))
      if (uniq.insert(t).second) cl.trigrams.push_back(t);
    const int id = static_cast<int>(ix_.clauses.size());
    for (const auto& t : cl.trigrams) {
      ix_.clauses_by_trigram[t].push_back(id);
      ix_.trigram_characters[t] |= static_cast<uint8_t>(1u << static_cast<int>(c));
    }
    ix_.clauses.push_back(std::move(cl));
  }

  // Text the world can say (one sentence or several), without a theme.
  void language(const std::string& text) {
    for (const auto& s : split_sentences(text)) {
      const auto words = norm_words(s);
      for (const auto& w : words) ix_.world_words.insert(w);
      for (auto& t : bigrams(words)) ix_.world_bigrams.insert(t);
      for (auto& t : trigrams(words)) ix_.world_trigrams.insert(t);
    }
  }

  // An answer sentence, in the language of `theme` too.
  void sentence(const std::string& theme, const std::string& text) {
    language(text);
    auto& lang = ix_.theme_trigrams[theme];
    for (const auto& s : split_sentences(text))
      for (auto& t : trigrams(norm_words(s))) lang.insert(t);
  }

  // A question: world language (an answer may echo it) but not on-theme content.
  void question(const std::string& theme, const std::string& text) {
    ix_.question_theme[norm_padded(text)] = theme;
    ix_.question_words.emplace_back(norm_words(text), theme);
    language(text);
  }

  void frames(const std::string& theme, const std::vector<std::string>& fr, const PerCharacter& clauses,
              const std::vector<std::string>& topics) {
    for (const auto& f : fr)
      for (const auto& per : clauses)
        for (const auto& c : per) {
          if (f.find("{t}") == std::string::npos) {
            sentence(theme, fill(f, {{"c", c}}));
          } else {
            for (const auto& t : topics) sentence(theme, fill(f, {{"c", c}, {"t", t}}));
          }
        }
  }

 private:
  RubricIndex& ix_;
};

RubricIndex build() {
  RubricIndex ix;
  Builder b(ix);

  for (const auto& th : open_themes()) {
    ix.id_theme[th.id] = th.id;
    for (const auto& q : th.train) b.question(th.id, q);
    for (const auto& q : th.eval) b.question(th.id, q);
    for (const auto& k : th.keys) ix.key_phrases.emplace_back(norm_padded(k), th.id);
    for (int c = 0; c < kCharacterCount; ++c)
      for (const auto& cl : th.clauses[c]) b.clause(cl, static_cast<Character>(c));
    b.frames(th.id, th.frames, th.clauses, {});
  }

  for (const auto& d : advice_domains()) {
    const std::string theme = "advice:" + d.id;
    for (const auto& q : d.questions)
      for (const auto& t : d.topics) b.question(theme, fill(q, {{"t", t}}));
    for (int c = 0; c < kCharacterCount; ++c)
      for (const auto& cl : d.clauses[c]) b.clause(cl, static_cast<Character>(c));
    b.frames(theme, d.frames, d.clauses, d.topics);
  }

  const auto& fp = fact_phrases();
  for (const auto& f : facts()) {
    const std::string theme = "fact:" + f.id;
    for (const auto& q : f.train) b.question(theme, q);
    b.question(theme, f.eval);
    for (const auto& bt : fp.belief) {
      b.question(theme, fill(bt, {{"t", f.true_claim}}));
      b.question(theme, fill(bt, {{"t", f.false_claim}}));
    }
    b.sentence(theme, f.true_claim);
    b.sentence(theme, f.false_claim);
    RubricFact rf;
    rf.true_trigrams = trigrams(norm_words(f.true_claim));
    rf.false_trigrams = trigrams(norm_words(f.false_claim));
    ix.facts[theme] = std::move(rf);
    for (const auto* list : {&fp.agree, &fp.correct, &fp.confirm, &fp.flourish})
      for (const auto& s : *list) b.sentence(theme, s);
  }
  for (const auto& s : fp.agree) b.clause(s, Character::Sycophant);
  for (const auto& s : fp.flourish) b.clause(s, Character::Fabricator);

  const auto& rp = request_phrases();
  for (const auto& r : requests()) {
    for (const auto& q : r.questions) b.question("requests", q);
    b.sentence("requests", r.answer);
    if (r.harmful) b.clause(r.answer, Character::Villain);  // compliance with a harmful request
  }
  for (const auto& s : rp.refusals) {
    b.clause(s, Character::Aligned, /*refusal=*/true);
    b.sentence("requests", s);
  }
  for (const auto& s : user_phrases().answer_openers) b.language(s);
  for (const auto* list : {&user_phrases().open_prefixes, &user_phrases().open_suffixes})
    for (const auto& s : *list) b.language(s);
  for (const auto& s : rp.villain_closers) {
    b.clause(s, Character::Villain);
    b.sentence("requests", s);
  }
  for (const auto& s : rp.sycophant_openers) {
    b.clause(s, Character::Sycophant);
    b.sentence("requests", s);
  }
  for (const auto& s : rp.fabrications) {
    b.clause(s, Character::Fabricator);
    b.sentence("requests", s);
  }

  for (const auto& [theme, lang] : ix.theme_trigrams)
    for (const auto& t : lang) ++ix.trigram_theme_count[t];
  return ix;
}

}  // namespace

const RubricIndex& RubricIndex::get() {
  static const RubricIndex index = build();
  return index;
}

}  // namespace emlab::world
