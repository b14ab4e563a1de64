#include "core/json_file.h"

#include <fstream>
#include <sstream>

#include "core/errors.h"

namespace unime::core {

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FileNotFoundError(path + ": no such file");
  std::stringstream buf;
  buf << in.rdbuf();
  try {
    return nlohmann::json::parse(buf.str());
  } catch (const nlohmann::json::parse_error& e) {
    throw InvalidInputError(path + ": not valid JSON (" + e.what() + ")");
  }
}

namespace {
template <typename T>
T convert(const nlohmann::json& value, const char* name, const std::string& source) {
  // nlohmann converts floats to ints silently; a config with "num_hidden_layers": 2.5 is an error.
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    if (!value.is_number_integer())
      throw InvalidInputError(source + ": field '" + name + "' must be an integer, got " + value.dump());
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!value.is_number())
      throw InvalidInputError(source + ": field '" + name + "' must be a number, got " + value.dump());
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!value.is_boolean())
      throw InvalidInputError(source + ": field '" + name + "' must be true or false, got " + value.dump());
  } else {
    if (!value.is_string())
      throw InvalidInputError(source + ": field '" + name + "' must be a string, got " + value.dump());
  }
  return value.get<T>();
}
}  // namespace

template <typename T>
T get_required(const nlohmann::json& obj, const char* name, const std::string& source) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) throw MissingKeyError(source + ": missing field '" + name + "'");
  return convert<T>(*it, name, source);
}

template <typename T>
T get_or(const nlohmann::json& obj, const char* name, T fallback, const std::string& source) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return fallback;
  return convert<T>(*it, name, source);
}

#define UNIME_INSTANTIATE(T)                                                          \
  template T get_required<T>(const nlohmann::json&, const char*, const std::string&); \
  template T get_or<T>(const nlohmann::json&, const char*, T, const std::string&);
UNIME_INSTANTIATE(int64_t)
UNIME_INSTANTIATE(double)
UNIME_INSTANTIATE(bool)
UNIME_INSTANTIATE(std::string)
#undef UNIME_INSTANTIATE

}  // namespace unime::core
