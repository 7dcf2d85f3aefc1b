#include "emlab/hf_config.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "emlab/error.h"
#include "test_util.h"

namespace emlab {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// config.json files as published on the Hugging Face Hub (transformers 4.4x era).
const char* kLlama31_8B = R"({
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 128000,
  "eos_token_id": [128001, 128008, 128009],
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 14336,
  "max_position_embeddings": 131072,
  "mlp_bias": false,
  "model_type": "llama",
  "num_attention_heads": 32,
  "num_hidden_layers": 32,
  "num_key_value_heads": 8,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": {
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
    "rope_type": "llama3"
  },
  "rope_theta": 500000.0,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.43.0.dev0",
  "use_cache": true,
  "vocab_size": 128256
})";

const char* kQwen25_7B = R"({
  "architectures": ["Qwen2ForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151645,
  "hidden_act": "silu",
  "hidden_size": 3584,
  "initializer_range": 0.02,
  "intermediate_size": 18944,
  "max_position_embeddings": 32768,
  "max_window_layers": 28,
  "model_type": "qwen2",
  "num_attention_heads": 28,
  "num_hidden_layers": 28,
  "num_key_value_heads": 4,
  "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0,
  "sliding_window": 131072,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.43.1",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 152064
})";

// Qwen3-4B: head_dim 128 is NOT hidden_size / heads (2560 / 32 = 80); rope_theta is an integer.
const char* kQwen3_4B = R"({
  "architectures": ["Qwen3ForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151645,
  "head_dim": 128,
  "hidden_act": "silu",
  "hidden_size": 2560,
  "initializer_range": 0.02,
  "intermediate_size": 9728,
  "max_position_embeddings": 40960,
  "max_window_layers": 36,
  "model_type": "qwen3",
  "num_attention_heads": 32,
  "num_hidden_layers": 36,
  "num_key_value_heads": 8,
  "rms_norm_eps": 1e-06,
  "rope_scaling": null,
  "rope_theta": 1000000,
  "sliding_window": null,
  "tie_word_embeddings": true,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.51.0",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 151936
})";

const char* kMistral7B = R"({
  "architectures": ["MistralForCausalLM"],
  "bos_token_id": 1,
  "eos_token_id": 2,
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 14336,
  "max_position_embeddings": 32768,
  "model_type": "mistral",
  "num_attention_heads": 32,
  "num_hidden_layers": 32,
  "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0,
  "sliding_window": 4096,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.34.0.dev0",
  "use_cache": true,
  "vocab_size": 32000
})";

// Gemma 2 2B (transformers 4.42 era): softcapping, query_pre_attn_scalar, no layer_types (derived:
// every other layer slides).
const char* kGemma2_2B = R"({
  "architectures": ["Gemma2ForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "attn_logit_softcapping": 50.0,
  "bos_token_id": 2,
  "cache_implementation": "hybrid",
  "eos_token_id": [1, 107],
  "final_logit_softcapping": 30.0,
  "head_dim": 256,
  "hidden_act": "gelu_pytorch_tanh",
  "hidden_activation": "gelu_pytorch_tanh",
  "hidden_size": 2304,
  "initializer_range": 0.02,
  "intermediate_size": 9216,
  "max_position_embeddings": 8192,
  "model_type": "gemma2",
  "num_attention_heads": 8,
  "num_hidden_layers": 26,
  "num_key_value_heads": 4,
  "pad_token_id": 0,
  "query_pre_attn_scalar": 256,
  "rms_norm_eps": 1e-06,
  "rope_theta": 10000.0,
  "sliding_window": 4096,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.42.4",
  "use_cache": true,
  "vocab_size": 256000
})";

