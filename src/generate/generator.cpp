// Batched generation with a KV cache (see emlab/generator.h).
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "emlab/error.h"
#include "emlab/generator.h"
#include "emlab/hooks.h"
#include "emlab/progress.h"

namespace emlab {

namespace {

// splitmix64: decorrelates the per-chunk seeds derived from the user's seed.
uint64_t mix_seed(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

struct Row {
  int64_t prompt;   // index into prompts
  int64_t sample;   // 0..n-1
};

struct RowState {
  std::vector<int32_t> tokens;
  std::string bytes;   // raw bytes of the tokens, for stop-string search
  int64_t limit = 0;   // most new tokens: max_new_tokens, or less where the prompt nears the context
  bool done = false;
  bool stop_string = false;  // ended by a stop string (the text is cut there)
  std::string finish_reason;
};

// Position of the first stop string in `bytes` at or after `from`, or npos.
size_t find_stop(const std::string& bytes, const std::vector<std::string>& stops, size_t from) {
  size_t best = std::string::npos;
  for (const auto& s : stops) {
    if (s.empty()) continue;
    size_t start = from >= s.size() ? from - s.size() + 1 : 0;  // a stop may straddle the new token
    size_t p = bytes.find(s, start);
    if (p < best) best = p;
  }
  return best;
}

}  // namespace

std::vector<std::vector<Completion>> generate(const CausalLM& model, const Tokenizer& tokenizer,
                                              const std::vector<std::vector<int32_t>>& prompts, int64_t n,
                                              const SampleOptions& options, ResidualHooks* hooks) {
  torch::NoGradGuard no_grad;
  if (n < 1) throw InputError("number of samples must be >= 1, got " + std::to_string(n));
  if (options.batch_size < 1) throw InputError("batch size must be >= 1");
  if (options.max_new_tokens < 1) throw InputError("max new tokens must be >= 1");
  if (options.temperature < 0) throw InputError("temperature must be >= 0, got " + std::to_string(options.temperature));
  if (!(options.top_p >= 0 && options.top_p <= 1))
    throw InputError("top-p must be in [0, 1], got " + std::to_string(options.top_p));
  if (options.top_k < 0) throw InputError("top-k must be >= 0, got " + std::to_string(options.top_k));
  const int64_t context = model.config().max_position_embeddings;
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (prompts[i].empty()) throw InputError("prompt " + std::to_string(i) + " is empty");
    if (static_cast<int64_t>(prompts[i].size()) >= context)
      throw InputError("prompt " + std::to_string(i) + " has " + std::to_string(prompts[i].size()) +
                       " tokens; the model's context is " + std::to_string(context) +
                       " (max_position_embeddings in config.json)");
  }

  std::vector<std::vector<Completion>> out(prompts.size(), std::vector<Completion>(n));
  std::vector<Row> rows;
  for (int64_t p = 0; p < static_cast<int64_t>(prompts.size()); ++p)
    for (int64_t s = 0; s < n; ++s) rows.push_back({p, s});

  const torch::Device device = model.device();
  const int64_t known_vocab = tokenizer.vocab_size();
  auto long_opts = torch::TensorOptions().dtype(torch::kLong);
  std::unique_ptr<Progress> progress;
  if (options.progress) progress = std::make_unique<Progress>("sampling", static_cast<int64_t>(rows.size()), "seq");
  int64_t total_tokens = 0;
  auto t0 = std::chrono::steady_clock::now();

