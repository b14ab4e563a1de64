// Typed access to tokenizer.json fields with errors that name the field (JSON path), e.g.
// "tokenizer.json: model.merges[3]: expected a string or a pair of strings".
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "core/errors.h"

namespace unime::core::json_fields {

[[noreturn]] inline void fail(const std::string& where, const std::string& what) {
  throw InvalidInputError("tokenizer.json: " + where + ": " + what);
}

inline const nlohmann::json& require(const nlohmann::json& obj, const char* key, const std::string& where) {
  if (!obj.is_object()) fail(where, "expected an object");
  auto it = obj.find(key);
  if (it == obj.end()) fail(where == "(root)" ? std::string(key) : where + "." + key, "missing");
  return *it;
}

inline std::string get_string(const nlohmann::json& obj, const char* key, const std::string& where) {
  const auto& v = require(obj, key, where);
  if (!v.is_string()) fail(where + "." + key, "expected a string");
  return v.get<std::string>();
}

inline bool get_bool(const nlohmann::json& obj, const char* key, const std::string& where, bool fallback) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) fail(where + "." + key, "expected true or false");
  return it->get<bool>();
}

inline int64_t get_int(const nlohmann::json& obj, const char* key, const std::string& where, int64_t lo, int64_t hi) {
  const auto& v = require(obj, key, where);
  if (!v.is_number_integer()) fail(where + "." + key, "expected an integer");
  int64_t x = v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX) ? INT64_MAX : v.get<int64_t>();
  if (x < lo || x > hi) {
    fail(where + "." + key,
         std::to_string(x) + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  return x;
}

// The "type" of a component object.
inline std::string get_type(const nlohmann::json& obj, const std::string& where) {
  return get_string(obj, "type", where);
}

// A String/Regex pattern object {"String": s} or {"Regex": r}; sets is_regex.
inline std::string get_pattern(const nlohmann::json& obj, const std::string& where, bool* is_regex) {
  const auto& p = require(obj, "pattern", where);
  std::string at = where + ".pattern";
  if (!p.is_object() || p.size() != 1) fail(at, "expected {\"String\": ...} or {\"Regex\": ...}");
  if (p.contains("String")) {
    *is_regex = false;
    return get_string(p, "String", at);
  }
  if (p.contains("Regex")) {
    *is_regex = true;
    return get_string(p, "Regex", at);
  }
  fail(at, "expected {\"String\": ...} or {\"Regex\": ...}");
}

}  // namespace unime::core::json_fields