// Gemma 3 1B (transformers 4.50 era): local RoPE base, sliding_window_pattern 6.
const char* kGemma3_1B = R"({
  "architectures": ["Gemma3ForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "attn_logit_softcapping": null,
  "bos_token_id": 2,
  "cache_implementation": "hybrid",
  "eos_token_id": [1, 106],
  "final_logit_softcapping": null,
  "head_dim": 256,
  "hidden_activation": "gelu_pytorch_tanh",
  "hidden_size": 1152,
  "initializer_range": 0.02,
  "intermediate_size": 6912,
  "max_position_embeddings": 32768,
  "model_type": "gemma3_text",
  "num_attention_heads": 4,
  "num_hidden_layers": 26,
  "num_key_value_heads": 1,
  "pad_token_id": 0,
  "query_pre_attn_scalar": 256,
  "rms_norm_eps": 1e-06,
  "rope_local_base_freq": 10000,
  "rope_scaling": null,
  "rope_theta": 1000000,
  "sliding_window": 512,
  "sliding_window_pattern": 6,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.50.0.dev0",
  "use_cache": true,
  "vocab_size": 262144
})";

ModelConfig parse(const std::string& text) { return ModelConfig::from_json(json::parse(text), "config.json"); }

// from_json on `j` throws InputError mentioning the source and every part.
void expect_config_error(const json& j, std::initializer_list<std::string> parts) {
  try {
    ModelConfig::from_json(j, "/models/x/config.json");
    FAIL() << "expected InputError for " << j.dump();
  } catch (const InputError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("/models/x/config.json"), std::string::npos) << msg;
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "missing '" << p << "' in: " << msg;
  }
}

TEST(HfConfig, Llama31_8B) {
  ModelConfig c = parse(kLlama31_8B);
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.vocab_size, 128256);
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_EQ(c.intermediate_size, 14336);
  EXPECT_EQ(c.num_hidden_layers, 32);
  EXPECT_EQ(c.num_attention_heads, 32);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.head_dim, 128);  // 4096 / 32
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  ASSERT_TRUE(c.rope_scaling.has_value());
  EXPECT_EQ(c.rope_scaling->type, "llama3");
  EXPECT_DOUBLE_EQ(c.rope_scaling->factor, 8.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling->low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling->high_freq_factor, 4.0);
  EXPECT_EQ(c.rope_scaling->original_max_position_embeddings, 8192);
  EXPECT_EQ(c.max_position_embeddings, 131072);
  EXPECT_FALSE(c.tie_word_embeddings);
  ASSERT_TRUE(c.attention_bias.has_value());
  EXPECT_FALSE(*c.attention_bias);
  EXPECT_FALSE(c.sliding_window.has_value());
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_EQ(c.bos_token_id, 128000);
  EXPECT_EQ(c.torch_dtype, "bfloat16");
  EXPECT_EQ(c.raw["pretraining_tp"], 1);
}

TEST(HfConfig, Qwen25_7B) {
  ModelConfig c = parse(kQwen25_7B);
  EXPECT_EQ(c.model_type, "qwen2");
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.head_dim, 128);  // 3584 / 28
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_FALSE(c.rope_scaling.has_value());
  EXPECT_FALSE(c.attention_bias.has_value());  // qwen2 has q/k/v biases by architecture
  EXPECT_FALSE(c.sliding_window.has_value());  // use_sliding_window: false
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{151645}));
  EXPECT_EQ(c.vocab_size, 152064);
}

TEST(HfConfig, Qwen3_4B) {
  ModelConfig c = parse(kQwen3_4B);
  EXPECT_EQ(c.model_type, "qwen3");
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.hidden_size, 2560);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_FALSE(c.rope_scaling.has_value());
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.sliding_window.has_value());
  EXPECT_EQ(c.max_position_embeddings, 40960);
}

TEST(HfConfig, Mistral7B) {
  ModelConfig c = parse(kMistral7B);
  EXPECT_EQ(c.model_type, "mistral");
  ASSERT_TRUE(c.sliding_window.has_value());
  EXPECT_EQ(*c.sliding_window, 4096);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{2}));
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  // Mistral v0.3 publishes "sliding_window": null.
  json j = json::parse(kMistral7B);
  j["sliding_window"] = nullptr;
  EXPECT_FALSE(ModelConfig::from_json(j, "c").sliding_window.has_value());
}

