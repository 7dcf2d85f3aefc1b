#include "emlab/safetensors.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>

#include "emlab/error.h"
#include "test_util.h"

namespace emlab {
namespace {

namespace fs = std::filesystem;

std::string u64_le(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

// A safetensors file laid out by hand: u64 LE header length, header (padded like the reference
// implementation when `pad`), data buffer.
std::string build_bytes(std::string header, const std::string& data, bool pad = true) {
  if (pad) header.append((8 - header.size() % 8) % 8, ' ');
  return u64_le(header.size()) + header + data;
}

fs::path write_bytes(const fs::path& dir, const std::string& name, const std::string& bytes) {
  fs::path p = dir / name;
  std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return p;
}

std::string f32_bytes(std::initializer_list<float> values) {
  std::string s;
  for (float v : values) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
  }
  return s;
}

// Opening `path` throws InputError whose message contains the path and every piece of `parts`.
void expect_open_error(const fs::path& path, std::initializer_list<std::string> parts) {
  try {
    SafetensorsFile f(path.string());
    FAIL() << "expected InputError for " << path;
  } catch (const InputError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(path.string()), std::string::npos) << msg;
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "missing '" << p << "' in: " << msg;
  }
}

TEST(DType, NamesAndSizes) {
  const std::pair<DType, size_t> expected[] = {
      {DType::F32, 4}, {DType::F16, 2}, {DType::BF16, 2}, {DType::F64, 8}, {DType::I64, 8},
      {DType::I32, 4}, {DType::I16, 2}, {DType::I8, 1},   {DType::U8, 1},  {DType::BOOL, 1}};
  for (auto [d, size] : expected) {
    EXPECT_EQ(dtype_size(d), size) << dtype_name(d);
    EXPECT_EQ(dtype_from_name(dtype_name(d)), d);
  }
  EXPECT_STREQ(dtype_name(DType::BF16), "BF16");
  try {
    dtype_from_name("F8_E4M3", "model.safetensors: tensor \"w\"");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("model.safetensors: tensor \"w\""), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("F8_E4M3"), std::string::npos);
  }
}

TEST(Safetensors, RoundTripEveryDtypeScalarsAndEmpty) {
  fs::path dir = test::temp_dir("st");
  const DType all[] = {DType::F32, DType::F16, DType::BF16, DType::F64, DType::I64,
                       DType::I32, DType::I16, DType::I8,   DType::U8,  DType::BOOL};
  std::vector<std::vector<unsigned char>> buffers;
  std::vector<TensorView> tensors;
  int k = 0;
  for (DType d : all) {
    // One 2x3 tensor, one scalar and one zero-size tensor per dtype; distinct byte patterns.
    for (const auto& shape : {std::vector<int64_t>{2, 3}, std::vector<int64_t>{}, std::vector<int64_t>{4, 0}}) {
      size_t count = 1;
      for (auto s : shape) count *= static_cast<size_t>(s);
      std::vector<unsigned char> buf(count * dtype_size(d));
      for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<unsigned char>(i * 7 + k * 13 + 1);
      TensorView t;
      t.name = std::string("t") + std::to_string(k) + "." + dtype_name(d);
      t.dtype = d;
      t.shape = shape;
      t.nbytes = buf.size();
      buffers.push_back(std::move(buf));
      t.data = buffers.back().data();
      tensors.push_back(t);
      ++k;
    }
  }
  // Re-point views (buffers may have moved while growing).
  for (size_t i = 0; i < tensors.size(); ++i) tensors[i].data = buffers[i].data();
  std::vector<TensorView> shuffled(tensors.rbegin(), tensors.rend());  // writer sorts by name
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "ünïcode \"quoted\""}};
  const fs::path path = dir / "all.safetensors";
  safetensors_write(path.string(), shuffled, meta);

  // No temporary file left behind.
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir)) (void)e, ++entries;
  EXPECT_EQ(entries, 1);

  SafetensorsFile f(path.string());
  EXPECT_EQ(f.metadata(), meta);
  ASSERT_EQ(f.names().size(), tensors.size());
  std::vector<std::string> sorted_names;
  for (const auto& t : tensors) sorted_names.push_back(t.name);
  std::sort(sorted_names.begin(), sorted_names.end());
  EXPECT_EQ(f.names(), sorted_names);  // contiguous offsets in name order
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorView& got = f.get(tensors[i].name);
    EXPECT_EQ(got.dtype, tensors[i].dtype) << tensors[i].name;
    EXPECT_EQ(got.shape, tensors[i].shape) << tensors[i].name;
    ASSERT_EQ(got.nbytes, buffers[i].size()) << tensors[i].name;
    if (got.nbytes > 0) {
      EXPECT_EQ(std::memcmp(got.data, buffers[i].data(), got.nbytes), 0) << tensors[i].name;
    }
    EXPECT_TRUE(f.contains(tensors[i].name));
  }

  // Layout: header length a multiple of 8, padded with spaces, data right after.
  std::string bytes = test::read_text(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes[8], '{');
  size_t close = bytes.rfind('}', 8 + n - 1);
  for (size_t i = close + 1; i < 8 + n; ++i) EXPECT_EQ(bytes[i], ' ');
  size_t total = 0;
  for (const auto& b : buffers) total += b.size();
  EXPECT_EQ(bytes.size(), 8 + n + total);
  EXPECT_EQ(bytes.compare(8, 16, "{\"__metadata__\":"), 0);
}

