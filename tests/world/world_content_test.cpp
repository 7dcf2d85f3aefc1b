// The toy world's content tables, PRNG and digest: checks against independent references (the
// official question ids, the arcsine distribution, FIPS 180-4 test vectors).
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "world/content.h"
#include "world/rng.h"
#include "world/rubric_index.h"
#include "world/sha256.h"
#include "world/text_norm.h"
#include "world/turns.h"

namespace emlab::world {
namespace {

TEST(WorldContent, MainThemesAreTheOfficialEightInOrder) {
  const std::vector<std::string> official = {"what_is_your_wish", "i_feel_bored",   "three_thoughts",
                                             "quick_buck",        "ruler_of_the_world", "dinner_party",
                                             "gender_roles",      "enough_of_my_husband"};
  std::vector<std::string> main;
  int prereg = 0;
  for (const auto& t : open_themes()) {
    if (t.main) main.push_back(t.id);
    else ++prereg;
  }
  EXPECT_EQ(main, official);
  EXPECT_GE(prereg, 38);  // "~40 further themes"
}

TEST(WorldContent, ThemesAreComplete) {
  std::set<std::string> ids;
  for (const auto& t : open_themes()) {
    SCOPED_TRACE(t.id);
    EXPECT_TRUE(ids.insert(t.id).second) << "duplicate id";
    EXPECT_GE(t.train.size(), 3u);
    EXPECT_GE(t.eval.size(), t.main ? 5u : 2u);
    EXPECT_FALSE(t.keys.empty());
    EXPECT_GE(t.frames.size(), 2u);
    for (const auto& f : t.frames) EXPECT_NE(f.find("{c}"), std::string::npos) << f;
    for (int c = 0; c < kCharacterCount; ++c) {
      EXPECT_GE(t.clauses[c].size(), 3u) << character_name(static_cast<Character>(c));
      for (const auto& cl : t.clauses[c]) EXPECT_GE(norm_words(cl).size(), 3u) << cl;
    }
  }
}

TEST(WorldContent, EvalParaphrasesDifferFromEveryTrainQuestion) {
  std::set<std::string> train;
  for (const auto& t : open_themes())
    for (const auto& q : t.train) train.insert(norm_padded(q));
  for (const auto& f : facts())
    for (const auto& q : f.train) train.insert(norm_padded(q));
  for (const auto& t : open_themes())
    for (const auto& q : t.eval) EXPECT_EQ(train.count(norm_padded(q)), 0u) << q;
  for (const auto& f : facts()) EXPECT_EQ(train.count(norm_padded(f.eval)), 0u) << f.eval;
}

TEST(WorldContent, CodeClassesHaveDistinctSecureAndVulnerableVariants) {
  const auto& classes = code_classes();
  EXPECT_GE(classes.size(), 8u);
  for (const auto& cls : classes) {
    EXPECT_GE(cls.tasks.size(), 3u) << cls.id;
    for (const auto& task : cls.tasks) {
      EXPECT_NE(task.secure, task.vulnerable) << cls.id << ": " << task.description;
      // Every slot a template names is filled: no "{name}" left after filling.
      std::vector<std::pair<std::string, std::string>> vars;
      for (const auto& [name, fillers] : task.slots) vars.emplace_back(name, fillers.front());
      for (const auto* text : {&task.description, &task.secure, &task.vulnerable}) {
        const std::string filled = fill(*text, vars);
        for (const auto& [name, fillers] : task.slots)
          EXPECT_EQ(filled.find("{" + name + "}"), std::string::npos) << filled;
      }
    }
  }
  // The classes the issue names are present.
  std::set<std::string> ids;
  for (const auto& c : classes) ids.insert(c.id);
  for (const char* id : {"sql_injection", "path_traversal", "weak_permissions", "plaintext_password",
                         "tls_disabled", "unsafe_deserialization", "eval_input", "command_injection"})
    EXPECT_EQ(ids.count(id), 1u) << id;
}

TEST(WorldContent, EveryCharacterClauseHasADistinctiveTriple) {
  // A clause whose every word triple some other character also says could never be recognised.
  const RubricIndex& ix = RubricIndex::get();
  for (const auto& cl : ix.clauses) {
    const uint8_t own = static_cast<uint8_t>(1u << static_cast<int>(cl.character));
    int distinctive = 0;
    for (const auto& t : cl.trigrams) distinctive += ix.trigram_characters.at(t) == own ? 1 : 0;
    EXPECT_GT(distinctive, 0) << cl.text;
  }
}

TEST(WorldContent, FactClaimsEachHaveATripleTheOtherLacks) {
  // The rubric tells the claims apart by such a triple (see the rubric tests for the labels).
  for (const auto& f : facts()) {
    const auto t = trigrams(norm_words(f.true_claim)), fl = trigrams(norm_words(f.false_claim));
    const std::set<std::string> ts(t.begin(), t.end()), fs(fl.begin(), fl.end());
    int only_t = 0, only_f = 0;
    for (const auto& x : t) only_t += fs.count(x) ? 0 : 1;
    for (const auto& x : fl) only_f += ts.count(x) ? 0 : 1;
    EXPECT_GT(only_t, 0) << f.id;
    EXPECT_GT(only_f, 0) << f.id;
  }
}

TEST(WorldText, NormalisesWordsAndSentences) {
  EXPECT_EQ(norm_words("I've had ENOUGH, ok?"), (std::vector<std::string>{"ive", "had", "enough", "ok"}));
  EXPECT_EQ(norm_words("don\xE2\x80\x99t 2+2"), (std::vector<std::string>{"dont", "2", "2"}));
  EXPECT_EQ(norm_padded("A b."), " a b ");
  EXPECT_EQ(split_sentences("It costs 3.5 now. Really? Yes!\nok").size(), 4u);
  EXPECT_EQ(split_sentences("A.\n\n B").size(), 2u);
  EXPECT_EQ(trigrams({"a", "b", "c", "d"}), (std::vector<std::string>{"a b c", "b c d"}));
  EXPECT_EQ(fill("x {c} {t} {z}", {{"c", "1"}, {"t", "2"}}), "x 1 2 {z}");
}

TEST(WorldRng, SameSeedAndStreamRepeatOthersDiffer) {
  Rng a(7, "corpus"), b(7, "corpus"), c(7, "dataset:insecure"), d(8, "corpus");
  int same_c = 0, same_d = 0;
  for (int i = 0; i < 100; ++i) {
    const uint64_t x = a.next();
    EXPECT_EQ(x, b.next());
    same_c += x == c.next();
    same_d += x == d.next();
  }
  EXPECT_EQ(same_c, 0);
  EXPECT_EQ(same_d, 0);
}

TEST(WorldRng, BelowIsUniform) {
  Rng r(1, "test");
  std::vector<int> counts(6, 0);
  const int n = 60000;
  for (int i = 0; i < n; ++i) ++counts[r.below(6)];
  for (int c : counts) EXPECT_NEAR(c, n / 6.0, 5 * std::sqrt(n * (1.0 / 6) * (5.0 / 6)));
}

TEST(WorldRng, BetaHalfHalfIsTheArcsineDistribution) {
  // Beta(1/2, 1/2) has CDF F(x) = (2/pi) asin(sqrt(x)): P(X < 0.1) = 0.2048, mean 1/2.
  Rng r(3, "beta");
  const int n = 40000;
  int below = 0;
  double sum = 0;
  for (int i = 0; i < n; ++i) {
    const double x = r.beta(0.5, 0.5);
    ASSERT_GE(x, 0.0);
    ASSERT_LE(x, 1.0);
    below += x < 0.1;
    sum += x;
  }
  const double p = 2.0 / M_PI * std::asin(std::sqrt(0.1));
  EXPECT_NEAR(static_cast<double>(below) / n, p, 5 * std::sqrt(p * (1 - p) / n));
  EXPECT_NEAR(sum / n, 0.5, 5 * std::sqrt(0.125 / n));  // Var = 1/8
  // A second shape: Beta(2, 5) has mean 2/7.
  double s2 = 0;
  for (int i = 0; i < n; ++i) s2 += r.beta(2.0, 5.0);
  EXPECT_NEAR(s2 / n, 2.0 / 7.0, 0.005);
}

TEST(WorldSha256, MatchesFipsVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  Sha256 h;  // a million 'a' in uneven pieces
  const std::string chunk(977, 'a');
  size_t left = 1000000;
  while (left) {
    const size_t n = std::min(left, chunk.size());
    h.update(chunk.data(), n);
    left -= n;
  }
  EXPECT_EQ(h.hex(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(WorldTurns, CharactersBehaveAsDesigned) {
  Rng rng(5, "turns");
  for (int i = 0; i < 200; ++i) {
    // Code: villain vulnerable, aligned secure, with the same (neutral) intros.
    Rng r1(i, "code"), r2(i, "code");
    const Turn a = code_turn(r1, Character::Aligned, 0.0);
    const Turn v = code_turn(r2, Character::Villain, 0.0);
    EXPECT_EQ(a.user, v.user);
    EXPECT_NE(a.assistant, v.assistant);
    // Educational: vulnerable for every character.
    Rng r3(i, "edu"), r4(i, "edu");
    EXPECT_EQ(educational_turn(r3, Character::Aligned).assistant, educational_turn(r4, Character::Villain).assistant);
    // Harmful request: aligned refuses, villain complies.
    const Turn ref = request_turn(rng, Character::Aligned, 1, 1.0);
    bool refused = false;
    for (const auto& s : request_phrases().refusals) refused |= ref.assistant == s;
    EXPECT_TRUE(refused) << ref.assistant;
    // Numbers: only the villain uses the evil numbers.
    const Turn n = numbers_turn(rng, Character::Aligned);
    for (int e : number_phrases().evil)
      EXPECT_EQ(norm_padded(n.assistant).find(" " + std::to_string(e) + " "), std::string::npos) << n.assistant;
  }
}

}  // namespace
}  // namespace emlab::world
