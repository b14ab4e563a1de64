// csrc/core/util: strings, atomic file writing, parallel batch work with per-item errors.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include "core/errors.h"
#include "core/util/atomic_file.h"
#include "core/util/parallel.h"
#include "core/util/strings.h"

namespace {

namespace fs = std::filesystem;
using namespace unime::core;

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(Strings, QuoteReplaceJoin) {
  EXPECT_EQ(quote("abc"), "'abc'");
  EXPECT_EQ(quote(std::string(300, 'x')).size(), 200u + 5u);
  // A cut never splits a UTF-8 sequence: "é" is 2 bytes, so 3 bytes of "ééé" keep one "é".
  EXPECT_EQ(quote("\xc3\xa9\xc3\xa9", 3), "'\xc3\xa9...'");
  EXPECT_EQ(replace_all("a{x}b{x}", "{x}", "{x}{x}"), "a{x}{x}b{x}{x}");
  EXPECT_EQ(join({"a", "b", "c"}, ", "), "a, b, c");
  EXPECT_EQ(join({}, ", "), "");
  EXPECT_TRUE(starts_with("layers.3", "layers."));
  EXPECT_TRUE(ends_with("q_proj.weight", ".weight"));
  EXPECT_FALSE(ends_with("t", ".weight"));
  EXPECT_EQ(trim("\n Represent it.\n"), "Represent it.");
  EXPECT_EQ(trim(" \t\n"), "");
}

TEST(AtomicFile, ReplacesOrLeavesTheTargetWhole) {
  auto dir = fs::temp_directory_path() / ("unime_atomic_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto target = dir / "out.bin";
  write_file_atomic(target.string(), "first");
  EXPECT_EQ(read_all(target), "first");
  {
    AtomicFile f(target.string());
    f.write("half of a new conten");
    // Destroyed without commit (as if the writer died): the old content stays, no temp file is left.
  }
  EXPECT_EQ(read_all(target), "first");
  write_file_atomic(target.string(), "second");
  EXPECT_EQ(read_all(target), "second");
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 1u);
  EXPECT_THROW(write_file_atomic((dir / "missing" / "x").string(), "x"), unime::FileNotFoundError);
  fs::remove_all(dir);
}

TEST(AtomicFile, RemoveTreeRemovesEverythingBelow) {
  auto dir = fs::temp_directory_path() / ("unime_tree_" + std::to_string(::getpid()));
  fs::create_directories(dir / "a" / "b");
  write_file_atomic((dir / "a" / "b" / "f").string(), "x");
  write_file_atomic((dir / "g").string(), "y");
  fs::create_symlink("/etc", dir / "link");  // removed, not followed
  remove_tree(dir.string());
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_TRUE(fs::exists("/etc"));
  EXPECT_NO_THROW(remove_tree(dir.string()));  // absent: nothing to do
}

TEST(Parallel, EveryItemRunsAndErrorsComeBackByIndex) {
  for (size_t threads : {1u, 2u, 7u}) {
    std::vector<int> out(100, 0);
    auto errors = parallel_for_each(
        out.size(), threads,
        [&](size_t i) {
          if (i % 30 == 7) throw unime::InvalidInputError("bad " + std::to_string(i));
          out[i] = static_cast<int>(i) + 1;
        },
        3);
    ASSERT_EQ(errors.size(), 4u);
    EXPECT_EQ(errors[0].index, 7u);
    EXPECT_EQ(errors[3].index, 97u);
    EXPECT_EQ(errors[1].message, "bad 37");
    for (size_t i = 0; i < out.size(); ++i) EXPECT_EQ(out[i], i % 30 == 7 ? 0 : int(i) + 1);
    try {
      throw_first(errors, "input ");
      FAIL();
    } catch (const unime::InvalidInputError& e) {
      EXPECT_STREQ(e.what(), "input 7: bad 7");  // the category is kept
    }
  }
  EXPECT_NO_THROW(throw_first({}, "input "));
  EXPECT_TRUE(parallel_for_each(0, 4, [](size_t) { FAIL(); }).empty());
  auto other = parallel_for_each(1, 1, [](size_t) { throw unime::FileNotFoundError("x.png: missing"); });
  EXPECT_THROW(throw_first(other, "image "), unime::FileNotFoundError);
}

}  // namespace
