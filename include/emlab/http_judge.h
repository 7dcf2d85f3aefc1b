// The OpenAI-compatible HTTP judge (OpenAI, vLLM, llama.cpp's server, Ollama): one
// /chat/completions call per query with max_tokens=1, temperature=0, logprobs=true,
// top_logprobs=20, seed=0, scored from the returned top logprobs (see judge.h).
//
// Failures: 429, 408, 409, 5xx, timeouts, dropped connections and malformed JSON are retried with
// exponential backoff (+-50% jitter) honouring Retry-After / retry-after-ms; what still fails, a
// 400/413/422 (the server rejected this one prompt) and a reply without logprobs come back as
// Judgment.error. 401/403/404 and unusable URLs throw ServiceError (every call would fail).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "emlab/judge.h"

namespace emlab {

struct HttpJudgeSpec {
  std::string base_url;     // "https://api.openai.com/v1", "http://127.0.0.1:8000/v1"
  std::string model;        // model name sent in the request
  bool requires_key = false;  // openai: a missing API key is an error (http specs: optional)
};

// "openai:MODEL" or "http(s)://HOST[:PORT]/PATH#MODEL"; throws InputError on anything else.
HttpJudgeSpec http_judge_parse_spec(const std::string& spec);

class HttpJudge : public Judge {
 public:
  // Reads the API key from options.api_key_env (default OPENAI_API_KEY); throws InputError when
  // an openai: spec finds none.
  HttpJudge(const std::string& spec, const JudgeOptions& options);
  ~HttpJudge() override;

  std::string name() const override { return spec_; }
  // Thread-safe: each concurrent call uses its own libcurl handle (kept for reuse).
  Judgment judge(const JudgeQuery& query) override;
  int max_concurrency() const override { return options_.max_concurrency; }

  // HTTP requests sent so far, retries included.
  int64_t requests_sent() const { return requests_.load(); }

 private:
  struct HandlePool;
  std::string spec_;
  HttpJudgeSpec parsed_;
  JudgeOptions options_;
  std::string api_key_;
  std::unique_ptr<HandlePool> pool_;
  std::atomic<int64_t> requests_{0};
  std::atomic<uint64_t> jitter_counter_{0};
};

}  // namespace emlab