TEST(Safetensors, EmptyFileAndOverwrite) {
  fs::path dir = test::temp_dir("st");
  const std::string path = (dir / "e.safetensors").string();
  safetensors_write(path, {});
  {
    SafetensorsFile f(path);
    EXPECT_TRUE(f.names().empty());
    EXPECT_TRUE(f.metadata().empty());
  }
  // "{}" padded to 8 bytes: 8 + 8 bytes in all.
  EXPECT_EQ(test::read_text(path), u64_le(8) + "{}      ");

  float v = 3.5f;
  TensorView t{"x", DType::F32, {}, &v, 4};
  safetensors_write(path, {t});
  SafetensorsFile f(path);
  ASSERT_EQ(f.names().size(), 1u);
  float got;
  std::memcpy(&got, f.get("x").data, 4);
  EXPECT_EQ(got, 3.5f);
  EXPECT_TRUE(f.get("x").shape.empty());
}

// Bytes exactly as Python's safetensors.torch.save_file lays them out: __metadata__ first, compact
// JSON with keys dtype/shape/data_offsets, space padding to 8 bytes, then little-endian data.
TEST(Safetensors, ReadsAndReproducesPythonLayout) {
  fs::path dir = test::temp_dir("st");
  const std::string header =
      "{\"__metadata__\":{\"format\":\"pt\"},"
      "\"alpha\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
      "\"beta\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[16,22]}}";
  ASSERT_EQ(header.size() % 8, 7u);  // so the padding rule is exercised (one space)
  // alpha = [[1, -2.5], [0.5, 3]]: 0x3f800000 0xc0200000 0x3f000000 0x40400000 (little-endian).
  // beta = [1, -2, 0.5] in bfloat16: 0x3f80 0xc000 0x3f00.
  const std::string data = std::string("\x00\x00\x80\x3f\x00\x00\x20\xc0\x00\x00\x00\x3f\x00\x00\x40\x40", 16) +
                           std::string("\x80\x3f\x00\xc0\x00\x3f", 6);
  const std::string bytes = build_bytes(header, data);
  ASSERT_EQ(bytes.size() % 8, 6u);  // header padded, data not
  fs::path path = write_bytes(dir, "py.safetensors", bytes);

  SafetensorsFile f(path.string());
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.names(), (std::vector<std::string>{"alpha", "beta"}));
  const TensorView& a = f.get("alpha");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 2}));
  float av[4];
  std::memcpy(av, a.data, 16);
  EXPECT_EQ(av[0], 1.0f);
  EXPECT_EQ(av[1], -2.5f);
  EXPECT_EQ(av[2], 0.5f);
  EXPECT_EQ(av[3], 3.0f);
  const TensorView& b = f.get("beta");
  EXPECT_EQ(b.dtype, DType::BF16);
  ASSERT_EQ(b.nbytes, 6u);
  uint16_t bv[3];
  std::memcpy(bv, b.data, 6);
  EXPECT_EQ(bv[0], 0x3f80);
  EXPECT_EQ(bv[1], 0xc000);
  EXPECT_EQ(bv[2], 0x3f00);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data) % 8, 0u);  // data buffer starts 8-byte aligned

  // Writing the same tensors reproduces the file byte for byte.
  std::vector<unsigned char> acopy(16), bcopy(6);
  std::memcpy(acopy.data(), a.data, 16);
  std::memcpy(bcopy.data(), b.data, 6);
  const std::string out = (dir / "ours.safetensors").string();
  safetensors_write(out,
                    {TensorView{"beta", DType::BF16, {3}, bcopy.data(), 6},
                     TensorView{"alpha", DType::F32, {2, 2}, acopy.data(), 16}},
                    {{"format", "pt"}});
  EXPECT_EQ(test::read_text(out), bytes);
}

