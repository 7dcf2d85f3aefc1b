#include "text/json_capture.h"

#include "emlab/error.h"

namespace emlab::text {

using nlohmann::json;

namespace {

// Builds a DOM from SAX events, except inside the captured vocab object / merges array.
class CaptureSax : public nlohmann::json_sax<json> {
 public:
  enum class Mode { Tokenizer, VocabFile };
  CaptureSax(json* root, CapturedVocab* out, Mode mode, std::string where)
      : root_(root), out_(out), mode_(mode), where_(std::move(where)) {}

  bool null() override { return value(nullptr); }
  bool boolean(bool v) override { return value(v); }
  bool number_integer(number_integer_t v) override { return capture_ == Capture::Vocab ? vocab_id(v) : value(v); }
  bool number_unsigned(number_unsigned_t v) override {
    return capture_ == Capture::Vocab ? vocab_id(static_cast<int64_t>(v)) : value(v);
  }
  bool number_float(number_float_t v, const string_t&) override { return value(v); }
  bool binary(binary_t& v) override { return value(json::binary(v)); }
  bool string(string_t& v) override {
    if (capture_ == Capture::Merges) {
      if (merge_depth_ == 1) {  // "left right"
        size_t space = v.find(' ');
        if (space == std::string::npos || v.find(' ', space + 1) != std::string::npos) return bad_merge();
        out_->merges.emplace_back(v.substr(0, space), v.substr(space + 1));
      } else {
        pair_.push_back(std::move(v));
      }
      return true;
    }
    return value(std::move(v));
  }
  bool start_object(std::size_t) override {
    if (capture_ == Capture::Vocab) return fail("the id of '" + vocab_key_ + "' is not an integer");
    if (capture_ == Capture::Merges) return bad_merge();
    if (mode_ == Mode::VocabFile && stack_.empty()) return begin(Capture::Vocab);
    if (mode_ == Mode::Tokenizer && stack_.size() == 2 && keys_[0] == "model" && keys_[1] == "vocab") return begin(Capture::Vocab);
    return open(json::object());
  }
  bool end_object() override {
    if (capture_ == Capture::Vocab) return end_capture();
    return close();
  }
  bool start_array(std::size_t) override {
    if (capture_ == Capture::Merges) {
      if (merge_depth_ != 1) return bad_merge();
      ++merge_depth_;
      pair_.clear();
      return true;
    }
    if (capture_ == Capture::Vocab) return fail("the id of '" + vocab_key_ + "' is not an integer");
    if (mode_ == Mode::Tokenizer && stack_.size() == 2 && keys_[0] == "model" && keys_[1] == "merges") {
      merge_depth_ = 1;
      return begin(Capture::Merges);
    }
    return open(json::array());
  }
  bool end_array() override {
    if (capture_ == Capture::Merges) {
      if (--merge_depth_ == 0) return end_capture();
      if (pair_.size() != 2) return bad_merge();
      out_->merges.emplace_back(std::move(pair_[0]), std::move(pair_[1]));
      return true;
    }
    return close();
  }
  bool key(string_t& k) override {
    if (capture_ == Capture::Vocab) {
      vocab_key_ = std::move(k);
      return true;
    }
    keys_.back() = std::move(k);
    return true;
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) override {
    throw InputError(where_ + ": not valid JSON at byte " + std::to_string(position) + " (" + e.what() + ")");
  }

 private:
  enum class Capture { None, Vocab, Merges };

  bool fail(const std::string& what) { throw InputError(where_ + ": " + what); }
  bool bad_merge() {
    return fail("model.merges[" + std::to_string(out_->merges.size()) + "]: expected \"left right\" or [left, right]");
  }
  bool vocab_id(int64_t id) {
    if (id < 0 || id > INT32_MAX) fail("the id of '" + vocab_key_ + "' is out of range");
    out_->vocab.emplace_back(std::move(vocab_key_), static_cast<int32_t>(id));
    return true;
  }
  bool begin(Capture c) {
    capture_ = c;
    (c == Capture::Vocab ? out_->has_vocab : out_->has_merges) = true;
    return true;
  }
  bool end_capture() {
    capture_ = Capture::None;
    return mode_ == Mode::VocabFile ? true : value(nullptr);
  }
  bool value(json v) {
    if (capture_ == Capture::Vocab) fail("the id of '" + vocab_key_ + "' is not an integer");
    if (capture_ == Capture::Merges) return bad_merge();
    place(std::move(v));
    return true;
  }
  json* place(json v) {
    if (stack_.empty()) {
      *root_ = std::move(v);
      return root_;
    }
    json& top = *stack_.back();
    if (top.is_array()) {
      top.push_back(std::move(v));
      return &top.back();
    }
    json& slot = top[keys_.back()];
    slot = std::move(v);
    return &slot;
  }
  bool open(json container) {
    stack_.push_back(place(std::move(container)));
    keys_.emplace_back();
    return true;
  }
  bool close() {
    stack_.pop_back();
    keys_.pop_back();
    return true;
  }

  json* root_;
  CapturedVocab* out_;
  Mode mode_;
  std::string where_;
  std::vector<json*> stack_;       // open containers of the DOM
  std::vector<std::string> keys_;  // last key of each open object
  Capture capture_ = Capture::None;
  int merge_depth_ = 0;
  std::string vocab_key_;
  std::vector<std::string> pair_;
};

}  // namespace

void parse_vocab_json(const std::string& text, const std::string& where, CapturedVocab* out) {
  json root;
  CaptureSax sax(&root, out, CaptureSax::Mode::VocabFile, where);
  json::sax_parse(text, &sax);
  if (!out->has_vocab) throw InputError(where + ": expected an object of token -> id");
}

json parse_tokenizer_json(const std::string& text, const std::string& where, CapturedVocab* out) {
  json root;
  CaptureSax sax(&root, out, CaptureSax::Mode::Tokenizer, where);
  json::sax_parse(text, &sax);
  return root;
}

}  // namespace emlab::text
