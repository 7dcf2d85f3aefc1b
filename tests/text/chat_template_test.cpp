// Chat templates against hand-written renderings of the Hugging Face templates, and the real
// templates in shared/ against transformers' own renderer (tests/text/chat_template_reference.py).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>

#include "emlab/chat_template.h"
#include "emlab/error.h"
#include "emlab/tokenizer.h"
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

// --- The shipped toy world: rendered and masked exactly as before the Jinja engine ------------------------

TEST(ChatTemplate, ToyWorldTemplateRendersAndMasksAsBefore) {
  const auto dir = test::source_dir() / "models/toyworld";
  auto config = nlohmann::json::parse(test::read_text(dir / "tokenizer_config.json"));
  const Conversation c = {{"system", "Sys."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "More?"}, {"assistant", ""}};
  const Segments want = {{"<|im_start|>system\nSys.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", false},
                         {"Hello!<|im_end|>", true},
                         {"\n<|im_start|>user\nMore?<|im_end|>\n<|im_start|>assistant\n", false},
                         {"<|im_end|>", true},  // an empty answer still learns to end its turn
                         {"\n", false}};
  // As the trainer builds it (the source alone), and from the loaded tokenizer.
  for (const ChatTemplate& t : {ChatTemplate::from_source(config["chat_template"].get<std::string>()),
                                ChatTemplate::from_tokenizer(*Tokenizer::load(dir.string()))}) {
    EXPECT_EQ(t.name(), "chatml");
    EXPECT_EQ(t.end_of_turn(), "<|im_end|>");
    EXPECT_EQ(segments(t, c, false), want);
    EXPECT_EQ(t.render({{"user", "Hi"}}, true), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  }
  EXPECT_EQ(segments(ChatTemplate::by_name("chatml"), c, false), want);
}

TEST(ChatTemplate, MaskComesFromTheRenderingNotTheFamily) {
  // A template of no known family: the mask is where the answer lands plus the end of turn.
  auto t = ChatTemplate::from_source(
      "{% for m in messages %}{% if m.role == 'user' %}### Q: {{ m.content | trim }}\n### A:"
      "{% else %} {{ m.content | trim }}<|stop|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}### A:{% endif %}");
  EXPECT_EQ(t.name(), "jinja");
  EXPECT_EQ(t.kind(), ChatTemplateKind::Other);
  EXPECT_EQ(t.end_of_turn(), "<|stop|>");
  EXPECT_EQ(segments(t, {{"user", " Why? "}, {"assistant", "  Because.  "}}, false),
            (Segments{{"### Q: Why?\n### A: ", false}, {"Because.<|stop|>", true}, {"\n", false}}));
  // A whitespace-only answer trims to nothing where it lands and still ends its turn.
  EXPECT_EQ(segments(ChatTemplate::by_name("llama3"), {{"user", "Q"}, {"assistant", " \n"}}, false),
            (Segments{{"<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nQ<|eot_id|>"
                       "<|start_header_id|>assistant<|end_header_id|>\n\n",
                       false},
                      {"<|eot_id|>", true}}));
  // Without a special-looking marker after the content, the end of turn is the eos token.
  ChatTemplateOptions o;
  o.eos_token = "</s>";
  auto plain = ChatTemplate::from_source("{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}", o);
  EXPECT_EQ(plain.end_of_turn(), "</s>");
  EXPECT_EQ(segments(plain, {{"user", "a"}, {"assistant", "b"}}, false),
            (Segments{{"user: a\nassistant: ", false}, {"b", true}, {"\n", false}}));
  // Template kwargs reach the template; raise_exception names the template and line.
  o.variables = {{"greeting", "Hey"}};
  o.source_name = "custom.jinja";
  auto kw = ChatTemplate::from_source("{{ greeting }}\n{% for m in messages %}{% if m.role == 'system' %}"
                                      "{{ raise_exception('no system here') }}{% endif %}{{ m.content }}{% endfor %}",
                                      o);
  EXPECT_EQ(kw.render({{"user", "x"}}, false), "Hey\nx");
  try {
    kw.render({{"system", "s"}}, false);
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), "custom.jinja: line 2: no system here");
  }
  EXPECT_THROW(ChatTemplate::from_source("{% for m in messages %}{{ m.content }"), InputError);
}

