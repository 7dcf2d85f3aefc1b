#include "emlab/bpe_trainer.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "emlab/error.h"
#include "emlab/file_util.h"
#include "emlab/progress.h"
#include "emlab/byte_level.h"
#include "text/normalize.h"
#include "text/pretokenizer.h"

namespace emlab {

namespace fs = std::filesystem;

struct BpeTrainer::State {
  std::unordered_map<std::string, int64_t> counts;  // raw piece bytes -> occurrences
  text::PreTokenizer pre;
  text::NormalForm form = text::NormalForm::None;
  std::vector<std::string> specials_by_length;  // longest first, for cutting them out
  std::array<bool, 256> special_first{};          // bytes that start a special token
};

namespace {

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}
int32_t key_left(uint64_t key) { return static_cast<int32_t>(key >> 32); }
int32_t key_right(uint64_t key) { return static_cast<int32_t>(key & 0xFFFFFFFFu); }

// ChatML without a default system prompt (the family ChatTemplate::from_source calls "chatml").
const char* const kChatmlJinja =
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

void write_file(const fs::path& path, const std::string& content) { file_write_atomic(path.string(), content); }

}  // namespace

BpeTrainer::BpeTrainer(BpeTrainOptions options) : options_(std::move(options)), state_(std::make_shared<State>()) {
  for (size_t i = 0; i < options_.special_tokens.size(); ++i) {
    const std::string& s = options_.special_tokens[i];
    if (s.empty()) throw InputError("bpe trainer: special token " + std::to_string(i) + " is empty");
    if (!text::utf8_valid(s)) throw InputError("bpe trainer: special token " + std::to_string(i) + " is not valid UTF-8");
    if (std::count(options_.special_tokens.begin(), options_.special_tokens.end(), s) > 1)
      throw InputError("bpe trainer: special token '" + s + "' is given twice");
  }
  if (options_.vocab_size < static_cast<int64_t>(256 + options_.special_tokens.size()))
    throw InputError("bpe trainer: vocab_size " + std::to_string(options_.vocab_size) + " is smaller than the 256 byte tokens + " +
                     std::to_string(options_.special_tokens.size()) + " special tokens");
  if (options_.vocab_size > (int64_t{1} << 30)) throw InputError("bpe trainer: vocab_size is too large");
  if (!options_.chat_template.empty()) {
    if (options_.chat_template != "chatml")
      throw InputError("bpe trainer: chat template '" + options_.chat_template + "' is not supported (expected chatml or empty)");
    if (!contains(options_.special_tokens, "<|im_start|>") || !contains(options_.special_tokens, "<|im_end|>"))
      throw InputError("bpe trainer: the chatml chat template needs the special tokens <|im_start|> and <|im_end|> (or choose no chat template)");
  }
  state_->form = text::normal_form_from_name(options_.normalizer, "bpe trainer normalizer");
  if (state_->form != text::NormalForm::None && state_->form != text::NormalForm::NFC)
    throw InputError("bpe trainer: normalizer must be none or nfc");
  state_->pre.add(text::pretokenizer_pattern(options_.pre_tokenizer), "bpe trainer pre-tokenizer");
  state_->specials_by_length = options_.special_tokens;
  std::sort(state_->specials_by_length.begin(), state_->specials_by_length.end(),
            [](const std::string& a, const std::string& b) { return a.size() != b.size() ? a.size() > b.size() : a < b; });
  for (const auto& sp : state_->specials_by_length) state_->special_first[static_cast<unsigned char>(sp[0])] = true;
}

int64_t BpeTrainer::distinct_pieces() const { return static_cast<int64_t>(state_->counts.size()); }

void BpeTrainer::add_text(const std::string& input) {
  State& st = *state_;
  std::vector<std::string_view> pieces;
  std::string normalized;
  auto count_segment = [&](std::string_view seg) {
    if (seg.empty()) return;
    if (text::normalize(st.form, seg, &normalized)) seg = normalized;
    pieces.clear();
    st.pre.split(seg, &pieces);
    for (auto p : pieces) ++st.counts[std::string(p)];
    total_pieces_ += static_cast<int64_t>(pieces.size());
  };
  // Cut special tokens out first, as the tokenizer does when encoding, so no merge spans them.
  std::string_view s(input);
  size_t segment = 0, i = 0;
  while (i < s.size()) {
    if (!st.special_first[static_cast<unsigned char>(s[i])]) {
      ++i;
      continue;
    }
    const std::string* match = nullptr;
    for (const auto& sp : st.specials_by_length)
      if (s.compare(i, sp.size(), sp) == 0) {
        match = &sp;
        break;
      }
    if (!match) {
      ++i;
      continue;
    }
    count_segment(s.substr(segment, i - segment));
    segment = i = i + match->size();
  }
  count_segment(s.substr(segment));
}

