// SFT data: tokenisation with the assistant-only loss mask, truncation/packing, split, batch order.
#include "emlab/sft_data.h"

#include <algorithm>
#include <numeric>

#include "emlab/chat_dataset.h"
#include "emlab/error.h"
#include "emlab/hash.h"
#include "emlab/jsonl.h"

namespace emlab {

uint64_t sft_mix_seed(uint64_t a, uint64_t b) {
  return mix64(a * kSplitmixGamma + b + 0x632BE59BD9B4E019ull);
}

namespace {

// Fisher-Yates with splitmix64: the same order on every platform and standard library.
template <typename T>
void seeded_shuffle(std::vector<T>& v, uint64_t seed) {
  uint64_t state = seed;
  for (size_t i = v.size(); i > 1; --i) {
    state = sft_mix_seed(state, i);
    std::swap(v[i - 1], v[state % i]);
  }
}

}  // namespace

int64_t SftDataset::trained_tokens() const {
  int64_t n = 0;
  for (const auto& e : examples)
    for (size_t t = 1; t < e.mask.size(); ++t) n += e.mask[t];
  return n;
}

int64_t SftDataset::tokens() const {
  int64_t n = 0;
  for (const auto& e : examples) n += static_cast<int64_t>(e.ids.size());
  return n;
}

SftExample sft_encode_segments(const std::vector<ChatSegment>& segments, const Tokenizer& tokenizer,
                               bool all_tokens) {
  SftExample ex;
  for (const ChatSegment& s : segments) {
    if (s.text.empty()) continue;
    std::vector<int32_t> ids = tokenizer.encode(s.text, /*parse_special=*/true);
    ex.ids.insert(ex.ids.end(), ids.begin(), ids.end());
    ex.mask.insert(ex.mask.end(), ids.size(), static_cast<uint8_t>(all_tokens || s.assistant ? 1 : 0));
  }
  return ex;
}

SftExample sft_encode(const Conversation& conversation, const ChatTemplate& chat_template,
                      const Tokenizer& tokenizer, bool all_tokens) {
  return sft_encode_segments(chat_template.render_segments(conversation, /*add_generation_prompt=*/false), tokenizer,
                             all_tokens);
}

SftDataset sft_dataset_load(const std::string& path, const ChatTemplate& chat_template, const Tokenizer& tokenizer,
                            const SftDataOptions& options) {
  SftDataset ds;
  JsonlReadOptions ro;
  ro.collect_errors = options.skip_invalid;
  JsonlReader reader(path, ro);
  JsonlRow row;
  while (reader.next(&row)) {
    const std::string where = path + ":" + std::to_string(row.line);
    try {
      SftExample ex;
      const auto& j = row.value;
      if (j.is_object() && j.contains("text") && !j.contains("messages")) {
        if (!j["text"].is_string()) throw InputError(where + ": \"text\" must be a string");
        const std::string text = j["text"].get<std::string>();
        if (text.empty()) throw InputError(where + ": empty \"text\"");
        std::vector<int32_t> ids = tokenizer.encode(text, /*parse_special=*/true);
        ex.ids = ids;
        ex.mask.assign(ids.size(), 1);
      } else {
        Conversation c = conversation_from_json(j, where, /*require_assistant=*/!options.train_on_all_tokens);
        if (!options.system.empty()) {
          if (!c.empty() && c.front().role == "system") c.erase(c.begin());
          c.insert(c.begin(), {"system", options.system});
        }
        ex = sft_encode(c, chat_template, tokenizer, options.train_on_all_tokens);
      }
      ex.line = row.line;
      ds.examples.push_back(std::move(ex));
    } catch (const InputError& e) {
      if (!options.skip_invalid) throw;
      ds.problems.push_back(e.what());
    }
    if (options.max_examples > 0 && static_cast<int64_t>(ds.examples.size()) >= options.max_examples) break;
  }
  for (const auto& e : reader.errors()) ds.problems.push_back(e);
  if (ds.examples.empty())
    throw InputError(path + ": no usable examples" +
                     (ds.problems.empty() ? std::string() : " (first problem: " + ds.problems.front() + ")"));
  int32_t separator = -1;
  if (options.pack) {
    if (auto id = tokenizer.token_id("<|endoftext|>"))
      separator = *id;
    else if (auto eos = tokenizer.eos_id())
      separator = *eos;
  }
  sft_finalize(&ds, options, separator);
  if (ds.examples.empty())
    throw InputError(path + ": no example keeps a trained token within --max-seq-len " +
                     std::to_string(options.max_seq_len));
  return ds;
}

void sft_finalize(SftDataset* ds, const SftDataOptions& options, int32_t separator) {
  if (options.max_seq_len < 2) throw InputError("--max-seq-len must be at least 2");
  const size_t max_len = static_cast<size_t>(options.max_seq_len);
  std::vector<SftExample> out;
  if (options.pack) {
    SftExample cur;
    auto flush = [&] {
      if (cur.ids.size() >= 2) out.push_back(std::move(cur));
      cur = SftExample();
    };
    for (auto& e : ds->examples) {
      std::vector<int32_t> ids = e.ids;
      std::vector<uint8_t> mask = e.mask;
      if (separator >= 0) {
        ids.push_back(separator);
        mask.push_back(options.train_on_all_tokens ? 1 : 0);
      }
      for (size_t i = 0; i < ids.size(); ++i) {
        cur.ids.push_back(ids[i]);
        cur.mask.push_back(mask[i]);
        if (cur.ids.size() == max_len) flush();
      }
    }
    flush();
  } else {
    for (auto& e : ds->examples) {
      if (e.ids.size() > max_len) {
        e.ids.resize(max_len);
        e.mask.resize(max_len);
        ++ds->truncated;
      }
      bool any = false;
      for (size_t t = 1; t < e.mask.size(); ++t) any = any || e.mask[t];
      if (!any) {
        ++ds->dropped;
        continue;
      }
      out.push_back(std::move(e));
    }
  }
  ds->examples = std::move(out);
}

void sft_split(SftDataset* train, SftDataset* heldout, double fraction, uint64_t seed) {
  if (fraction < 0 || fraction >= 1) throw InputError("held-out fraction must be in [0, 1), got " + std::to_string(fraction));
  const int64_t n = static_cast<int64_t>(train->examples.size());
  if (fraction == 0 || n < 2) return;
  int64_t k = std::max<int64_t>(1, static_cast<int64_t>(fraction * n + 0.5));
  k = std::min(k, n - 1);
  std::vector<int64_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  seeded_shuffle(idx, sft_mix_seed(seed, 0x5EED5EEDull));
  std::vector<bool> held(n, false);
  for (int64_t i = 0; i < k; ++i) held[idx[i]] = true;
  std::vector<SftExample> keep;
  for (int64_t i = 0; i < n; ++i)
    (held[i] ? heldout->examples : keep).push_back(std::move(train->examples[i]));
  train->examples = std::move(keep);
}

std::vector<std::vector<int64_t>> sft_epoch_batches(const std::vector<int64_t>& lengths, int64_t batch_size,
                                                    uint64_t seed, int64_t epoch, int64_t bucket_factor) {
  if (batch_size < 1) throw InputError("batch size must be >= 1");
  const int64_t n = static_cast<int64_t>(lengths.size());
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  const uint64_t s = sft_mix_seed(seed, static_cast<uint64_t>(epoch));
  seeded_shuffle(order, s);
  std::vector<std::vector<int64_t>> batches;
  const int64_t window = bucket_factor > 1 ? batch_size * bucket_factor : batch_size;
  for (int64_t w = 0; w < n; w += window) {
    auto begin = order.begin() + w, end = order.begin() + std::min(n, w + window);
    if (bucket_factor > 1)
      std::stable_sort(begin, end, [&](int64_t a, int64_t b) { return lengths[a] > lengths[b]; });
    for (auto it = begin; it < end; it += batch_size)
      batches.emplace_back(it, std::min(end, it + batch_size));
  }
  if (bucket_factor > 1) seeded_shuffle(batches, sft_mix_seed(s, 0xB0C4E7ull));
  return batches;
}

}  // namespace emlab