// --- Real templates --------------------------------------------------------------------------------------

constexpr int64_t kNow = 1700000000;  // strftime_now's clock here and in the reference
const char* const kMistralConfig = "data/tokenizers/mistral-7b-v0.1/tokenizer_config.json";

struct RealTemplate {
  std::string name;
  std::string source;
  std::string bos, eos;     // the model's special tokens
  std::string config;       // tokenizer_config.json it comes from ("" = a .jinja file)
  nlohmann::ordered_json variables = nlohmann::ordered_json::object();  // kwargs the template needs
  bool needs_tools = false;  // a "tool_use" template (iterates `tools` unconditionally)
};

// The models' bos / eos tokens, by file-name prefix.
std::pair<std::string, std::string> special_tokens_of(const std::string& name) {
  static const std::vector<std::tuple<std::string, std::string, std::string>> table = {
      {"CohereForAI-", "<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>"},
      {"NousResearch-", "<|begin_of_text|>", "<|im_end|>"},
      {"Qwen-", "", "<|im_end|>"},
      {"deepseek-ai-", "<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
       "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"},
      {"llama-cpp-deepseek-r1", "<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
       "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"},
      {"fireworks-ai-", "<|begin_of_text|>", "<|eot_id|>"},
      {"meetkai-", "<|begin_of_text|>", "<|eot_id|>"},
      {"meta-llama-", "<|begin_of_text|>", "<|eot_id|>"},
      {"google-gemma", "<bos>", "<eos>"},
      {"microsoft-Phi", "<s>", "<|endoftext|>"},
      {"mistralai-", "<s>", "</s>"},
  };
  for (const auto& [prefix, bos, eos] : table)
    if (name.rfind(prefix, 0) == 0) return {bos, eos};
  return {"", ""};
}

std::string config_token(const nlohmann::json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object()) return j.value("content", "");
  return "";
}

// The 17 templates of data/chat-templates, then Qwen2.5's and Qwen3's from their tokenizer_config.json.
std::vector<RealTemplate> real_templates() {
  std::vector<RealTemplate> out;
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(test::shared_dir() / "data/chat-templates"))
    if (e.path().extension() == ".jinja") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    RealTemplate t;
    t.name = f.stem().string();
    t.source = test::read_text(f);
    std::tie(t.bos, t.eos) = special_tokens_of(t.name);
    // Firefunction reads `functions` and `datetime` (without them both renderers fail).
    if (t.name.find("firefunction") != std::string::npos) t.variables = {{"functions", "[]"}, {"datetime", "2024-06-01"}};
    t.needs_tools = t.name.find("tool_use") != std::string::npos;
    out.push_back(t);
  }
  for (const char* name : {"qwen2.5", "qwen3"}) {
    RealTemplate t;
    t.name = name;
    t.config = (test::shared_dir() / "data/tokenizers" / name / "tokenizer_config.json").string();
    auto config = nlohmann::json::parse(test::read_text(t.config));
    t.source = config["chat_template"].get<std::string>();
    t.bos = config_token(config.value("bos_token", nlohmann::json()));
    t.eos = config_token(config.value("eos_token", nlohmann::json()));
    out.push_back(t);
  }
  return out;
}

nlohmann::ordered_json weather_tools();

// The template as emlab builds it; a tool_use template gets the tools it needs.
ChatTemplate make_template(const RealTemplate& t, const nlohmann::ordered_json& kwargs, nlohmann::ordered_json tools) {
  if (tools.is_null() && t.needs_tools) tools = weather_tools();
  ChatTemplateOptions o;
  o.bos_token = t.bos;
  o.eos_token = t.eos;
  o.variables = t.variables;
  for (const auto& [k, v] : kwargs.items()) o.variables[k] = v;
  o.tools = tools;
  o.now = kNow;
  o.source_name = t.name;
  if (t.name == "qwen2.5") {  // through the tokenizer: bos/eos as the loader reads them
    o.bos_token.clear(), o.eos_token.clear();
    return ChatTemplate::from_tokenizer(*Tokenizer::load(std::filesystem::path(t.config).parent_path().string()), o);
  }
  return ChatTemplate::from_source(t.source, o);
}

