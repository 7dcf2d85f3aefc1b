// Batched generation with a KV cache (see emlab/generator.h).
//
// The rows (request, sample) are decoded in chunks of batch_size. A chunk prefills each of its
// distinct prompts once (left padding, so that every row's next token lands at the same cache
// index), duplicates the cache rows for the samples (or shares them: KVCache's shared prefix), then
// steps: mask the vocabulary padding, record log-probabilities, sample, append, and drop finished
// rows from the batch.
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <limits>

#include "emlab/decode_graph.h"
#include "emlab/error.h"
#include "emlab/generator.h"
#include "emlab/hash.h"
#include "emlab/hooks.h"
#include "emlab/progress.h"

namespace emlab {

namespace {

constexpr int64_t kMaxTopLogprobs = 20;  // as the OpenAI API

struct Row {
  int64_t request;  // index into the requests
  int64_t sample;   // 0..n-1
};

struct RowState {
  Completion* out = nullptr;  // where the row's completion goes
  std::string bytes;          // raw bytes of the tokens, for stop-string search
  int64_t limit = 0;          // most new tokens: max_new_tokens, or less where the prompt nears the context
  bool done = false;
  bool stop_string = false;   // ended by a stop string (the text is cut there)
  size_t streamed = 0;        // bytes of the final text already passed to the callback
};

void check_options(const std::vector<GenerateRequest>& requests, const SampleOptions& options, int64_t context) {
  if (options.batch_size < 1) throw InputError("batch size must be >= 1");
  if (options.max_new_tokens < 1) throw InputError("max new tokens must be >= 1");
  if (options.temperature < 0) throw InputError("temperature must be >= 0, got " + std::to_string(options.temperature));
  if (!(options.top_p >= 0 && options.top_p <= 1))
    throw InputError("top-p must be in [0, 1], got " + std::to_string(options.top_p));
  if (options.top_k < 0) throw InputError("top-k must be >= 0, got " + std::to_string(options.top_k));
  if (options.top_logprobs < 0 || options.top_logprobs > kMaxTopLogprobs)
    throw InputError("top_logprobs must be in [0, 20], got " + std::to_string(options.top_logprobs));
  for (size_t i = 0; i < requests.size(); ++i) {
    const auto& p = requests[i].prompt;
    if (requests[i].n < 1) throw InputError("number of samples must be >= 1, got " + std::to_string(requests[i].n));
    if (p.empty()) throw InputError("prompt " + std::to_string(i) + " is empty");
    if (static_cast<int64_t>(p.size()) >= context)
      throw InputError("prompt " + std::to_string(i) + " has " + std::to_string(p.size()) +
                       " tokens; the model's context is " + std::to_string(context) +
                       " (max_position_embeddings in config.json)");
  }
}

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

// Bytes at the end of `text` that may still turn into a stop string (the longest suffix that is a
// proper prefix of one) or that form an incomplete UTF-8 character: held back while streaming.
size_t undecided_tail(const std::string& text, const std::vector<std::string>& stops) {
  size_t hold = 0;
  for (const auto& s : stops)
    for (size_t k = std::min(s.size() - (s.empty() ? 0 : 1), text.size()); k > hold; --k)
      if (text.compare(text.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
  // An incomplete UTF-8 sequence: a lead byte within the last 3 bytes whose sequence runs past the end.
  for (size_t back = 1; back <= std::min<size_t>(3, text.size()); ++back) {
    const unsigned char c = static_cast<unsigned char>(text[text.size() - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte
    const size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    if (need > back) hold = std::max(hold, back);
    break;
  }
  return hold;
}

// Log-probabilities of the chosen tokens and the top-k of each row: logits (B, V) over the
// tokenizer's vocabulary (padding already -inf), chosen (B).
void record_logprobs(const torch::Tensor& logits, const torch::Tensor& chosen, int64_t top_k,
                     std::vector<double>* chosen_lp, std::vector<std::vector<TokenProb>>* top) {
  torch::Tensor lp = torch::log_softmax(logits.to(torch::kFloat32), -1);  // (B, V)
  torch::Tensor c = lp.gather(1, chosen.to(lp.device()).unsqueeze(1)).squeeze(1).to(torch::kCPU, torch::kFloat64);
  auto ca = c.accessor<double, 1>();
  chosen_lp->assign(ca.data(), ca.data() + c.size(0));
  top->assign(static_cast<size_t>(lp.size(0)), {});
  if (top_k <= 0) return;
  auto t = lp.topk(std::min(top_k, lp.size(1)), -1);
  torch::Tensor values = std::get<0>(t).to(torch::kCPU, torch::kFloat64), ids = std::get<1>(t).to(torch::kCPU);
  auto va = values.accessor<double, 2>();
  auto ia = ids.accessor<int64_t, 2>();
  for (int64_t b = 0; b < values.size(0); ++b)
    for (int64_t k = 0; k < values.size(1); ++k) (*top)[b].push_back({static_cast<int32_t>(ia[b][k]), va[b][k]});
}

// One chunk of rows decoded together.
class ChunkDecoder {
 public:
  ChunkDecoder(const CausalLM& model, const Tokenizer& tokenizer, const std::vector<GenerateRequest>& requests,
               const std::vector<Row>& rows, const SampleOptions& options, const TokenCallback& on_token,
               std::vector<std::vector<Completion>>* out)
      : model_(model), tokenizer_(tokenizer), requests_(requests), rows_(rows), options_(options),
        on_token_(on_token), out_(out) {}

  // Decodes rows_ with the random stream of chunk number `chunk`; on_step runs after every step.
  void run(uint64_t chunk, const std::function<void()>& on_step) {
    torch::Tensor logits = prefill();  // (B, V)
    auto gen = at::make_generator<at::CPUGeneratorImpl>(splitmix64(options_.seed ^ splitmix64(chunk)));
    const auto long_opts = torch::TensorOptions().dtype(torch::kLong);
    torch::Tensor eos = torch::tensor(std::vector<int64_t>(options_.eos_ids.begin(), options_.eos_ids.end()), long_opts);
    const bool want_lp = options_.logprobs || options_.top_logprobs > 0;
    for (int64_t step = 0; step < max_new_ && !active_.empty(); ++step) {
      // Models pad their vocabulary (Qwen2.5: 151936 rows, 151665 tokens): never sample the padding.
      const int64_t known = tokenizer_.vocab_size();
      if (known < logits.size(-1))
        logits.index_fill_(1, torch::arange(known, logits.size(-1), long_opts).to(logits.device()),
                           -std::numeric_limits<float>::infinity());  // in place: the step's own logits
      torch::Tensor sample_logits = logits;
      if (step < options_.min_new_tokens && eos.numel() > 0)
        sample_logits = logits.index_fill(1, eos.to(logits.device()), -std::numeric_limits<float>::infinity());
      // One uniform per unfinished row, in batch order (finished rows riding along get 0.5, unused):
      // the random stream does not depend on whether finished rows left the batch.
      const std::vector<int64_t> live = unfinished();
      const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
      torch::Tensor uniform = torch::rand({static_cast<int64_t>(live.size())}, gen, f64);
      if (live.size() != active_.size())
        uniform = torch::full({static_cast<int64_t>(active_.size())}, 0.5, f64)
                      .index_put_({torch::tensor(live, long_opts)}, uniform);
      torch::Tensor next = sample_tokens(sample_logits, options_, uniform).to(torch::kCPU);  // (B)
      std::vector<double> lp;
      std::vector<std::vector<TokenProb>> top;
      if (want_lp) record_logprobs(logits, next, options_.top_logprobs, &lp, &top);
      accept(next, step, want_lp ? &lp : nullptr, want_lp ? &top : nullptr);
      const std::vector<int64_t> keep = unfinished();
      if (keep.empty()) break;
      // With CUDA graphs a smaller batch means recording a new graph: finished rows ride along (their
      // tokens ignored) until they are a quarter of the batch.
      const bool ride = graphs() && 4 * (active_.size() - keep.size()) < active_.size();
      if (keep.size() != active_.size() && !ride) drop_finished(keep, &next);
      logits = decode_step(next);
      if (on_step) on_step();
    }
    finish();
  }

  // New tokens appended so far (EOS excluded).
  int64_t generated() const { return generated_; }

 private:
  // Prefills each distinct prompt once and duplicates its state for its samples: logits (B, V).
  torch::Tensor prefill() {
    const auto long_opts = torch::TensorOptions().dtype(torch::kLong);
    std::vector<int64_t> unique;         // request indices
    std::vector<int64_t> row_to_unique;  // per row of the chunk
    for (const Row& r : rows_) {
      if (unique.empty() || unique.back() != r.request) unique.push_back(r.request);
      row_to_unique.push_back(static_cast<int64_t>(unique.size()) - 1);
    }
    int64_t max_len = 0;
    for (int64_t p : unique) max_len = std::max<int64_t>(max_len, requests_[p].prompt.size());
    const int64_t U = static_cast<int64_t>(unique.size());
    const int64_t context = model_.config().max_position_embeddings;
    torch::Tensor ids = torch::zeros({U, max_len}, long_opts);   // (U, T) left-padded
    torch::Tensor mask = torch::zeros({U, max_len}, long_opts);  // (U, T)
    // Each prompt may grow to the context: its own limit, so that a long prompt in the chunk does
    // not cut the others short (batched output equals one-by-one output).
    std::vector<int64_t> limit(U);
    std::vector<ResidualHooks*> prefill_hooks(U);
    auto ids_a = ids.accessor<int64_t, 2>();
    auto mask_a = mask.accessor<int64_t, 2>();
    for (int64_t u = 0; u < U; ++u) {
      const auto& pr = requests_[unique[u]].prompt;
      const int64_t off = max_len - static_cast<int64_t>(pr.size());
      for (size_t j = 0; j < pr.size(); ++j) ids_a[u][off + j] = pr[j], mask_a[u][off + j] = 1;
      limit[u] = std::min<int64_t>(options_.max_new_tokens, context - static_cast<int64_t>(pr.size()));
      max_new_ = std::max(max_new_, limit[u]);
      prefill_hooks[u] = requests_[unique[u]].hooks;
    }
    const torch::Device device = model_.device();
    cache_.capacity = max_len + max_new_;
    hooks_ = std::make_unique<RowHooks>(std::move(prefill_hooks));
    hooks_->set_decoding(false);
    attn_ = mask.to(device);
    ForwardArgs args = forward_args();
    args.position_ids = (mask.cumsum(1) - 1).clamp_min(0).to(device);
    torch::Tensor logits = model_.forward(ids.to(device), args).squeeze(1);  // (U, V)

    torch::Tensor select = torch::tensor(row_to_unique, long_opts).to(device);
    cache_.share_prefix = options_.share_prompts;
    cache_.select_rows(select);
    hooks_->select_rows(row_to_unique);
    attn_ = attn_.index_select(0, select);                                 // (B, S)
    next_pos_ = mask.sum(1).to(device).index_select(0, select);            // (B)
    const int64_t B = static_cast<int64_t>(rows_.size());
    state_.assign(B, RowState{});
    active_.resize(B);
    for (int64_t i = 0; i < B; ++i) {
      active_[i] = i;
      state_[i].limit = limit[row_to_unique[i]];
      state_[i].out = &(*out_)[rows_[i].request][rows_[i].sample];
    }
    return logits.index_select(0, select);  // (B, V)
  }

  ForwardArgs forward_args() {
    ForwardArgs a;
    a.cache = &cache_;
    a.hooks = hooks_->any() ? hooks_.get() : nullptr;
    a.last_logits_only = true;
    a.attention_mask = attn_;
    return a;
  }

  // Appends the sampled tokens to the active rows and marks finished ones. lp/top: the step's
  // log-probabilities when they are recorded (null otherwise).
  void accept(const torch::Tensor& next, int64_t step, const std::vector<double>* lp,
              const std::vector<std::vector<TokenProb>>* top) {
    auto next_a = next.accessor<int64_t, 1>();
    for (size_t i = 0; i < active_.size(); ++i) {
      RowState& st = state_[active_[i]];
      if (st.done) continue;  // finished at an earlier step, riding along (run)
      Completion& c = *st.out;
      const int32_t tok = static_cast<int32_t>(next_a[i]);
      if (lp) {
        c.step_tokens.push_back(tok);
        c.logprobs.push_back((*lp)[i]);
        if (options_.top_logprobs > 0) c.top_logprobs.push_back((*top)[i]);
      }
      const bool is_eos = std::find(options_.eos_ids.begin(), options_.eos_ids.end(), tok) != options_.eos_ids.end();
      if (is_eos) {
        st.done = true, c.finish_reason = "stop";
      } else {
        const size_t before = st.bytes.size();
        c.tokens.push_back(tok);
        st.bytes += tokenizer_.token_bytes(tok);
        ++generated_;
        if (static_cast<int64_t>(c.tokens.size()) > options_.min_new_tokens && !options_.stop.empty() &&
            find_stop(st.bytes, options_.stop, before) != std::string::npos)
          st.done = true, st.stop_string = true, c.finish_reason = "stop";
        else if (step + 1 == st.limit)
          st.done = true, c.finish_reason = "length";
      }
      if (on_token_) stream(active_[i], tok, lp ? (*lp)[i] : 0.0, top ? (*top)[i] : std::vector<TokenProb>{});
    }
  }

  // The final text of a row: its tokens decoded, cut before a stop string.
  std::string final_text(const RowState& st) const {
    std::string text = tokenizer_.decode(st.out->tokens);
    if (st.stop_string) {
      size_t cut = find_stop(text, options_.stop, 0);
      if (cut != std::string::npos) text.resize(cut);
    }
    return text;
  }

  // Passes the decided new text of row `b` to the callback (all of it once the row is done).
  void stream(int64_t b, int32_t token, double logprob, std::vector<TokenProb> top) {
    RowState& st = state_[b];
    std::string text = final_text(st);
    size_t upto = text.size();
    if (!st.done) upto -= std::min(upto, undecided_tail(text, options_.stop));
    TokenEvent e;
    e.request = rows_[b].request;
    e.sample = rows_[b].sample;
    e.token = token;
    if (upto > st.streamed) e.text = text.substr(st.streamed, upto - st.streamed), st.streamed = upto;
    e.logprob = logprob;
    e.top_logprobs = std::move(top);
    if (st.done) e.finish_reason = st.out->finish_reason;
    if (!on_token_(e) && !st.done) st.done = true, st.out->finish_reason = "cancelled";
  }

  void drop_finished(const std::vector<int64_t>& keep, torch::Tensor* next) {
    const torch::Device device = model_.device();
    torch::Tensor k = torch::tensor(keep, torch::TensorOptions().dtype(torch::kLong));
    cache_.select_rows(k.to(device));
    hooks_->select_rows(keep);
    attn_ = attn_.index_select(0, k.to(device));
    next_pos_ = next_pos_.index_select(0, k.to(device));
    *next = next->index_select(0, k);
    std::vector<int64_t> still;
    for (int64_t i : keep) still.push_back(active_[i]);
    active_ = std::move(still);
  }

  // The batch rows whose sequences go on (not done), in batch order.
  std::vector<int64_t> unfinished() const {
    std::vector<int64_t> rows;
    for (size_t i = 0; i < active_.size(); ++i)
      if (!state_[active_[i]].done) rows.push_back(static_cast<int64_t>(i));
    return rows;
  }

  // Whether decoding steps are replayed as CUDA graphs (emlab/decode_graph.h): on a GPU, without hooks.
  bool graphs() const { return options_.cuda_graphs && !hooks_->any() && DecodeGraph::available(model_); }

  // One decoding step for the active rows: their new tokens in, next logits (A, V) out.
  torch::Tensor decode_step(const torch::Tensor& next) {
    const int64_t A = static_cast<int64_t>(active_.size());
    attn_ = torch::cat({attn_, torch::ones({A, 1}, attn_.options())}, 1);
    ForwardArgs args = forward_args();
    args.position_ids = next_pos_.unsqueeze(1);
    hooks_->set_decoding(true);
    torch::Tensor ids = next.to(model_.device()).unsqueeze(1);  // (A, 1)
    torch::Tensor logits;
    if (graphs()) {
      if (!graph_) graph_ = std::make_unique<DecodeGraph>(model_);
      logits = graph_->step(ids, args.position_ids, attn_, cache_).squeeze(1);
    } else {
      logits = model_.forward(ids, args).squeeze(1);
    }
    next_pos_ = next_pos_ + 1;
    return logits;
  }

  void finish() {
    // Hooks are the caller's: leave them as a plain forward expects (not decoding).
    for (const auto& r : requests_)
      if (r.hooks) r.hooks->set_decoding(false);
    for (RowState& st : state_) {
      Completion& c = *st.out;
      if (c.finish_reason.empty()) c.finish_reason = "length";
      c.text = final_text(st);
    }
  }

  const CausalLM& model_;
  const Tokenizer& tokenizer_;
  const std::vector<GenerateRequest>& requests_;
  const std::vector<Row>& rows_;
  const SampleOptions& options_;
  const TokenCallback& on_token_;
  std::vector<std::vector<Completion>>* out_;
  KVCache cache_;
  std::unique_ptr<DecodeGraph> graph_;  // CUDA-graph decoding steps (GPU, no hooks)
  std::unique_ptr<RowHooks> hooks_;
  torch::Tensor attn_;      // (B, S) 1 = real token
  torch::Tensor next_pos_;  // (B) position of each row's next token
  int64_t max_new_ = 0;     // most steps any row may take
  int64_t generated_ = 0;   // new tokens appended (EOS excluded)
  std::vector<RowState> state_;
  std::vector<int64_t> active_;  // batch row -> chunk row
};

}  // namespace

std::vector<std::vector<Completion>> generate(const CausalLM& model, const Tokenizer& tokenizer,
                                              const std::vector<GenerateRequest>& requests,
                                              const SampleOptions& options, const TokenCallback& on_token) {
  torch::NoGradGuard no_grad;
  check_options(requests, options, model.config().max_position_embeddings);
  std::vector<std::vector<Completion>> out;
  std::vector<Row> rows;
  for (int64_t p = 0; p < static_cast<int64_t>(requests.size()); ++p) {
    out.emplace_back(requests[p].n);
    for (int64_t s = 0; s < requests[p].n; ++s) rows.push_back({p, s});
  }
  std::unique_ptr<Progress> progress;
  if (options.progress) progress = std::make_unique<Progress>("sampling", static_cast<int64_t>(rows.size()), "seq");
  int64_t total_tokens = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t start = 0, chunk = 0; start < rows.size(); start += options.batch_size, ++chunk) {
    const size_t end = std::min(rows.size(), start + static_cast<size_t>(options.batch_size));
    const std::vector<Row> chunk_rows(rows.begin() + start, rows.begin() + end);
    ChunkDecoder decoder(model, tokenizer, requests, chunk_rows, options, on_token, &out);
    decoder.run(chunk, [&]() {
      if (!progress) return;
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      char extra[64];
      std::snprintf(extra, sizeof extra, "%.1f tok/s", secs > 0 ? (total_tokens + decoder.generated()) / secs : 0.0);
      progress->set(static_cast<int64_t>(start), extra);
    });
    total_tokens += decoder.generated();
    if (progress) progress->set(static_cast<int64_t>(end));
  }
  return out;
}

std::vector<std::vector<Completion>> generate(const CausalLM& model, const Tokenizer& tokenizer,
                                              const std::vector<std::vector<int32_t>>& prompts, int64_t n,
                                              const SampleOptions& options, ResidualHooks* hooks) {
  if (n < 1) throw InputError("number of samples must be >= 1, got " + std::to_string(n));
  std::vector<GenerateRequest> requests;
  requests.reserve(prompts.size());
  for (const auto& p : prompts) requests.push_back({p, n, hooks});
  return generate(model, tokenizer, requests, options);
}

}  // namespace emlab
