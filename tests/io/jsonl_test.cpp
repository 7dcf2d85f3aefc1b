#include "emlab/jsonl.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <thread>

#include "emlab/error.h"
#include "test_util.h"

namespace emlab {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Compresses `text` into a gzip file with zlib directly (independent of the code under test).
void write_gzip(const fs::path& path, const std::string& text) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, text.data(), static_cast<unsigned>(text.size())), static_cast<int>(text.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

std::string read_gzip(const fs::path& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  EXPECT_NE(f, nullptr);
  std::string out;
  char buf[4096];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  gzclose(f);
  return out;
}

void expect_message(const std::exception& e, std::initializer_list<std::string> parts) {
  std::string msg = e.what();
  for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "missing '" << p << "' in: " << msg;
}

TEST(JsonlReader, LineNumbersBlankLinesCrlfAndBom) {
  fs::path dir = test::temp_dir("jsonl");
  fs::path p = dir / "a.jsonl";
  test::write_text(p, "\xEF\xBB\xBF{\"a\":1}\r\n\n   \n{\"a\":2}\n\t\r\n[3, \"x\"]");  // no final newline
  auto rows = jsonl_read_all(p.string());
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].line, 1);
  EXPECT_EQ(rows[0].value, json({{"a", 1}}));
  EXPECT_EQ(rows[1].line, 4);
  EXPECT_EQ(rows[1].value["a"], 2);
  EXPECT_EQ(rows[2].line, 6);
  EXPECT_EQ(rows[2].value, json::parse("[3, \"x\"]"));
  EXPECT_EQ(jsonl_read_values(p.string()).size(), 3u);

  test::write_text(dir / "empty.jsonl", "");
  EXPECT_TRUE(jsonl_read_all((dir / "empty.jsonl").string()).empty());
}

TEST(JsonlReader, BadJsonThrowsWithFileAndLine) {
  fs::path dir = test::temp_dir("jsonl");
  fs::path p = dir / "bad.jsonl";
  test::write_text(p, "{\"a\":1}\n\n{\"a\":,}\n{\"b\":2}\n{\"c\"\n{\"d\":4} trailing\n");
  try {
    jsonl_read_all(p.string());
    FAIL();
  } catch (const InputError& e) {
    expect_message(e, {p.string() + ":3: bad JSON: column"});
  }

  // collect_errors: bad lines recorded in order, good ones returned.
  JsonlReadOptions opt;
  opt.collect_errors = true;
  std::vector<std::string> errors;
  auto rows = jsonl_read_all(p.string(), opt, &errors);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].line, 1);
  EXPECT_EQ(rows[1].line, 4);
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors[0].rfind(p.string() + ":3: bad JSON: ", 0), 0u) << errors[0];
  EXPECT_EQ(errors[1].rfind(p.string() + ":5: bad JSON: ", 0), 0u) << errors[1];
  EXPECT_EQ(errors[2].rfind(p.string() + ":6: bad JSON: ", 0), 0u) << errors[2];
}

TEST(JsonlReader, MissingFileAndFolder) {
  fs::path dir = test::temp_dir("jsonl");
  try {
    JsonlReader r((dir / "nope.jsonl").string());
    FAIL();
  } catch (const InputError& e) {
    expect_message(e, {"nope.jsonl", "cannot open"});
  }
  EXPECT_THROW(JsonlReader r(dir.string()), InputError);
}

TEST(JsonlReader, GzipAndLongLines) {
  fs::path dir = test::temp_dir("jsonl");
  // Lines longer than the reader's 64 KiB chunks, and many short ones.
  std::string text;
  std::vector<json> expected;
  for (int i = 0; i < 2000; ++i) {
    json row = {{"i", i}, {"s", std::string(i % 97 == 0 ? 200000 : i % 13, static_cast<char>('a' + i % 26))}};
    if (i == 500) row["u"] = "ünïcødé ✓ \n newline";
    expected.push_back(row);
    text += row.dump() + "\n";
    if (i % 100 == 0) text += "\n";  // blank lines count in line numbers
  }
  fs::path gz = dir / "rows.jsonl.gz";
  write_gzip(gz, text);
  fs::path plain = dir / "rows.jsonl";
  test::write_text(plain, text);
  for (const fs::path& p : {gz, plain}) {
    auto rows = jsonl_read_all(p.string());
    ASSERT_EQ(rows.size(), expected.size()) << p;
    for (size_t i = 0; i < rows.size(); ++i) ASSERT_EQ(rows[i].value, expected[i]) << p << " row " << i;
    // Row i is on line i + 1 + (number of blank lines before it) = i + 1 + ceil(i / 100).
    EXPECT_EQ(rows[150].line, 150 + 1 + 2);
    EXPECT_EQ(rows[1999].line, 1999 + 1 + 20);
  }
  // A gzip file without the .gz suffix is still recognised by content.
  fs::copy_file(gz, dir / "disguised.jsonl");
  EXPECT_EQ(jsonl_read_all((dir / "disguised.jsonl").string()).size(), expected.size());
}