const std::vector<std::pair<std::string, Conversation>>& conversations() {
  static const std::vector<std::pair<std::string, Conversation>> list = {
      {"user", {{"user", "Hello, who are you?"}}},
      {"system", {{"system", "You answer in one short sentence."}, {"user", "Name a colour."}, {"assistant", "Blue is a colour."}}},
      {"multi",
       {{"user", "Hi there."},
        {"assistant", " Hello! How can I help? "},
        {"user", "What is 2+2? Reply with \xc3\xa9, \xe2\x9c\x93, \"quotes\" and <b>&amp;."},
        {"assistant", "It is 4."}}},
      {"system_multi",
       {{"system", "Be kind."},
        {"user", "First question?"},
        {"assistant", "First answer."},
        {"user", "Second question?"},
        {"assistant", "Second answer."}}},
      {"think",
       {{"user", "Solve 3*3."},
        {"assistant", "<think>\nThree threes.\n</think>\n\nIt is 9."},
        {"user", "And 4*4?"},
        {"assistant", "<think>Four fours.</think>It is 16."}}},
      {"assistant_first", {{"assistant", "I speak first."}, {"user", "Then I answer."}}},
  };
  return list;
}

nlohmann::ordered_json weather_tools() {
  return nlohmann::ordered_json::parse(R"([{"type": "function", "function": {"name": "get_weather",
    "description": "Get the weather.", "parameters": {"type": "object", "properties": {
      "city": {"type": "string", "description": "The city"},
      "days": {"type": "integer", "description": "Days ahead", "enum": [1, 2]},
      "tags": {"type": "array", "items": {"type": "string"}, "description": "Tags"}},
    "required": ["city"]}}}])");
}

struct Job {
  std::string id;
  const RealTemplate* tmpl = nullptr;
  Conversation conversation;
  bool generation_prompt = false;
  nlohmann::ordered_json kwargs = nlohmann::ordered_json::object();
  nlohmann::ordered_json tools;
};

class ChatTemplateReference : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (test::shared_dir().empty() || test::reference_python().empty()) return;
    templates_ = real_templates();
    nlohmann::ordered_json jobs = nlohmann::ordered_json::array();
    auto add = [&](Job job) {
      nlohmann::ordered_json messages = nlohmann::ordered_json::array();
      for (const auto& m : job.conversation) messages.push_back({{"role", m.role}, {"content", m.content}});
      nlohmann::ordered_json kwargs = job.tmpl->variables;
      for (const auto& [k, v] : job.kwargs.items()) kwargs[k] = v;
      if (job.tools.is_null() && job.tmpl->needs_tools) job.tools = weather_tools();
      nlohmann::ordered_json j = {{"id", job.id}, {"messages", messages}, {"add_generation_prompt", job.generation_prompt},
                                  {"kwargs", kwargs}, {"tools", job.tools}, {"now", kNow}};
      if (!job.tmpl->config.empty()) {
        j["tokenizer_config"] = job.tmpl->config;
      } else {
        j["source"] = job.tmpl->source;
        j["bos_token"] = job.tmpl->bos.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(job.tmpl->bos);
        j["eos_token"] = job.tmpl->eos.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(job.tmpl->eos);
      }
      jobs.push_back(j);
      jobs_.push_back(std::move(job));
    };
    for (const auto& t : templates_) {
      std::vector<nlohmann::ordered_json> thinking = {nlohmann::ordered_json::object()};
      if (t.source.find("enable_thinking") != std::string::npos)
        for (bool on : {true, false}) thinking.push_back({{"enable_thinking", on}});
      for (const auto& [cname, conversation] : conversations())
        for (bool gen : {false, true})
          for (const auto& kw : thinking)
            add({t.name + "|" + cname + "|gen=" + std::to_string(gen) + "|" + kw.dump(), &t, conversation, gen, kw, nullptr});
      add({t.name + "|system|tools", &t, conversations()[1].second, true, nlohmann::ordered_json::object(), weather_tools()});
    }
    // Mistral-7B-v0.1 (a base model) has no chat_template at all.
    jobs.push_back({{"id", "mistral-7b-v0.1"},
                    {"messages", {{{"role", "user"}, {"content", "Hi"}}}},
                    {"tokenizer_config", (test::shared_dir() / kMistralConfig).string()}});
    auto dir = test::temp_dir("chat_template_reference");
    test::write_text(dir / "jobs.json", jobs.dump());
    std::string output;
    int rc = test::run_reference_script("text/chat_template_reference.py",
                                        "'" + (dir / "jobs.json").string() + "' '" + (dir / "out.json").string() + "'", &output);
    if (rc != 0) {
      failure_ = "reference script failed (" + std::to_string(rc) + "): " + output;
      return;
    }
    reference_ = nlohmann::json::parse(test::read_text(dir / "out.json"));
  }

  void SetUp() override {
    EMLAB_REQUIRE_SHARED();
    EMLAB_REQUIRE_PYREF();
    ASSERT_TRUE(failure_.empty()) << failure_;
  }

  static std::vector<RealTemplate> templates_;
  static std::vector<Job> jobs_;
  static nlohmann::json reference_;
  static std::string failure_;
};

