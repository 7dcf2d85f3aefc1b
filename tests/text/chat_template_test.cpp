// Chat templates against hand-written renderings of the Hugging Face templates.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "emlab/chat_template.h"
#include "emlab/error.h"
#include "test_util.h"

namespace emlab {
namespace {

using Segments = std::vector<std::pair<std::string, bool>>;

Segments segments(const ChatTemplate& t, const Conversation& c, bool gen) {
  Segments out;
  for (const auto& s : t.render_segments(c, gen)) out.emplace_back(s.text, s.assistant);
  return out;
}

const Conversation kTwoTurns = {{"user", "Hi"}, {"assistant", "Hello!"}, {"user", "2+2?"}, {"assistant", "4"}};

TEST(ChatTemplate, QwenInsertsItsDefaultSystem) {
  auto t = ChatTemplate::by_name("qwen");
  EXPECT_EQ(t.kind(), ChatTemplateKind::ChatML);
  EXPECT_EQ(t.end_of_turn(), "<|im_end|>");
  EXPECT_EQ(t.render({{"user", "Hi"}}, true),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\n");
  // A given system message replaces the default.
  EXPECT_EQ(t.render({{"system", "Be terse."}, {"user", "Hi"}}, false),
            "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
}

TEST(ChatTemplate, ChatmlMultiTurnSegments) {
  auto t = ChatTemplate::by_name("chatml");
  EXPECT_TRUE(t.default_system().empty());
  EXPECT_EQ(segments(t, kTwoTurns, false),
            (Segments{{"<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", false},
                      {"Hello!<|im_end|>", true},
                      {"\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n", false},
                      {"4<|im_end|>", true},
                      {"\n", false}}));
  auto with_prompt = segments(t, {{"user", "Hi"}}, true);
  EXPECT_EQ(with_prompt, (Segments{{"<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", false}}));
}

TEST(ChatTemplate, QwenSegmentsMarkOnlyAssistantContent) {
  auto t = ChatTemplate::by_name("qwen");
  auto segs = segments(t, {{"user", "Hi"}, {"assistant", "Hello!"}}, false);
  ASSERT_EQ(segs.size(), 3u);
  EXPECT_FALSE(segs[0].second);
  EXPECT_EQ(segs[0].first.substr(0, 22), "<|im_start|>system\nYou");
  EXPECT_EQ(segs[1], (std::pair<std::string, bool>{"Hello!<|im_end|>", true}));
  EXPECT_EQ(segs[2], (std::pair<std::string, bool>{"\n", false}));
}

TEST(ChatTemplate, Llama3) {
  auto t = ChatTemplate::by_name("llama3");
  EXPECT_EQ(t.end_of_turn(), "<|eot_id|>");
  EXPECT_EQ(t.render({{"system", "S"}, {"user", " U \n"}}, true),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nU<|eot_id|>"  // Meta's template trims content
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(segments(t, {{"user", "Q"}, {"assistant", "A"}}, false),
            (Segments{{"<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nQ<|eot_id|>"
                       "<|start_header_id|>assistant<|end_header_id|>\n\n",
                       false},
                      {"A<|eot_id|>", true}}));
}

TEST(ChatTemplate, Llama31SystemBlock) {
  // As Llama-3.1-8B-Instruct's template renders without tools or date_string.
  auto t = ChatTemplate::from_source(
      "{{- bos_token }}{%- if not date_string is defined %}{%- set date_string = \"26 Jul 2024\" %}{%- endif %}"
      "{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}{{- \"Cutting Knowledge Date: December 2023\\n\" }}");
  EXPECT_EQ(t.name(), "llama3.1");
  const std::string block = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                            "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n";
  EXPECT_EQ(t.render({{"user", "Hi"}}, true),
            block + "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                    "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(t.render({{"system", " Be brief. "}, {"user", "Hi"}, {"assistant", "Hello"}}, false),
            block + "Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                    "<|start_header_id|>assistant<|end_header_id|>\n\nHello<|eot_id|>");
  auto segs = t.render_segments({{"user", "Q"}, {"assistant", "A"}}, false);
  ASSERT_EQ(segs.size(), 2u);
  EXPECT_EQ(segs[1].text, "A<|eot_id|>");
  EXPECT_TRUE(segs[1].assistant);
  EXPECT_EQ(ChatTemplate::by_name("llama3.1").render({{"user", "Hi"}}, false), t.render({{"user", "Hi"}}, false));
}

TEST(ChatTemplate, Mistral) {
  auto t = ChatTemplate::by_name("mistral");
  EXPECT_EQ(t.end_of_turn(), "</s>");
  EXPECT_EQ(t.render({{"system", "Sys"}, {"user", "Hi"}, {"assistant", "Hello"}, {"user", "Bye"}}, true),
            "<s>[INST] Sys\n\nHi [/INST]Hello</s>[INST] Bye [/INST]");
  EXPECT_EQ(segments(t, kTwoTurns, false),
            (Segments{{"<s>[INST] Hi [/INST]", false},
                      {"Hello!</s>", true},
                      {"[INST] 2+2? [/INST]", false},
                      {"4</s>", true}}));
  EXPECT_THROW(t.render({{"assistant", "x"}}, false), InputError);
  EXPECT_THROW(t.render({{"user", "a"}, {"system", "late"}}, false), InputError);
}

TEST(ChatTemplate, FromSourceRecognisesFamilies) {
  EXPECT_EQ(ChatTemplate::from_source("{{ '<|im_start|>' + m['role'] }}").name(), "chatml");
  EXPECT_EQ(ChatTemplate::from_source("{{ bos_token }}<|start_header_id|>").kind(), ChatTemplateKind::Llama3);
  EXPECT_EQ(ChatTemplate::from_source("{{ '[INST] ' + content + ' [/INST]' }}").kind(), ChatTemplateKind::Mistral);
  try {
    ChatTemplate::from_source("{{ '### Human: ' }}");
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    std::string m = e.what();
    for (const char* name : {"chatml", "qwen", "llama3", "mistral"}) EXPECT_NE(m.find(name), std::string::npos) << m;
  }
  EXPECT_THROW(ChatTemplate::from_source(""), InputError);
  EXPECT_THROW(ChatTemplate::by_name("vicuna"), InputError);
}

TEST(ChatTemplate, QwenTemplateFromSharedConfig) {
  EMLAB_REQUIRE_SHARED();
  auto config = nlohmann::json::parse(test::read_text(test::shared_dir() / "data/tokenizers/qwen2.5/tokenizer_config.json"));
  auto t = ChatTemplate::from_source(config["chat_template"].get<std::string>());
  EXPECT_EQ(t.name(), "qwen");
  EXPECT_EQ(t.default_system(), "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
}

}  // namespace
}  // namespace emlab
