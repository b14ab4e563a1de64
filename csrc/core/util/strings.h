// Small string helpers the whole core shares (one definition each).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace unime::core {

// 'name' in single quotes for error messages, cut to at most `max_chars` bytes at a UTF-8 boundary
// with "..." so a hostile 100 MB name cannot flood a message.
std::string quote(std::string_view s, size_t max_chars = 200);

// `s` with every non-overlapping occurrence of `from` (non-empty) replaced by `to`, left to right.
std::string replace_all(std::string s, std::string_view from, std::string_view to);

// The items joined by `separator`.
std::string join(const std::vector<std::string>& items, std::string_view separator);

// `s` without leading and trailing ASCII whitespace (space, \t, \n, \r, \f, \v).
std::string trim(std::string_view s);

bool starts_with(std::string_view s, std::string_view prefix);
bool ends_with(std::string_view s, std::string_view suffix);

}  // namespace unime::core
