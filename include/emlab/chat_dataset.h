// Chat datasets in the OpenAI fine-tuning format: one {"messages": [{"role", "content"}, ...]} per
// line, plain or gzip (.jsonl / .jsonl.gz). Used for training data (insecure, jailbroken, ...).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "emlab/chat.h"

namespace emlab {

struct ChatDatasetOptions {
  bool skip_invalid = false;       // skip bad lines (listed in ChatDataset::problems) instead of throwing
  bool require_assistant = true;   // a conversation needs an assistant turn (something to train on)
  int64_t max_conversations = 0;   // stop after this many valid conversations (0 = all)
};

struct ChatDataset {
  std::vector<Conversation> conversations;
  std::vector<int64_t> lines;          // source line (1-based) of each conversation
  std::vector<std::string> problems;   // "FILE:LINE: problem" for each skipped line (skip_invalid)
};

// Reads and validates every line: JSON object, "messages" a non-empty array of objects with role
// system/user/assistant and string content, an assistant turn. Extra keys (OpenAI's "weight",
// "name") are ignored. A bad line throws InputError "FILE:LINE: problem" unless skip_invalid.
ChatDataset chat_dataset_read(const std::string& path, const ChatDatasetOptions& options = {});

// Just the conversations; with skip_invalid the problems go to *problems (when given).
std::vector<Conversation> chat_dataset_load(const std::string& path,
                                            const ChatDatasetOptions& options = {},
                                            std::vector<std::string>* problems = nullptr);

// One {"messages": [...]} object. Throws InputError "CONTEXT: problem" (CONTEXT is e.g. FILE:LINE).
Conversation conversation_from_json(const nlohmann::json& j, const std::string& context,
                                    bool require_assistant = true);
// {"messages": [{"role": ..., "content": ...}, ...]}
nlohmann::json conversation_to_json(const Conversation& conversation);

// Writes the dataset atomically (temporary file + rename), gzip when the path ends in ".gz".
// Throws InputError for an unknown role (naming the conversation and message index).
void chat_dataset_write(const std::string& path, const std::vector<Conversation>& conversations);

}  // namespace emlab
