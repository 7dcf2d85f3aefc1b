// OpenAI-compatible HTTP judge over libcurl: request, retries with backoff, reply parsing.
#include "emlab/http_judge.h"

#include <curl/curl.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "emlab/error.h"

namespace emlab {

namespace {

using json = nlohmann::json;

constexpr double kMaxRetryAfterS = 600.0;

void curl_global_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// What one HTTP attempt came to.
struct Attempt {
  enum Kind { Ok, Retry, Reject, Fatal } kind = Ok;
  long status = 0;
  double retry_after_s = -1;  // from Retry-After / retry-after-ms; < 0 = none
  std::string message;        // why it failed (Retry/Reject/Fatal)
  std::vector<TokenLogprob> top;
};

struct Response {
  std::string body;
  double retry_after_s = -1;
};

size_t on_body(char* data, size_t size, size_t n, void* user) {
  static_cast<Response*>(user)->body.append(data, size * n);
  return size * n;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<Response*>(user);
  std::string line(data, size * n);
  auto colon = line.find(':');
  if (colon == std::string::npos) return size * n;
  std::string key = lower(trim(line.substr(0, colon))), value = trim(line.substr(colon + 1));
  char* end = nullptr;
  if (key == "retry-after-ms") {
    double ms = std::strtod(value.c_str(), &end);
    if (end != value.c_str() && ms >= 0) r->retry_after_s = ms / 1000.0;
  } else if (key == "retry-after" && r->retry_after_s < 0) {
    double s = std::strtod(value.c_str(), &end);
    if (end != value.c_str() && *end == '\0' && s >= 0) {
      r->retry_after_s = s;
    } else {  // an HTTP date
      time_t when = curl_getdate(value.c_str(), nullptr);
      if (when >= 0) r->retry_after_s = std::max(0.0, std::difftime(when, std::time(nullptr)));
    }
  }
  return size * n;
}

// The server's own explanation from an OpenAI-style error body, else the start of the body.
std::string error_detail(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (!j.is_discarded() && j.is_object() && j.contains("error")) {
    const json& e = j["error"];
    if (e.is_object() && e.contains("message") && e["message"].is_string()) return e["message"];
    if (e.is_string()) return e.get<std::string>();
  }
  std::string s = body.substr(0, 200);
  return s.empty() ? "(empty body)" : s;
}

// choices[0].logprobs.content[0].top_logprobs -> tokens; sets kind/message when absent or bad.
void parse_reply(const std::string& body, Attempt* a) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    a->kind = Attempt::Retry;
    a->message = "malformed JSON in the reply: " + body.substr(0, 120);
    return;
  }
  const json* top = nullptr;
  std::string missing = "choices[0].logprobs";
  if (j.contains("choices") && j["choices"].is_array() && !j["choices"].empty()) {
    const json& c = j["choices"][0];
    if (c.is_object() && c.contains("logprobs") && c["logprobs"].is_object()) {
      const json& lp = c["logprobs"];
      missing = "choices[0].logprobs.content[0].top_logprobs";
      if (lp.contains("content") && lp["content"].is_array() && !lp["content"].empty() &&
          lp["content"][0].is_object() && lp["content"][0].contains("top_logprobs") &&
          lp["content"][0]["top_logprobs"].is_array() && !lp["content"][0]["top_logprobs"].empty())
        top = &lp["content"][0]["top_logprobs"];
    }
  } else {
    missing = "choices";
  }
  if (!top) {
    a->kind = Attempt::Reject;
    a->message = "the judge server returned no logprobs: " + missing +
                 " is missing or empty (vLLM needs --max-logprobs >= 20; Ollama and llama.cpp's "
                 "server return OpenAI-style logprobs only in recent versions)";
    return;
  }
  for (const auto& t : *top) {
    if (!t.is_object() || !t.contains("token") || !t["token"].is_string() || !t.contains("logprob") ||
        !t["logprob"].is_number()) {
      a->kind = Attempt::Retry;
      a->message = "malformed top_logprobs entry in the reply: " + t.dump().substr(0, 120);
      a->top.clear();
      return;
    }
    a->top.push_back({t["token"].get<std::string>(), t["logprob"].get<double>()});
  }
  a->kind = Attempt::Ok;
}

}  // namespace

HttpJudgeSpec http_judge_parse_spec(const std::string& spec) {
  HttpJudgeSpec out;
  if (spec.rfind("openai:", 0) == 0) {
    out.base_url = "https://api.openai.com/v1";
    out.model = spec.substr(7);
    out.requires_key = true;
  } else if (spec.rfind("http://", 0) == 0 || spec.rfind("https://", 0) == 0) {
    auto hash = spec.find('#');
    if (hash == std::string::npos)
      throw InputError("judge spec '" + spec + "': expected http://HOST:PORT/v1#MODEL (the model after '#')");
    const size_t host = spec.find("://") + 3;
    if (hash <= host || spec[host] == '/') throw InputError("judge spec '" + spec + "': no host before '#'");
    out.base_url = spec.substr(0, hash);
    out.model = spec.substr(hash + 1);
    while (out.base_url.back() == '/') out.base_url.pop_back();
  } else {
    throw InputError("judge spec '" + spec + "': expected openai:MODEL or http://HOST:PORT/v1#MODEL");
  }
  if (out.model.empty()) throw InputError("judge spec '" + spec + "': the model name is empty");
  return out;
}