TEST(JsonlReader, GzipBadLineNamesDecompressedLine) {
  fs::path dir = test::temp_dir("jsonl");
  fs::path gz = dir / "bad.jsonl.gz";
  write_gzip(gz, "{\"a\":1}\n{\"a\":2}\nnot json\n");
  try {
    jsonl_read_all(gz.string());
    FAIL();
  } catch (const InputError& e) {
    expect_message(e, {gz.string() + ":3: bad JSON"});
  }
}

TEST(JsonlReader, TruncatedGzipIsAnError) {
  fs::path dir = test::temp_dir("jsonl");
  fs::path gz = dir / "full.jsonl.gz";
  std::string text;
  for (int i = 0; i < 5000; ++i) text += "{\"i\":" + std::to_string(i * 7919 % 10007) + "}\n";
  write_gzip(gz, text);
  std::string bytes = test::read_text(gz);
  fs::path cut = dir / "cut.jsonl.gz";
  test::write_text(cut, bytes.substr(0, bytes.size() / 2));
  JsonlReadOptions opt;
  opt.collect_errors = true;  // even when collecting, a broken stream is fatal
  try {
    jsonl_read_all(cut.string(), opt);
    FAIL();
  } catch (const InputError& e) {
    expect_message(e, {cut.string(), "gzip"});
  }
}

TEST(JsonlReader, TornLastLine) {
  fs::path dir = test::temp_dir("jsonl");
  fs::path p = dir / "torn.jsonl";
  test::write_text(p, "{\"a\":1}\n{\"a\":2}\n{\"a\":3, \"tex");
  EXPECT_THROW(jsonl_read_all(p.string()), InputError);  // by default a torn line is an error
  JsonlReadOptions opt;
  opt.allow_torn_last_line = true;
  JsonlReader r(p.string(), opt);
  JsonlRow row;
  int n = 0;
  while (r.next(&row)) ++n;
  EXPECT_EQ(n, 2);
  EXPECT_TRUE(r.dropped_torn_last_line());
  EXPECT_TRUE(r.errors().empty());
  // A bad line in the middle (terminated by '\n') is still an error with that option.
  test::write_text(p, "{\"a\":1}\n{\"a\n{\"a\":3}");
  EXPECT_THROW(jsonl_read_all(p.string(), opt), InputError);
}

TEST(JsonlWrite, WriteAllPlainAndGzip) {
  fs::path dir = test::temp_dir("jsonl");
  std::vector<json> rows = {{{"a", 1}}, {{"b", "two\nlines"}}, json::array({1, 2}), {{"c", nullptr}}};
  fs::path plain = dir / "out.jsonl";
  jsonl_write_all(plain.string(), rows);
  EXPECT_EQ(test::read_text(plain), "{\"a\":1}\n{\"b\":\"two\\nlines\"}\n[1,2]\n{\"c\":null}\n");
  fs::path gz = dir / "out.jsonl.gz";
  jsonl_write_all(gz.string(), rows);
  std::string bytes = test::read_text(gz);
  ASSERT_GE(bytes.size(), 2u);
  EXPECT_EQ(static_cast<unsigned char>(bytes[0]), 0x1f);  // gzip magic
  EXPECT_EQ(static_cast<unsigned char>(bytes[1]), 0x8b);
  EXPECT_EQ(read_gzip(gz), test::read_text(plain));  // decompressed by zlib directly
  EXPECT_EQ(jsonl_read_values(gz.string()), rows);
  // Only the two outputs exist: no temporary files left.
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir)) (void)e, ++entries;
  EXPECT_EQ(entries, 2);
}