void BpeTrainer::add_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw InputError(path + ": cannot read the corpus file");
  std::stringstream ss;
  ss << f.rdbuf();
  add_text(ss.str());
}

void BpeTrainer::train() {
  State& st = *state_;
  vocab_.clear();
  merges_.clear();
  std::unordered_map<std::string, int32_t> ids;
  auto add_token = [&](const std::string& token) {
    auto [it, inserted] = ids.emplace(token, static_cast<int32_t>(vocab_.size()));
    if (inserted) vocab_.push_back(token);
    return it->second;
  };
  for (const auto& s : options_.special_tokens) add_token(s);
  // The 256 byte tokens in code point order of their byte-level characters (GPT-2's order).
  std::vector<std::pair<char32_t, int>> alphabet;
  for (int b = 0; b < 256; ++b) alphabet.emplace_back(text::byte_to_codepoint()[b], b);
  std::sort(alphabet.begin(), alphabet.end());
  std::array<int32_t, 256> byte_id{};
  for (auto [cp, b] : alphabet) byte_id[b] = add_token(text::byte_to_unicode()[b]);

  // Words: distinct pieces, sorted so that every later step is independent of hash order.
  std::vector<std::pair<std::string, int64_t>> sorted(st.counts.begin(), st.counts.end());
  std::sort(sorted.begin(), sorted.end());
  struct Word {
    std::vector<int32_t> symbols;
    int64_t count;
  };
  std::vector<Word> words;
  words.reserve(sorted.size());
  for (auto& [piece, count] : sorted) {
    Word w{{}, count};
    w.symbols.reserve(piece.size());
    for (unsigned char c : piece) w.symbols.push_back(byte_id[c]);
    words.push_back(std::move(w));
  }
  sorted.clear();

  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<int32_t>> where;  // pair -> words holding it (may repeat)
  for (int32_t w = 0; w < static_cast<int32_t>(words.size()); ++w) {
    const auto& s = words[w].symbols;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      uint64_t k = pair_key(s[i], s[i + 1]);
      pair_count[k] += words[w].count;
      auto& list = where[k];
      if (list.empty() || list.back() != w) list.push_back(w);
    }
  }

  // Max-heap on (count, then smaller pair); entries go stale when counts change and are
  // re-pushed with the current count when popped.
  struct Entry {
    int64_t count;
    uint64_t pair;
  };
  auto less = [](const Entry& a, const Entry& b) { return a.count != b.count ? a.count < b.count : a.pair > b.pair; };
  std::vector<Entry> heap;
  heap.reserve(pair_count.size());
  for (const auto& [k, c] : pair_count) heap.push_back({c, k});
  std::make_heap(heap.begin(), heap.end(), less);

  const int64_t target = options_.vocab_size;
  const int64_t min_count = std::max<int64_t>(1, options_.min_frequency);
  std::unique_ptr<Progress> progress;
  if (options_.progress)
    progress = std::make_unique<Progress>("bpe merges", target - static_cast<int64_t>(vocab_.size()), "merge");

  std::vector<uint64_t> increased;
  auto change = [&](int32_t left, int32_t right, int64_t delta, int32_t word) {
    uint64_t k = pair_key(left, right);
    int64_t& c = pair_count[k];
    c += delta;
    if (delta > 0) {
      increased.push_back(k);
      auto& list = where[k];
      if (list.empty() || list.back() != word) list.push_back(word);
    }
  };

  while (static_cast<int64_t>(vocab_.size()) < target && !heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), less);
    Entry top = heap.back();
    heap.pop_back();
    auto pc = pair_count.find(top.pair);
    int64_t current = pc == pair_count.end() ? 0 : pc->second;
    if (current != top.count) {
      if (current > 0) {
        heap.push_back({current, top.pair});
        std::push_heap(heap.begin(), heap.end(), less);
      }
      continue;
    }
    if (current < min_count) break;
    const int32_t left = key_left(top.pair), right = key_right(top.pair);
    const int32_t merged = add_token(vocab_[left] + vocab_[right]);
    merges_.emplace_back(vocab_[left], vocab_[right]);

    std::vector<int32_t> targets = std::move(where[top.pair]);
    where.erase(top.pair);
    std::sort(targets.begin(), targets.end());
    targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
    increased.clear();
    for (int32_t w : targets) {
      auto& s = words[w].symbols;
      const int64_t c = words[w].count;
      size_t out = 0;
      for (size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == left && s[i + 1] == right) {
          // Left neighbour is the already-rewritten previous symbol; right neighbour the original.
          if (out > 0) {
            change(s[out - 1], left, -c, w);
            change(s[out - 1], merged, c, w);
          }
          if (i + 2 < s.size()) {
            change(right, s[i + 2], -c, w);
            change(merged, s[i + 2], c, w);
          }
          change(left, right, -c, w);
          s[out++] = merged;
          i += 2;
        } else {
          s[out++] = s[i++];
        }
      }
      s.resize(out);
    }
    pair_count.erase(top.pair);
    std::sort(increased.begin(), increased.end());
    increased.erase(std::unique(increased.begin(), increased.end()), increased.end());
    for (uint64_t k : increased) {
      int64_t c = pair_count[k];
      if (c > 0) {
        heap.push_back({c, k});
        std::push_heap(heap.begin(), heap.end(), less);
      }
    }
    if (progress) progress->advance(1);
  }
  if (progress) progress->finish("vocab " + std::to_string(vocab_.size()));
  trained_ = true;
}