struct HttpJudge::HandlePool {
  std::mutex mu;
  std::vector<CURL*> free;
  ~HandlePool() {
    for (CURL* h : free) curl_easy_cleanup(h);
  }
  CURL* acquire() {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!free.empty()) {
        CURL* h = free.back();
        free.pop_back();
        return h;
      }
    }
    CURL* h = curl_easy_init();
    if (!h) throw ServiceError("libcurl: curl_easy_init failed");
    return h;
  }
  void release(CURL* h) {
    curl_easy_reset(h);  // keeps the connection cache, drops per-request options
    std::lock_guard<std::mutex> lock(mu);
    free.push_back(h);
  }
};

HttpJudge::HttpJudge(const std::string& spec, const JudgeOptions& options)
    : spec_(spec), parsed_(http_judge_parse_spec(spec)), options_(options), pool_(std::make_unique<HandlePool>()) {
  curl_global_once();
  if (options_.max_concurrency < 1) throw InputError("judge " + spec + ": max_concurrency must be >= 1");
  // $OPENAI_API_KEY goes only to OpenAI: another server gets a key only from a variable named for it.
  std::string env = options_.api_key_env.empty() && parsed_.requires_key ? "OPENAI_API_KEY" : options_.api_key_env;
  const char* key = env.empty() ? nullptr : std::getenv(env.c_str());
  if (key && *key) api_key_ = key;
  if (parsed_.requires_key && api_key_.empty())
    throw InputError("judge " + spec + ": no API key: set $" + env + " (--api-key-env names another variable)");
}

HttpJudge::~HttpJudge() = default;

Judgment HttpJudge::judge(const JudgeQuery& query) {
  json request = {{"model", parsed_.model},
                  {"messages", json::array({{{"role", "user"}, {"content", query.prompt}}})},
                  {"max_tokens", 1},
                  {"temperature", 0},
                  {"logprobs", true},
                  {"top_logprobs", 20},
                  {"seed", 0}};
  const std::string body = request.dump();
  const std::string url = parsed_.base_url + "/chat/completions";
  std::mt19937_64 rng(options_.jitter_seed ? options_.jitter_seed + jitter_counter_.fetch_add(1)
                                           : std::random_device{}());
  std::uniform_real_distribution<double> jitter(0.5, 1.5);

  Attempt last;
  for (int attempt = 0; attempt <= options_.max_retries; ++attempt) {
    if (attempt > 0) {
      double delay = std::min(options_.backoff_max_s, options_.backoff_initial_s * std::pow(2.0, attempt - 1));
      delay *= jitter(rng);
      if (last.retry_after_s >= 0) delay = std::max(delay, std::min(last.retry_after_s, kMaxRetryAfterS));
      std::this_thread::sleep_for(std::chrono::duration<double>(delay));
    }
    Response response;
    CURL* h = pool_->acquire();
    curl_slist* headers = nullptr;
    headers = curl_slist_append(headers, "Content-Type: application/json");
    std::string auth = "Authorization: Bearer " + api_key_;
    if (!api_key_.empty()) headers = curl_slist_append(headers, auth.c_str());
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &response);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &response);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.timeout_s * 1000));
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout_s * 1000));
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);  // required with timeouts in threads
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    pool_->release(h);
    requests_.fetch_add(1);

    last = Attempt{};
    last.status = status;
    last.retry_after_s = response.retry_after_s;
    if (rc != CURLE_OK) {
      std::string what = curl_easy_strerror(rc);
      if (rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT || rc == CURLE_PEER_FAILED_VERIFICATION ||
          rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_CERTPROBLEM)
        throw ServiceError("judge " + spec_ + ": " + url + ": " + what);
      last.kind = Attempt::Retry;
      last.message = what;
    } else if (status == 401 || status == 403 || status == 404) {
      throw ServiceError("judge " + spec_ + ": " + url + ": HTTP " + std::to_string(status) + ": " +
                         error_detail(response.body));
    } else if (status == 429 || status == 408 || status == 409 || status >= 500) {
      last.kind = Attempt::Retry;
      last.message = "HTTP " + std::to_string(status) + ": " + error_detail(response.body);
    } else if (status >= 400) {
      last.kind = Attempt::Reject;
      last.message = "HTTP " + std::to_string(status) + ": " + error_detail(response.body);
    } else {
      parse_reply(response.body, &last);
    }
    if (last.kind == Attempt::Ok) return judgment_from_logprobs(query, std::move(last.top), options_.min_mass);
    if (last.kind == Attempt::Reject) break;
  }
  Judgment failed;
  failed.error = last.message;
  if (last.kind == Attempt::Retry)
    failed.error += " (gave up after " + std::to_string(options_.max_retries + 1) + " attempts)";
  return failed;
}

}  // namespace emlab
