// Reading JSON files (config.json, index files) with errors that name the file.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace unime::core {

// Parses the JSON file at `path`. Throws FileNotFoundError when it does not exist and
// InvalidInputError (naming the file and the parser's position) when it is not valid JSON.
nlohmann::json read_json_file(const std::string& path);

// Typed field access with messages of the form "<source>: field 'name' ...".
// `get_required` throws MissingKeyError when absent and InvalidInputError on a type mismatch;
// `get_or` returns `fallback` when the field is absent or JSON null.
template <typename T>
T get_required(const nlohmann::json& obj, const char* name, const std::string& source);
template <typename T>
T get_or(const nlohmann::json& obj, const char* name, T fallback, const std::string& source);

}  // namespace unime::core
