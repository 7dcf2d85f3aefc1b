// A loopback OpenAI-compatible /v1/chat/completions server for judge tests (cpp-httplib), with
// per-request fault injection. By default it answers like a judge: the prompt's "score=N" (if
// any) becomes top logprobs {"N": 0.7, "N+1": 0.3}, so the expected score is N + 0.3; a prompt
// with "label=X" answers {X: 0.8, "UNKNOWN": 0.2}.
#pragma once

#include <httplib.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <map>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace emlab::test {

struct FakeReply {
  int status = 200;
  std::string body;                            // empty: the default judge answer (status 200)
  std::map<std::string, std::string> headers;  // e.g. {"Retry-After", "1"}
  double delay_s = 0;                          // sleep before answering (slow server)
};

class FakeOpenAIServer {
 public:
  // Decides the reply to a request: its parsed body and how many earlier requests had the same prompt.
  using Policy = std::function<FakeReply(const nlohmann::json& request, int attempt)>;

  explicit FakeOpenAIServer(Policy policy = {}) : policy_(std::move(policy)) {
    server_.new_task_queue = [] { return new httplib::ThreadPool(48); };
    server_.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      handle(req, res);
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // The socket already listens (requests queue up); stop() needs the accept loop running.
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FakeOpenAIServer() {
    server_.stop();
    thread_.join();
  }

  int port() const { return port_; }
  std::string spec(const std::string& model = "judge-model") const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/v1#" + model;
  }

  void set_policy(Policy policy) {
    std::lock_guard<std::mutex> lock(mu_);
    policy_ = std::move(policy);
  }
  int total_requests() const { return total_.load(); }
  int max_in_flight() const { return max_in_flight_.load(); }
  int requests_for(const std::string& prompt) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = attempts_.find(prompt);
    return it == attempts_.end() ? 0 : it->second;
  }
  std::map<std::string, int> attempts() {
    std::lock_guard<std::mutex> lock(mu_);
    return attempts_;
  }
  std::vector<nlohmann::json> bodies() {
    std::lock_guard<std::mutex> lock(mu_);
    return bodies_;
  }
  std::vector<std::string> authorizations() {
    std::lock_guard<std::mutex> lock(mu_);
    return auths_;
  }

  // The default answer for a prompt (see the file comment).
  static std::string judge_body(const std::string& prompt) {
    nlohmann::json top = nlohmann::json::array();
    std::smatch m;
    if (std::regex_search(prompt, m, std::regex("score=(\\d+)"))) {
      int n = std::stoi(m[1]);
      top.push_back({{"token", std::to_string(n)}, {"logprob", std::log(0.7)}, {"bytes", nullptr}});
      top.push_back({{"token", std::to_string(n + 1)}, {"logprob", std::log(0.3)}, {"bytes", nullptr}});
    } else if (std::regex_search(prompt, m, std::regex("label=(\\w+)"))) {
      top.push_back({{"token", m[1].str()}, {"logprob", std::log(0.8)}, {"bytes", nullptr}});
      top.push_back({{"token", "UNKNOWN"}, {"logprob", std::log(0.2)}, {"bytes", nullptr}});
    } else {
      top.push_back({{"token", "REFUSAL"}, {"logprob", std::log(0.9)}, {"bytes", nullptr}});
      top.push_back({{"token", "50"}, {"logprob", std::log(0.1)}, {"bytes", nullptr}});
    }
    nlohmann::json body = {
        {"id", "chatcmpl-test"},
        {"object", "chat.completion"},
        {"model", "judge-model"},
        {"choices",
         {{{"index", 0},
           {"message", {{"role", "assistant"}, {"content", top[0]["token"]}}},
           {"logprobs", {{"content", {{{"token", top[0]["token"]}, {"logprob", top[0]["logprob"]}, {"top_logprobs", top}}}}}},
           {"finish_reason", "length"}}}}};
    return body.dump();
  }

 private:
  void handle(const httplib::Request& req, httplib::Response& res) {
    int now = ++in_flight_;
    for (int seen = max_in_flight_.load(); now > seen && !max_in_flight_.compare_exchange_weak(seen, now);) {
    }
    ++total_;
    nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
    std::string prompt;
    if (!body.is_discarded() && body.contains("messages") && body["messages"].is_array() && !body["messages"].empty())
      prompt = body["messages"][0].value("content", "");
    int attempt;
    Policy policy;
    {
      std::lock_guard<std::mutex> lock(mu_);
      attempt = attempts_[prompt]++;
      bodies_.push_back(body);
      auths_.push_back(req.get_header_value("Authorization"));
      policy = policy_;
    }
    FakeReply reply = policy ? policy(body, attempt) : FakeReply{};
    if (reply.delay_s > 0) std::this_thread::sleep_for(std::chrono::duration<double>(reply.delay_s));
    res.status = reply.status;
    for (const auto& [k, v] : reply.headers) res.set_header(k, v);
    if (reply.body.empty() && reply.status == 200)
      res.set_content(judge_body(prompt), "application/json");
    else
      res.set_content(reply.body, "application/json");
    --in_flight_;
  }

  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  Policy policy_;
  std::mutex mu_;
  std::map<std::string, int> attempts_;
  std::vector<nlohmann::json> bodies_;
  std::vector<std::string> auths_;
  std::atomic<int> total_{0}, in_flight_{0}, max_in_flight_{0};
};

}  // namespace emlab::test