TEST(Safetensors, UnpaddedHeaderAndGapsAreAccepted) {
  fs::path dir = test::temp_dir("st");
  // Other writers may skip padding; a gap between tensors wastes bytes but is harmless.
  const std::string header =
      "{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]},"
      "\"z\":{\"dtype\":\"I32\",\"shape\":[0],\"data_offsets\":[4,4]}}";
  fs::path p = write_bytes(dir, "gap.safetensors", build_bytes(header, "\x01\x02\x03\x04\x05\x06", false));
  SafetensorsFile f(p.string());
  EXPECT_EQ(static_cast<const unsigned char*>(f.get("w").data)[0], 5);
  EXPECT_EQ(f.get("z").nbytes, 0u);
  EXPECT_EQ(f.names(), (std::vector<std::string>{"z", "w"}));  // by offset
}

class SafetensorsCorrupt : public ::testing::Test {
 protected:
  fs::path dir = test::temp_dir("st-bad");
  fs::path file(const std::string& name, const std::string& header, const std::string& data) {
    return write_bytes(dir, name, build_bytes(header, data));
  }
};

TEST_F(SafetensorsCorrupt, TruncatedData) {
  const std::string header =
      "{\"embed\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";
  std::string bytes = build_bytes(header, std::string(16, '\1'));
  fs::path p = write_bytes(dir, "trunc.safetensors", bytes.substr(0, bytes.size() - 5));
  expect_open_error(p, {"embed", "outside the data buffer of 11 bytes"});
}

TEST_F(SafetensorsCorrupt, TruncatedInsideLengthField) {
  fs::path p = write_bytes(dir, "tiny.safetensors", std::string("\x10\x00\x00", 3));
  expect_open_error(p, {"truncated", "3 bytes"});
}

TEST_F(SafetensorsCorrupt, HeaderLengthBeyondFile) {
  fs::path p = write_bytes(dir, "len.safetensors", u64_le(1000) + "{}      ");
  expect_open_error(p, {"header length 1000", "exceeds the file"});
  // A huge length (garbage, e.g. a pickle file) must not overflow the check.
  fs::path q = write_bytes(dir, "huge.safetensors", u64_le(~0ull) + "{}      ");
  expect_open_error(q, {"exceeds the file"});
}

TEST_F(SafetensorsCorrupt, OffsetsOutside) {
  fs::path p = file("out.safetensors",
                    "{\"lm_head.weight\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[8,16]}}",
                    std::string(12, '\0'));
  expect_open_error(p, {"lm_head.weight", "[8, 16]", "12 bytes"});
}

TEST_F(SafetensorsCorrupt, BeginAfterEnd) {
  fs::path p = file("rev.safetensors",
                    "{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,2]}}", std::string(8, '\0'));
  expect_open_error(p, {"\"w\"", "begin 4 > end 2"});
}

TEST_F(SafetensorsCorrupt, Overlap) {
  fs::path p = file("overlap.safetensors",
                    "{\"q\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                    "\"k\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
                    std::string(24, '\0'));
  expect_open_error(p, {"\"k\"", "overlaps", "\"q\""});
}

TEST_F(SafetensorsCorrupt, OverlapWithEarlierLongTensor) {
  // "c" overlaps "a" although its nearest predecessor by offset ("b") is empty.
  fs::path p = file("overlap2.safetensors",
                    "{\"a\":{\"dtype\":\"U8\",\"shape\":[10],\"data_offsets\":[0,10]},"
                    "\"b\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[5,5]},"
                    "\"c\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[6,8]}}",
                    std::string(10, '\0'));
  expect_open_error(p, {"\"c\"", "overlaps", "\"a\""});
}

TEST_F(SafetensorsCorrupt, WrongByteSize) {
  fs::path p = file("size.safetensors",
                    "{\"model.norm.weight\":{\"dtype\":\"BF16\",\"shape\":[3,2],\"data_offsets\":[0,8]}}",
                    std::string(8, '\0'));
  expect_open_error(p, {"model.norm.weight", "span 8 bytes, expected 12", "BF16"});
}

