#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "core/errors.h"
#include "core/json_file.h"

namespace {

std::string write_temp(const std::string& text) {
  std::string path = testing::TempDir() + "unime_json_" + std::to_string(std::rand()) + ".json";
  std::ofstream(path) << text;
  return path;
}

TEST(JsonFile, MissingFileIsFileNotFound) {
  EXPECT_THROW(unime::core::read_json_file("/nonexistent/config.json"), unime::FileNotFoundError);
}

TEST(JsonFile, InvalidJsonNamesTheFile) {
  auto path = write_temp("{\"a\": 1,");
  try {
    unime::core::read_json_file(path);
    FAIL() << "expected InvalidInputError";
  } catch (const unime::InvalidInputError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
  }
  std::remove(path.c_str());
}

TEST(JsonFile, TypedAccess) {
  auto j = nlohmann::json::parse(R"({"n": 3, "x": 2.5, "s": "a", "b": true, "f": 2.0, "z": null})");
  using unime::core::get_or;
  using unime::core::get_required;
  EXPECT_EQ(get_required<int64_t>(j, "n", "cfg"), 3);
  EXPECT_DOUBLE_EQ(get_required<double>(j, "x", "cfg"), 2.5);
  EXPECT_DOUBLE_EQ(get_required<double>(j, "n", "cfg"), 3.0);  // integers are valid numbers
  EXPECT_EQ(get_required<std::string>(j, "s", "cfg"), "a");
  EXPECT_TRUE(get_required<bool>(j, "b", "cfg"));
  EXPECT_EQ(get_or<int64_t>(j, "missing", 7, "cfg"), 7);
  EXPECT_EQ(get_or<int64_t>(j, "z", 7, "cfg"), 7);  // null reads as absent
  EXPECT_THROW(get_required<int64_t>(j, "missing", "cfg"), unime::MissingKeyError);
  EXPECT_THROW(get_required<int64_t>(j, "x", "cfg"), unime::InvalidInputError);  // 2.5 is not an int
  EXPECT_THROW(get_required<int64_t>(j, "f", "cfg"), unime::InvalidInputError);  // nor is 2.0
  EXPECT_THROW(get_required<std::string>(j, "n", "cfg"), unime::InvalidInputError);
}

}  // namespace
