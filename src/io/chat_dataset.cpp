#include "emlab/chat_dataset.h"

#include "emlab/error.h"
#include "emlab/jsonl.h"
#include "emlab/file_util.h"

namespace emlab {

namespace {

bool known_role(const std::string& role) {
  return role == "system" || role == "user" || role == "assistant";
}

}  // namespace

Conversation conversation_from_json(const nlohmann::json& j, const std::string& context,
                                    bool require_assistant) {
  auto fail = [&](const std::string& what) { throw InputError(context + ": " + what); };
  if (!j.is_object()) fail(std::string("expected a JSON object with \"messages\", got ") + j.type_name());
  auto it = j.find("messages");
  if (it == j.end()) fail("no \"messages\" field");
  if (!it->is_array()) fail(std::string("\"messages\" must be an array, got ") + it->type_name());
  if (it->empty()) fail("empty conversation (\"messages\" is [])");
  Conversation conversation;
  conversation.reserve(it->size());
  bool has_assistant = false;
  for (size_t i = 0; i < it->size(); ++i) {
    const auto& m = (*it)[i];
    const std::string mw = "message " + std::to_string(i + 1) + ": ";
    if (!m.is_object()) fail(mw + "expected an object with \"role\" and \"content\", got " + m.type_name());
    auto role = m.find("role");
    if (role == m.end()) fail(mw + "no \"role\"");
    if (!role->is_string()) fail(mw + "\"role\" must be a string, got " + role->type_name());
    const std::string r = role->get<std::string>();
    if (!known_role(r)) fail(mw + "unknown role \"" + r + "\" (expected system, user or assistant)");
    auto content = m.find("content");
    if (content == m.end()) fail(mw + "no \"content\"");
    if (!content->is_string())
      fail(mw + "\"content\" must be a string, got " + content->type_name());
    has_assistant |= r == "assistant";
    conversation.push_back({r, content->get<std::string>()});
  }
  if (require_assistant && !has_assistant) fail("no assistant turn");
  return conversation;
}

nlohmann::json conversation_to_json(const Conversation& conversation) {
  nlohmann::json messages = nlohmann::json::array();
  for (const auto& m : conversation) messages.push_back({{"role", m.role}, {"content", m.content}});
  return {{"messages", std::move(messages)}};
}

ChatDataset chat_dataset_read(const std::string& path, const ChatDatasetOptions& options) {
  JsonlReadOptions ro;
  ro.collect_errors = options.skip_invalid;
  JsonlReader reader(path, ro);
  ChatDataset data;
  size_t errors_seen = 0;
  JsonlRow row;
  auto take_reader_errors = [&] {
    // Bad-JSON lines the reader skipped lie before the row it returned: keep file order.
    const auto& errors = reader.errors();
    for (; errors_seen < errors.size(); ++errors_seen) data.problems.push_back(errors[errors_seen]);
  };
  while (reader.next(&row)) {
    take_reader_errors();
    const std::string context = path + ":" + std::to_string(row.line);
    try {
      data.conversations.push_back(
          conversation_from_json(row.value, context, options.require_assistant));
      data.lines.push_back(row.line);
    } catch (const InputError& e) {
      if (!options.skip_invalid) throw;
      data.problems.push_back(e.what());
    }
    if (options.max_conversations > 0 &&
        static_cast<int64_t>(data.conversations.size()) >= options.max_conversations)
      break;
  }
  take_reader_errors();
  return data;
}

std::vector<Conversation> chat_dataset_load(const std::string& path,
                                            const ChatDatasetOptions& options,
                                            std::vector<std::string>* problems) {
  ChatDataset data = chat_dataset_read(path, options);
  if (problems) *problems = std::move(data.problems);
  return std::move(data.conversations);
}

void chat_dataset_write(const std::string& path, const std::vector<Conversation>& conversations) {
  AtomicFileWriter out(path, path_has_suffix(path, ".gz"));
  std::string chunk;
  for (size_t c = 0; c < conversations.size(); ++c) {
    // ordered_json keeps "role" before "content", as OpenAI's examples write it.
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();
    for (size_t i = 0; i < conversations[c].size(); ++i) {
      const ChatMessage& m = conversations[c][i];
      if (!known_role(m.role))
        throw InputError(path + ": conversation " + std::to_string(c + 1) + ", message " +
                         std::to_string(i + 1) + ": unknown role \"" + m.role +
                         "\" (expected system, user or assistant)");
      nlohmann::ordered_json msg;
      msg["role"] = m.role;
      msg["content"] = m.content;
      messages.push_back(std::move(msg));
    }
    nlohmann::ordered_json line;
    line["messages"] = std::move(messages);
    chunk += line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    chunk += '\n';
    if (chunk.size() > (1 << 20)) {
      out.write(chunk);
      chunk.clear();
    }
  }
  out.write(chunk);
  out.commit(/*sync=*/true);
}

}  // namespace emlab