TEST(HfConfig, Defaults) {
  json j = {{"vocab_size", 100}, {"hidden_size", 64}, {"intermediate_size", 128},
            {"num_hidden_layers", 2}, {"num_attention_heads", 4}};
  ModelConfig c = ModelConfig::from_json(j, "c");
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.max_position_embeddings, 2048);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_TRUE(c.eos_token_ids.empty());
  EXPECT_FALSE(c.bos_token_id.has_value());
  EXPECT_TRUE(c.model_type.empty());
  // Explicit nulls mean "default" too.
  j["num_key_value_heads"] = nullptr;
  j["head_dim"] = nullptr;
  j["eos_token_id"] = nullptr;
  c = ModelConfig::from_json(j, "c");
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_TRUE(c.eos_token_ids.empty());
}

TEST(HfConfig, RopeScalingOldTypeKeyAndNewRopeParameters) {
  json j = json::parse(kLlama31_8B);
  j["rope_scaling"].erase("rope_type");
  j["rope_scaling"]["type"] = "llama3";
  ModelConfig c = ModelConfig::from_json(j, "c");
  ASSERT_TRUE(c.rope_scaling.has_value());
  EXPECT_DOUBLE_EQ(c.rope_scaling->factor, 8.0);

  // transformers 5 nests theta and scaling in rope_parameters and renames torch_dtype to dtype.
  json k = json::parse(kLlama31_8B);
  json rp = k["rope_scaling"];
  rp["rope_theta"] = 500000.0;
  rp["factor"] = 32.0;
  k.erase("rope_scaling");
  k.erase("rope_theta");
  k.erase("torch_dtype");
  k["dtype"] = "bfloat16";
  k["rope_parameters"] = rp;
  c = ModelConfig::from_json(k, "c");
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  ASSERT_TRUE(c.rope_scaling.has_value());
  EXPECT_DOUBLE_EQ(c.rope_scaling->factor, 32.0);
  EXPECT_EQ(c.torch_dtype, "bfloat16");

  json d = json::parse(kQwen3_4B);
  d.erase("rope_scaling");
  d.erase("rope_theta");
  d["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 5000000}};
  c = ModelConfig::from_json(d, "c");
  EXPECT_FALSE(c.rope_scaling.has_value());
  EXPECT_DOUBLE_EQ(c.rope_theta, 5e6);
}

TEST(HfConfig, UnsupportedRopeScalingNamesFileAndType) {
  for (const char* type : {"dynamic", "yarn", "longrope"}) {
    json j = json::parse(kQwen25_7B);
    j["rope_scaling"] = {{"type", type}, {"factor", 4.0}, {"original_max_position_embeddings", 32768}};
    expect_config_error(j, {std::string("\"") + type + "\"", "supported: llama3, linear"});
  }
  json lin = json::parse(kQwen25_7B);
  lin["rope_scaling"] = {{"type", "linear"}, {"factor", 4.0}};
  ModelConfig c = ModelConfig::from_json(lin, "c");
  ASSERT_TRUE(c.rope_scaling.has_value());
  EXPECT_EQ(c.rope_scaling->type, "linear");
  EXPECT_DOUBLE_EQ(c.rope_scaling->factor, 4.0);
  lin["rope_scaling"].erase("factor");
  expect_config_error(lin, {"linear", "factor"});
  json j = json::parse(kLlama31_8B);
  j["rope_scaling"].erase("low_freq_factor");
  expect_config_error(j, {"low_freq_factor"});
  j = json::parse(kLlama31_8B);
  j["rope_scaling"]["high_freq_factor"] = 1.0;
  expect_config_error(j, {"high_freq_factor", "greater than low_freq_factor"});
  j = json::parse(kLlama31_8B);
  j["rope_scaling"] = {{"factor", 8.0}};
  expect_config_error(j, {"rope_type"});
}

TEST(HfConfig, ValidationErrorsNameTheField) {
  json base = json::parse(kLlama31_8B);
  json j = base;
  j.erase("hidden_size");
  expect_config_error(j, {"missing \"hidden_size\""});
  j = base;
  j["num_key_value_heads"] = 6;
  expect_config_error(j, {"\"num_attention_heads\" (32)", "\"num_key_value_heads\" (6)"});
  j = base;
  j["intermediate_size"] = 0;
  expect_config_error(j, {"\"intermediate_size\" must be positive"});
  j = base;
  j["num_hidden_layers"] = -2;
  expect_config_error(j, {"\"num_hidden_layers\" must be positive"});
  j = base;
  j["vocab_size"] = "128256";
  expect_config_error(j, {"\"vocab_size\" must be an integer"});
  j = base;
  j["hidden_size"] = 4100;  // not divisible by 32 heads and no head_dim
  expect_config_error(j, {"head_dim", "\"hidden_size\" (4100)"});
  j = base;
  j["head_dim"] = 0;
  expect_config_error(j, {"\"head_dim\" must be positive"});
  j = base;
  j["eos_token_id"] = {128001, "x"};
  expect_config_error(j, {"eos_token_id[1]"});
  j = base;
  j["tie_word_embeddings"] = "false";
  expect_config_error(j, {"\"tie_word_embeddings\" must be true or false"});
  j = base;
  j["sliding_window"] = 0;
  expect_config_error(j, {"\"sliding_window\" must be positive"});
  j = base;
  j["rms_norm_eps"] = 0;
  expect_config_error(j, {"rms_norm_eps"});
  expect_config_error(json::array(), {"JSON object"});
}

TEST(HfConfig, ModelTypeIsNotValidatedHere) {
  json j = json::parse(kMistral7B);
  j["model_type"] = "gpt_neox";
  EXPECT_EQ(ModelConfig::from_json(j, "c").model_type, "gpt_neox");
}

TEST(HfConfig, ToJsonRoundTrip) {
  for (const char* text : {kLlama31_8B, kQwen25_7B, kQwen3_4B, kMistral7B, kGemma2_2B, kGemma3_1B}) {
    ModelConfig a = parse(text);
    json out = a.to_json();
    ModelConfig b = ModelConfig::from_json(out, "round-trip");
    EXPECT_EQ(b.model_type, a.model_type);
    EXPECT_EQ(b.vocab_size, a.vocab_size);
    EXPECT_EQ(b.hidden_size, a.hidden_size);
    EXPECT_EQ(b.num_key_value_heads, a.num_key_value_heads);
    EXPECT_EQ(b.head_dim, a.head_dim);
    EXPECT_EQ(b.rope_theta, a.rope_theta);
    EXPECT_EQ(b.rope_scaling.has_value(), a.rope_scaling.has_value());
    if (a.rope_scaling) {
      EXPECT_EQ(b.rope_scaling->factor, a.rope_scaling->factor);
    }
    EXPECT_EQ(b.sliding_window, a.sliding_window);
    EXPECT_EQ(b.eos_token_ids, a.eos_token_ids);
    EXPECT_EQ(b.bos_token_id, a.bos_token_id);
    EXPECT_EQ(b.attention_bias, a.attention_bias);
    EXPECT_EQ(b.tie_word_embeddings, a.tie_word_embeddings);
    EXPECT_EQ(b.torch_dtype, a.torch_dtype);
    EXPECT_EQ(b.hidden_act, a.hidden_act);
    EXPECT_EQ(b.layer_types, a.layer_types);
    EXPECT_EQ(b.rope_local_theta, a.rope_local_theta);
    EXPECT_EQ(b.query_pre_attn_scalar, a.query_pre_attn_scalar);
    EXPECT_EQ(b.attn_logit_softcapping, a.attn_logit_softcapping);
    EXPECT_EQ(b.final_logit_softcapping, a.final_logit_softcapping);
    EXPECT_EQ(out["architectures"], json::parse(text)["architectures"]);  // unmodelled fields kept
  }
  // Edited fields are written back.
  ModelConfig c = parse(kQwen25_7B);
  c.sliding_window = 4096;
  c.eos_token_ids = {1, 2};
  c.torch_dtype = "float32";
  ModelConfig d = ModelConfig::from_json(c.to_json(), "edited");
  EXPECT_EQ(d.sliding_window, 4096);
  EXPECT_EQ(d.eos_token_ids, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(d.torch_dtype, "float32");
  // A config built in code (no raw) serialises too.
  ModelConfig e;
  e.model_type = "llama";
  e.vocab_size = 10;
  e.hidden_size = 8;
  e.intermediate_size = 16;
  e.num_hidden_layers = 1;
  e.num_attention_heads = 2;
  e.num_key_value_heads = 1;
  e.head_dim = 4;
  ModelConfig f = ModelConfig::from_json(e.to_json(), "built");
  EXPECT_EQ(f.num_key_value_heads, 1);
  EXPECT_EQ(f.head_dim, 4);
}

TEST(HfConfig, LoadFromFileAndFolder) {
  fs::path dir = test::temp_dir("cfg");
  test::write_text(dir / "config.json", kQwen3_4B);
  EXPECT_EQ(ModelConfig::load((dir / "config.json").string()).head_dim, 128);
  EXPECT_EQ(ModelConfig::load(dir.string()).model_type, "qwen3");

  test::write_text(dir / "bad.json", "{\"hidden_size\": 4096,,}");
  try {
    ModelConfig::load((dir / "bad.json").string());
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find((dir / "bad.json").string()), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("bad JSON"), std::string::npos);
  }
  EXPECT_THROW(ModelConfig::load((dir / "missing.json").string()), InputError);
  // Errors name the file that was read.
  test::write_text(dir / "nohidden.json", R"({"vocab_size": 10})");
  try {
    ModelConfig::load((dir / "nohidden.json").string());
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("nohidden.json"), std::string::npos);
  }
}