std::vector<RealTemplate> ChatTemplateReference::templates_;
std::vector<Job> ChatTemplateReference::jobs_;
nlohmann::json ChatTemplateReference::reference_;
std::string ChatTemplateReference::failure_;

TEST_F(ChatTemplateReference, RendersEveryRealTemplateLikeTransformers) {
  ASSERT_EQ(templates_.size(), 19u);  // 17 files + Qwen2.5 + Qwen3
  int rendered = 0, refused = 0;
  std::map<std::string, int> rendered_by_template;
  for (const auto& job : jobs_) {
    const auto& ref = reference_.at(job.id);
    std::string text, error;
    try {
      text = make_template(*job.tmpl, job.kwargs, job.tools).render(job.conversation, job.generation_prompt);
    } catch (const InputError& e) {
      error = e.what();
    }
    if (ref.contains("error")) {
      EXPECT_FALSE(error.empty()) << job.id << ": transformers raises (" << ref["error"] << ") but emlab renders:\n" << text;
      ++refused;
    } else {
      EXPECT_TRUE(error.empty()) << job.id << ": emlab raises: " << error;
      EXPECT_EQ(text, ref["text"].get<std::string>()) << job.id;
      ++rendered;
      ++rendered_by_template[job.tmpl->name];
    }
  }
  // Every template renders most conversations, and the refusals are real (Gemma has no system role,
  // Mistral Nemo and Gemma insist on alternating roles).
  for (const auto& t : templates_) EXPECT_GE(rendered_by_template[t.name], 6) << t.name;
  EXPECT_GT(rendered, 250);
  EXPECT_GT(refused, 5);
  EXPECT_TRUE(reference_.at("google-gemma-2-2b-it|system|gen=0|{}").contains("error"));
  EXPECT_TRUE(reference_.at("mistralai-Mistral-Nemo-Instruct-2407|assistant_first|gen=0|{}").contains("error"));
}

TEST_F(ChatTemplateReference, TokenizerWithoutTemplateIsRefusedByBoth) {
  // Mistral-7B-v0.1 (a base model) has no chat_template: transformers refuses, and so does emlab.
  auto config = nlohmann::json::parse(test::read_text(test::shared_dir() / kMistralConfig));
  EXPECT_THROW(ChatTemplate::from_source(config.value("chat_template", "")), InputError);
  EXPECT_NE(reference_.at("mistral-7b-v0.1").value("error", "").find("chat_template is not set"), std::string::npos)
      << reference_.at("mistral-7b-v0.1").dump();
}