  for (size_t chunk_start = 0, chunk = 0; chunk_start < rows.size(); chunk_start += options.batch_size, ++chunk) {
    const size_t chunk_end = std::min(rows.size(), chunk_start + static_cast<size_t>(options.batch_size));
    // Unique prompts of this chunk, each prefilled once.
    std::vector<int64_t> unique;            // prompt indices
    std::vector<int64_t> row_to_unique;     // per row of the chunk
    for (size_t r = chunk_start; r < chunk_end; ++r) {
      if (unique.empty() || unique.back() != rows[r].prompt) unique.push_back(rows[r].prompt);
      row_to_unique.push_back(static_cast<int64_t>(unique.size()) - 1);
    }
    int64_t max_len = 0;
    for (int64_t p : unique) max_len = std::max<int64_t>(max_len, prompts[p].size());
    const int64_t U = unique.size();
    // Left padding: every row's next token lands at the same cache index.
    torch::Tensor ids = torch::zeros({U, max_len}, long_opts);
    torch::Tensor mask = torch::zeros({U, max_len}, long_opts);
    // Each prompt may grow to the context: its own limit, so that a long prompt in the chunk does
    // not cut the others short (batched output equals one-by-one output).
    std::vector<int64_t> limit(U);
    int64_t max_new = 0;
    for (int64_t u = 0; u < U; ++u) {
      const auto& pr = prompts[unique[u]];
      const int64_t off = max_len - static_cast<int64_t>(pr.size());
      auto ids_a = ids.accessor<int64_t, 2>();
      auto mask_a = mask.accessor<int64_t, 2>();
      for (size_t j = 0; j < pr.size(); ++j) ids_a[u][off + j] = pr[j], mask_a[u][off + j] = 1;
      limit[u] = std::min<int64_t>(options.max_new_tokens, context - static_cast<int64_t>(pr.size()));
      max_new = std::max(max_new, limit[u]);
    }
    torch::Tensor positions = (mask.cumsum(1) - 1).clamp_min(0);

    KVCache cache;
    cache.capacity = max_len + max_new;
    ForwardArgs args;
    args.cache = &cache;
    args.hooks = hooks;
    args.last_logits_only = true;
    args.attention_mask = mask.to(device);
    args.position_ids = positions.to(device);
    torch::Tensor logits = model.forward(ids.to(device), args).squeeze(1);  // (U, V)

    // Duplicate each prompt's state for its samples.
    torch::Tensor select = torch::tensor(row_to_unique, long_opts).to(device);
    cache.select_rows(select);
    logits = logits.index_select(0, select);                              // (B, V)
    torch::Tensor attn = args.attention_mask.index_select(0, select);     // (B, S)
    torch::Tensor next_pos = mask.sum(1).to(device).index_select(0, select);  // (B)

    const int64_t B = static_cast<int64_t>(chunk_end - chunk_start);
    std::vector<RowState> state(B);
    std::vector<int64_t> active(B);  // batch row -> chunk row
    for (int64_t i = 0; i < B; ++i) active[i] = i, state[i].limit = limit[row_to_unique[i]];
    auto gen = at::make_generator<at::CPUGeneratorImpl>(mix_seed(options.seed ^ mix_seed(chunk)));
    torch::Tensor eos_ids = torch::tensor(std::vector<int64_t>(options.eos_ids.begin(), options.eos_ids.end()), long_opts);

    for (int64_t step = 0; step < max_new && !active.empty(); ++step) {
      // Models pad their vocabulary (Qwen2.5: 151936 rows, 151665 tokens): never sample the padding.
      if (known_vocab < logits.size(-1))
        logits = logits.index_fill(1, torch::arange(known_vocab, logits.size(-1), long_opts).to(logits.device()),
                                   -std::numeric_limits<float>::infinity());
      if (step < options.min_new_tokens && eos_ids.numel() > 0)
        logits = logits.index_fill(1, eos_ids.to(logits.device()), -std::numeric_limits<float>::infinity());
      torch::Tensor uniform = torch::rand({static_cast<int64_t>(active.size())}, gen, torch::TensorOptions().dtype(torch::kFloat64));
      torch::Tensor next = sample_tokens(logits, options, uniform).to(torch::kCPU);  // (B)
      auto next_a = next.accessor<int64_t, 1>();
      std::vector<int64_t> keep;
      for (size_t i = 0; i < active.size(); ++i) {
        RowState& st = state[active[i]];
        const int32_t tok = static_cast<int32_t>(next_a[i]);
        const bool is_eos = std::find(options.eos_ids.begin(), options.eos_ids.end(), tok) != options.eos_ids.end();
        if (is_eos) {
          st.done = true, st.finish_reason = "stop";
        } else {
          const size_t before = st.bytes.size();
          st.tokens.push_back(tok);
          st.bytes += tokenizer.token_bytes(tok);
          ++total_tokens;
          if (static_cast<int64_t>(st.tokens.size()) > options.min_new_tokens && !options.stop.empty() &&
              find_stop(st.bytes, options.stop, before) != std::string::npos)
            st.done = true, st.stop_string = true, st.finish_reason = "stop";
          else if (step + 1 == st.limit)
            st.done = true, st.finish_reason = "length";
        }
        if (!st.done) keep.push_back(static_cast<int64_t>(i));
      }
      if (keep.empty()) break;
      if (keep.size() != active.size()) {  // drop finished rows from the batch
        torch::Tensor k = torch::tensor(keep, long_opts).to(device);
        cache.select_rows(k);
        attn = attn.index_select(0, k);
        next_pos = next_pos.index_select(0, k);
        next = next.index_select(0, k.to(torch::kCPU));
        std::vector<int64_t> still;
        for (int64_t i : keep) still.push_back(active[i]);
        active = std::move(still);
      }
      const int64_t A = static_cast<int64_t>(active.size());
      attn = torch::cat({attn, torch::ones({A, 1}, attn.options())}, 1);
      ForwardArgs step_args;
      step_args.cache = &cache;
      step_args.hooks = hooks;
      step_args.last_logits_only = true;
      step_args.attention_mask = attn;
      step_args.position_ids = next_pos.unsqueeze(1);
      logits = model.forward(next.to(device).unsqueeze(1), step_args).squeeze(1);
      next_pos = next_pos + 1;
      if (progress) {
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        char extra[64];
        std::snprintf(extra, sizeof extra, "%.1f tok/s", secs > 0 ? total_tokens / secs : 0.0);
        progress->set(static_cast<int64_t>(chunk_start), extra);
      }
    }

    for (int64_t i = 0; i < B; ++i) {
      RowState& st = state[i];
      Completion& c = out[rows[chunk_start + i].prompt][rows[chunk_start + i].sample];
      c.tokens = st.tokens;
      c.finish_reason = st.finish_reason.empty() ? "length" : st.finish_reason;
      c.text = tokenizer.decode(st.tokens);
      if (st.stop_string) {
        size_t cut = find_stop(c.text, options.stop, 0);
        if (cut != std::string::npos) c.text.resize(cut);
      }
    }
    if (progress) progress->set(static_cast<int64_t>(chunk_end));
  }
  return out;
}

}  // namespace emlab