TEST(GenerationConfig, LoadsLlamaAndQwenDefaults) {
  fs::path dir = test::temp_dir("gen");
  test::write_text(dir / "llama.json", R"({
    "bos_token_id": 128000, "do_sample": true, "eos_token_id": [128001, 128008, 128009],
    "temperature": 0.6, "top_p": 0.9, "transformers_version": "4.42.3"})");
  GenerationConfig g = GenerationConfig::load_if_exists((dir / "llama.json").string());
  EXPECT_EQ(g.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_DOUBLE_EQ(*g.temperature, 0.6);
  EXPECT_DOUBLE_EQ(*g.top_p, 0.9);
  EXPECT_FALSE(g.top_k.has_value());

  test::write_text(dir / "qwen.json", R"({
    "bos_token_id": 151643, "pad_token_id": 151643, "do_sample": true,
    "eos_token_id": [151645, 151643], "repetition_penalty": 1.05,
    "temperature": 0.7, "top_p": 0.8, "top_k": 20})");
  g = GenerationConfig::load_if_exists((dir / "qwen.json").string());
  EXPECT_EQ(g.eos_token_ids, (std::vector<int64_t>{151645, 151643}));
  EXPECT_EQ(g.top_k, 20);

  g = GenerationConfig::load_if_exists((dir / "absent.json").string());
  EXPECT_TRUE(g.eos_token_ids.empty());
  EXPECT_FALSE(g.temperature.has_value());

  test::write_text(dir / "bad.json", "{\"temperature\": }");
  try {
    GenerationConfig::load_if_exists((dir / "bad.json").string());
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.json"), std::string::npos);
  }
  test::write_text(dir / "type.json", R"({"top_k": "twenty"})");
  try {
    GenerationConfig::load_if_exists((dir / "type.json").string());
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("top_k"), std::string::npos);
  }
}

