// Chat messages, shared by templates, datasets, sampling and judges.
#pragma once

#include <string>
#include <vector>

namespace emlab {

struct ChatMessage {
  std::string role;     // "system", "user" or "assistant"
  std::string content;
};

using Conversation = std::vector<ChatMessage>;

}  // namespace emlab