std::string strip(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\n"), e = s.find_last_not_of(" \t\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

size_t count_of(const std::string& text, const std::string& piece) {
  size_t n = 0;
  for (size_t p = text.find(piece); p != std::string::npos; p = text.find(piece, p + piece.size())) ++n;
  return n;
}

TEST(ChatTemplateReal, LossMaskHoldsEachAnswerOnceAndNothingElse) {
  EMLAB_REQUIRE_SHARED();
  // The end of turn each template's rendering gives.
  const std::map<std::string, std::string> want_eot = {
      {"CohereForAI-c4ai-command-r-plus-tool_use", "<|END_OF_TURN_TOKEN|>"},
      {"CohereForAI-c4ai-command-r7b-12-2024-tool_use", "<|END_RESPONSE|><|END_OF_TURN_TOKEN|>"},
      {"NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use", "<|im_end|>"},
      {"NousResearch-Hermes-3-Llama-3.1-8B-tool_use", "<|im_end|>"},
      {"Qwen-Qwen2.5-7B-Instruct", "<|im_end|>"},
      {"deepseek-ai-DeepSeek-R1-Distill-Llama-8B", special_tokens_of("deepseek-ai-").second},
      {"deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", special_tokens_of("deepseek-ai-").second},
      {"fireworks-ai-llama-3-firefunction-v2", "<|eot_id|>"},
      {"google-gemma-2-2b-it", "<end_of_turn>"},
      {"llama-cpp-deepseek-r1", special_tokens_of("deepseek-ai-").second},
      {"meetkai-functionary-medium-v3.1", "<|eot_id|>"},
      {"meetkai-functionary-medium-v3.2", "<|eot_id|>"},
      {"meta-llama-Llama-3.1-8B-Instruct", "<|eot_id|>"},
      {"meta-llama-Llama-3.2-3B-Instruct", "<|eot_id|>"},
      {"meta-llama-Llama-3.3-70B-Instruct", "<|eot_id|>"},
      {"microsoft-Phi-3.5-mini-instruct", "<|end|>"},
      {"mistralai-Mistral-Nemo-Instruct-2407", "</s>"},
      {"qwen2.5", "<|im_end|>"},
      {"qwen3", "<|im_end|>"},
  };
  auto templates = real_templates();
  ASSERT_EQ(templates.size(), want_eot.size());
  for (const auto& t : templates) {
    ChatTemplate tmpl = make_template(t, nlohmann::ordered_json::object(), nullptr);
    EXPECT_EQ(tmpl.end_of_turn(), want_eot.at(t.name)) << t.name;
    int checked = 0;
    for (const auto& [cname, c] : conversations()) {
      if (cname != "system" && cname != "multi" && cname != "system_multi") continue;
      std::vector<ChatSegment> segs;
      try {
        segs = tmpl.render_segments(c, false);
      } catch (const InputError&) {
        continue;  // the template refuses this conversation (Gemma: system role)
      }
      ++checked;
      std::string trained, all;
      int assistant_segments = 0, answers = 0;
      for (const auto& s : segs) {
        all += s.text;
        if (!s.assistant) continue;
        trained += s.text;
        ++assistant_segments;
        EXPECT_TRUE(s.text.size() >= tmpl.end_of_turn().size() &&
                    s.text.compare(s.text.size() - tmpl.end_of_turn().size(), std::string::npos, tmpl.end_of_turn()) == 0)
            << t.name << " " << cname << ": segment does not end its turn: " << s.text;
      }
      EXPECT_EQ(all, tmpl.render(c, false)) << t.name;
      for (const auto& m : c) {
        if (m.role == "assistant") {
          ++answers;
          EXPECT_EQ(count_of(trained, strip(m.content)), 1u) << t.name << " " << cname << ": " << m.content << " in " << trained;
        } else {
          EXPECT_EQ(trained.find(strip(m.content)), std::string::npos) << t.name << " " << cname << ": " << m.content;
        }
      }
      EXPECT_EQ(assistant_segments, answers) << t.name << " " << cname;
    }
    EXPECT_GE(checked, 1) << t.name;  // Gemma refuses the two with a system message
  }
}

}  // namespace
}  // namespace emlab