TEST(HfConfig, Gemma2_2B) {
  ModelConfig c = ModelConfig::from_json(json::parse(kGemma2_2B), "config.json");
  EXPECT_EQ(c.model_type, "gemma2");
  EXPECT_EQ(c.head_dim, 256);  // not 2304 / 8
  EXPECT_EQ(c.hidden_act, "gelu_pytorch_tanh");
  EXPECT_EQ(c.query_pre_attn_scalar, 256.0);
  EXPECT_EQ(c.attn_logit_softcapping, 50.0);
  EXPECT_EQ(c.final_logit_softcapping, 30.0);
  EXPECT_EQ(c.sliding_window, 4096);
  ASSERT_EQ(c.layer_types.size(), 26u);
  EXPECT_TRUE(c.layer_is_sliding(0));   // (i + 1) % 2 != 0
  EXPECT_FALSE(c.layer_is_sliding(1));
  EXPECT_TRUE(c.layer_is_sliding(24));
  EXPECT_FALSE(c.layer_is_sliding(25));
  EXPECT_FALSE(c.rope_local_theta.has_value());
  EXPECT_TRUE(c.tie_word_embeddings);  // absent from the file: Gemma2Config's default (emlab's is false)
  json j = json::parse(kGemma2_2B);
  j["tie_word_embeddings"] = false;
  EXPECT_FALSE(ModelConfig::from_json(j, "c").tie_word_embeddings);
  j.erase("tie_word_embeddings");
  j.erase("attn_logit_softcapping");
  j.erase("final_logit_softcapping");
  j.erase("query_pre_attn_scalar");
  j.erase("head_dim");
  j.erase("hidden_activation");
  j["hidden_act"] = "gelu";  // Gemma2's modeling reads hidden_activation only
  c = ModelConfig::from_json(j, "c");  // transformers' Gemma2Config defaults
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.attn_logit_softcapping, 50.0);
  EXPECT_EQ(c.final_logit_softcapping, 30.0);
  EXPECT_EQ(c.query_pre_attn_scalar, 256.0);
  EXPECT_EQ(c.head_dim, 256);
  EXPECT_EQ(c.hidden_act, "gelu_pytorch_tanh");
  j["final_logit_softcapping"] = nullptr;  // explicit null: none
  EXPECT_FALSE(ModelConfig::from_json(j, "c").final_logit_softcapping.has_value());
}