TEST(JsonlWrite, DumpReplacesInvalidUtf8) {
  json j = {{"text", std::string("ok \xE2\x82")}};  // a truncated 3-byte character
  std::string line = jsonl_dump(j);
  EXPECT_EQ(line, "{\"text\":\"ok \xEF\xBF\xBD\"}");  // one U+FFFD
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

TEST(JsonlAppender, AppendsFlushedRows) {
  fs::path dir = test::temp_dir("jsonl");
  fs::path p = dir / "sub" / "dir" / "rows.jsonl";  // parent folders created
  {
    JsonlAppender a(p.string());
    a.append({{"id", 1}, {"text", "line\nbreak"}});
    // Flushed: visible to a reader while the appender is still open.
    EXPECT_EQ(test::read_text(p), "{\"id\":1,\"text\":\"line\\nbreak\"}\n");
    a.append({{"id", 2}});
    EXPECT_EQ(a.rows_appended(), 2);
    EXPECT_EQ(a.torn_bytes_dropped(), 0u);
  }
  {
    JsonlAppender a(p.string());  // resume: appends after the existing rows
    a.append({{"id", 3}});
  }
  auto rows = jsonl_read_all(p.string());
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[2].value["id"], 3);
  EXPECT_EQ(rows[2].line, 3);
}

TEST(JsonlAppender, TruncatesTornLastLine) {
  fs::path dir = test::temp_dir("jsonl");
  fs::path p = dir / "rows.jsonl";
  test::write_text(p, "{\"id\":1}\n{\"id\":2}\n{\"id\":3,\"text\":\"killed mid-wr");
  {
    JsonlAppender a(p.string());
    EXPECT_EQ(a.torn_bytes_dropped(), std::string("{\"id\":3,\"text\":\"killed mid-wr").size());
    a.append({{"id", 3}});
  }
  EXPECT_EQ(test::read_text(p), "{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n");

  // Torn in the very first row: the file becomes empty, then the row is appended.
  test::write_text(p, "{\"id\":1,");
  {
    JsonlAppender a(p.string());
    a.append({{"id", 1}});
  }
  EXPECT_EQ(test::read_text(p), "{\"id\":1}\n");

  // A torn line longer than the appender's 64 KiB scan chunk.
  std::string big = "{\"id\":1}\n{\"text\":\"" + std::string(200000, 'x');
  test::write_text(p, big);
  {
    JsonlAppender a(p.string());
    EXPECT_EQ(a.torn_bytes_dropped(), big.size() - 9);
  }
  EXPECT_EQ(test::read_text(p), "{\"id\":1}\n");
}

TEST(JsonlAppender, CompletesAValidLastLineWithoutNewline) {
  fs::path dir = test::temp_dir("jsonl");
  fs::path p = dir / "rows.jsonl";
  // Killed between the row and its newline (or written by hand): the row is complete, keep it.
  test::write_text(p, "{\"id\":1}\n{\"id\":2}");
  {
    JsonlAppender a(p.string());
    EXPECT_EQ(a.torn_bytes_dropped(), 0u);
    a.append({{"id", 3}});
  }
  EXPECT_EQ(test::read_text(p), "{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n");
}

TEST(JsonlAppender, RejectsGzipAndASecondWriter) {
  fs::path dir = test::temp_dir("jsonl");
  try {
    JsonlAppender a((dir / "x.jsonl.gz").string());
    FAIL();
  } catch (const InputError& e) {
    expect_message(e, {"x.jsonl.gz", "gzip"});
  }
  const std::string p = (dir / "locked.jsonl").string();
  JsonlAppender first(p);
  try {
    JsonlAppender second(p);
    FAIL();
  } catch (const InputError& e) {
    expect_message(e, {p, "another"});
  }
  JsonlAppendOptions unlocked;
  unlocked.lock = false;
  JsonlAppender third(p, unlocked);  // allowed when asked for
  third.append({{"ok", true}});
  first.append({{"ok", false}});
  EXPECT_EQ(jsonl_read_all(p).size(), 2u);
}

TEST(JsonlAppender, ConcurrentAppendsStayWholeLines) {
  fs::path dir = test::temp_dir("jsonl");
  const std::string p = (dir / "mt.jsonl").string();
  JsonlAppendOptions opt;
  opt.fsync = true;
  JsonlAppender a(p, opt);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&a, t] {
      for (int i = 0; i < 50; ++i) a.append({{"t", t}, {"i", i}, {"pad", std::string(3000, 'p')}});
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(a.rows_appended(), 200);
  auto rows = jsonl_read_all(p);
  ASSERT_EQ(rows.size(), 200u);
  std::vector<int> next(4, 0);
  for (const auto& r : rows) {
    int t = r.value["t"];
    EXPECT_EQ(r.value["i"], next[t]++);  // each thread's rows in its own order
  }
}

}  // namespace
}  // namespace emlab