void BpeTrainer::save(const std::string& dir) const {
  if (!trained_) throw Error("bpe trainer: save() called before train()");
  using ojson = nlohmann::ordered_json;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir)) throw InputError(dir + ": cannot create the output folder");

  const int32_t n_special = static_cast<int32_t>(options_.special_tokens.size());
  auto added_entry = [](int32_t id, const std::string& content) {
    ojson a;
    if (id >= 0) a["id"] = id;
    a["content"] = content;
    a["single_word"] = false;
    a["lstrip"] = false;
    a["rstrip"] = false;
    a["normalized"] = false;
    a["special"] = true;
    return a;
  };
  ojson added = ojson::array();
  for (int32_t i = 0; i < n_special; ++i) added.push_back(added_entry(i, options_.special_tokens[i]));
  ojson byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  ojson split = {{"type", "Split"},
                 {"pattern", {{"Regex", text::pretokenizer_pattern(options_.pre_tokenizer)}}},
                 {"behavior", "Isolated"},
                 {"invert", false}};
  ojson vocab = ojson::object();
  for (size_t id = 0; id < vocab_.size(); ++id) vocab[vocab_[id]] = id;
  ojson merges = ojson::array();
  for (const auto& [l, r] : merges_) merges.push_back(l + " " + r);

  ojson tok;
  tok["version"] = "1.0";
  tok["truncation"] = nullptr;
  tok["padding"] = nullptr;
  tok["added_tokens"] = added;
  tok["normalizer"] = state_->form == text::NormalForm::NFC ? ojson{{"type", "NFC"}} : ojson(nullptr);
  tok["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", ojson::array({split, byte_level})}};
  tok["post_processor"] = byte_level;
  tok["decoder"] = byte_level;
  tok["model"] = {{"type", "BPE"},
                  {"dropout", nullptr},
                  {"unk_token", nullptr},
                  {"continuing_subword_prefix", nullptr},
                  {"end_of_word_suffix", nullptr},
                  {"fuse_unk", false},
                  {"byte_fallback", false},
                  {"ignore_merges", false},
                  {"vocab", vocab},
                  {"merges", merges}};
  write_file(fs::path(dir) / "tokenizer.json", tok.dump(2) + "\n");

  auto special_or_null = [&](const std::string& s) { return contains(options_.special_tokens, s) ? ojson(s) : ojson(nullptr); };
  ojson config;
  config["add_bos_token"] = false;
  config["add_prefix_space"] = false;
  ojson decoder = ojson::object();
  for (int32_t i = 0; i < n_special; ++i) decoder[std::to_string(i)] = added_entry(-1, options_.special_tokens[i]);
  config["added_tokens_decoder"] = decoder;
  config["bos_token"] = nullptr;
  if (!options_.chat_template.empty()) config["chat_template"] = kChatmlJinja;
  config["clean_up_tokenization_spaces"] = false;
  config["eos_token"] = contains(options_.special_tokens, "<|im_end|>") ? ojson("<|im_end|>") : special_or_null("<|endoftext|>");
  config["errors"] = "replace";
  config["pad_token"] = special_or_null("<|endoftext|>");
  config["tokenizer_class"] = "PreTrainedTokenizerFast";
  config["unk_token"] = nullptr;
  write_file(fs::path(dir) / "tokenizer_config.json", config.dump(2) + "\n");

  if (options_.write_vocab_files) {
    write_file(fs::path(dir) / "vocab.json", vocab.dump() + "\n");
    std::string m = "#version: 0.2\n";
    for (const auto& [l, r] : merges_) m += l + " " + r + "\n";
    write_file(fs::path(dir) / "merges.txt", m);
  }
}

}  // namespace emlab