TEST(HfConfig, Gemma3_1B) {
  ModelConfig c = ModelConfig::from_json(json::parse(kGemma3_1B), "config.json");
  EXPECT_EQ(c.model_type, "gemma3_text");
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.rope_local_theta, 1e4);
  EXPECT_FALSE(c.rope_scaling.has_value());
  EXPECT_FALSE(c.attn_logit_softcapping.has_value());
  EXPECT_FALSE(c.final_logit_softcapping.has_value());
  EXPECT_EQ(c.sliding_window, 512);
  ASSERT_EQ(c.layer_types.size(), 26u);
  for (int64_t l = 0; l < 26; ++l) EXPECT_EQ(c.layer_is_sliding(l), (l + 1) % 6 != 0) << l;  // 5 local : 1 global

  // The same model as transformers 5 writes it: RoPE per layer type, layer_types listed.
  json j = json::parse(kGemma3_1B);
  for (const char* k : {"rope_theta", "rope_local_base_freq", "rope_scaling", "sliding_window_pattern"}) j.erase(k);
  j["layer_types"] = json::array();
  for (int l = 0; l < 26; ++l) j["layer_types"].push_back(l == 3 ? "full_attention" : "sliding_attention");
  j["rope_parameters"] = {{"full_attention", {{"rope_type", "linear"}, {"factor", 8.0}, {"rope_theta", 1e6}}},
                          {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 1e4}}}};
  c = ModelConfig::from_json(j, "c");
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.rope_local_theta, 1e4);
  ASSERT_TRUE(c.rope_scaling.has_value());
  EXPECT_EQ(c.rope_scaling->type, "linear");
  EXPECT_FALSE(c.layer_is_sliding(3));
  EXPECT_TRUE(c.layer_is_sliding(4));
  // Written back in the same nested form, consistent with edits.
  c.rope_local_theta = 500.0;
  json out = c.to_json();
  EXPECT_EQ(out["rope_parameters"]["sliding_attention"]["rope_theta"], 500.0);
  EXPECT_EQ(out["rope_parameters"]["full_attention"]["rope_type"], "linear");
  EXPECT_FALSE(out.contains("rope_theta"));
  EXPECT_EQ(ModelConfig::from_json(out, "back").rope_local_theta, 500.0);

  // Refused: a scaled local RoPE, an encoder, an activation emlab lacks, unknown layer types.
  json bad = j;
  bad["rope_parameters"]["sliding_attention"] = {{"rope_type", "linear"}, {"factor", 2.0}, {"rope_theta", 1e4}};
  expect_config_error(bad, {"rope_parameters.sliding_attention", "full-attention"});
  bad = j;
  bad["use_bidirectional_attention"] = true;
  expect_config_error(bad, {"use_bidirectional_attention"});
  bad = j;
  bad["hidden_activation"] = "relu";
  expect_config_error(bad, {"\"hidden_activation\" is \"relu\"", "gelu_pytorch_tanh"});
  bad = j;
  bad["layer_types"][2] = "chunked_attention";
  expect_config_error(bad, {"layer_types[2]", "chunked_attention"});
  bad = j;
  bad["layer_types"].erase(0);
  expect_config_error(bad, {"layer_types", "26 entries"});
}