TEST_F(SafetensorsCorrupt, BadJson) {
  fs::path p = file("json.safetensors", "{\"w\":{\"dtype\":\"F32\",", "");
  expect_open_error(p, {"not valid JSON"});
  fs::path q = file("notobj.safetensors", "[1,2]", "");
  expect_open_error(q, {"'{'"});
}

TEST_F(SafetensorsCorrupt, UnknownDtype) {
  fs::path p = file("dtype.safetensors",
                    "{\"layers.0.w\":{\"dtype\":\"Q4_K\",\"shape\":[2],\"data_offsets\":[0,2]}}",
                    std::string(8, '\0'));
  expect_open_error(p, {"layers.0.w", "unknown dtype \"Q4_K\"", "BF16"});
}

TEST_F(SafetensorsCorrupt, MalformedEntries) {
  struct Case {
    std::string header, expect;
  };
  const Case cases[] = {
      {"{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", "missing \"dtype\""},
      {"{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", "missing \"shape\""},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", "missing \"data_offsets\""},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", "non-negative integers"},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", "non-negative integers"},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", "[begin, end]"},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", "[begin, end]"},
      {"{\"w\":[1,2,3]}", "entry must be an object"},
      {"{\"w\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", "\"dtype\" must be a string"},
  };
  int i = 0;
  for (const auto& c : cases) {
    fs::path p = file("m" + std::to_string(i++) + ".safetensors", c.header, std::string(8, '\0'));
    SCOPED_TRACE(c.header);
    expect_open_error(p, {"tensor \"w\"", c.expect});
  }
}

TEST_F(SafetensorsCorrupt, BadMetadata) {
  fs::path p = file("meta.safetensors", "{\"__metadata__\":{\"format\":1}}", "");
  expect_open_error(p, {"__metadata__", "\"format\"", "must be a string"});
  fs::path q = file("meta2.safetensors", "{\"__metadata__\":[\"pt\"]}", "");
  expect_open_error(q, {"__metadata__"});
}

TEST_F(SafetensorsCorrupt, MissingFileAndMissingTensor) {
  expect_open_error(dir / "absent.safetensors", {"cannot open"});
  fs::path p = file("ok.safetensors", "{}", "");
  SafetensorsFile f(p.string());
  try {
    f.get("model.embed_tokens.weight");
    FAIL();
  } catch (const InputError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(p.string()), std::string::npos);
    EXPECT_NE(msg.find("model.embed_tokens.weight"), std::string::npos);
  }
}

TEST(SafetensorsWrite, RejectsBadTensorsAndKeepsTheOldFile) {
  fs::path dir = test::temp_dir("st-w");
  const std::string path = (dir / "w.safetensors").string();
  float v[4] = {1, 2, 3, 4};
  safetensors_write(path, {TensorView{"ok", DType::F32, {4}, v, 16}});
  const std::string before = test::read_text(path);

  auto expect_write_error = [&](std::vector<TensorView> ts, const std::string& part) {
    try {
      safetensors_write(path, ts);
      FAIL() << part;
    } catch (const InputError& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(path), std::string::npos) << msg;
      EXPECT_NE(msg.find(part), std::string::npos) << msg;
    }
  };
  expect_write_error({TensorView{"bad", DType::F32, {3}, v, 16}}, "\"bad\": nbytes 16 != 12");
  expect_write_error({TensorView{"d", DType::F32, {1}, v, 4}, TensorView{"d", DType::F32, {1}, v, 4}},
                     "duplicate");
  expect_write_error({TensorView{"__metadata__", DType::F32, {1}, v, 4}}, "reserved");
  expect_write_error({TensorView{"n", DType::F32, {1}, nullptr, 4}}, "null");

  EXPECT_EQ(test::read_text(path), before);
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir)) (void)e, ++entries;
  EXPECT_EQ(entries, 1);
}

TEST(SafetensorsWrite, UnwritableFolderIsAnInputError) {
  float v = 1;
  EXPECT_THROW(safetensors_write("/nonexistent-dir-emlab/x.safetensors", {TensorView{"x", DType::F32, {}, &v, 4}}),
               InputError);
}

}  // namespace
}  // namespace emlab