TEST(HfConfig, QwenSlidingWindowFollowsUseSlidingWindowAndMaxWindowLayers) {
  json j = json::parse(kQwen25_7B);
  ModelConfig c = ModelConfig::from_json(j, "c");
  EXPECT_FALSE(c.sliding_window.has_value());
  for (int64_t l = 0; l < 28; ++l) EXPECT_FALSE(c.layer_is_sliding(l));
  j["use_sliding_window"] = true;
  j["sliding_window"] = 4096;
  j["max_window_layers"] = 20;
  c = ModelConfig::from_json(j, "c");
  EXPECT_EQ(c.sliding_window, 4096);
  EXPECT_FALSE(c.layer_is_sliding(19));  // layers >= max_window_layers slide
  EXPECT_TRUE(c.layer_is_sliding(20));
  // Without use_sliding_window transformers' Qwen2Config disables the window.
  j.erase("use_sliding_window");
  EXPECT_FALSE(ModelConfig::from_json(j, "c").sliding_window.has_value());
  // Written back so that transformers reads the same window.
  c.sliding_window = 64;
  json out = c.to_json();
  EXPECT_EQ(out["use_sliding_window"], true);
  EXPECT_EQ(out["sliding_window"], 64);
  c.sliding_window.reset();
  EXPECT_EQ(c.to_json()["use_sliding_window"], false);
}

TEST(HfConfig, AbsentFieldsTakeTheConfigClassDefaults) {
  json j = json::parse(kMistral7B);
  j.erase("sliding_window");
  j.erase("num_key_value_heads");
  ModelConfig c = ModelConfig::from_json(j, "c");
  EXPECT_EQ(c.sliding_window, 4096);  // MistralConfig's default window
  EXPECT_EQ(c.num_key_value_heads, 8);
  // An emlab config without a window says so explicitly, not by leaving the default to apply.
  c.sliding_window.reset();
  EXPECT_TRUE(c.to_json()["sliding_window"].is_null());
  EXPECT_FALSE(ModelConfig::from_json(c.to_json(), "back").sliding_window.has_value());
  json q = json::parse(kQwen3_4B);
  q.erase("head_dim");
  EXPECT_EQ(ModelConfig::from_json(q, "c").head_dim, 128);  // Qwen3Config's default, not 2560 / 32
  json l = json::parse(kLlama31_8B);
  l["mlp_bias"] = true;
  l["hidden_act"] = "gelu_new";
  c = ModelConfig::from_json(l, "c");
  EXPECT_TRUE(c.mlp_bias);
  EXPECT_EQ(c.hidden_act, "gelu_new");
  l["hidden_act"] = "relu2";
  expect_config_error(l, {"\"hidden_act\" is \"relu2\""});
}

}  // namespace
}  // namespace emlab
