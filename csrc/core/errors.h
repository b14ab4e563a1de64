// Error categories of the unime core.
//
// The core throws these (never Python exceptions); csrc/python/ maps each one to a specific Python
// exception so that callers can catch what they mean:
//   InvalidInputError  -> ValueError         malformed file, bad argument, wrong shape
//   FileNotFoundError  -> FileNotFoundError  a path that does not exist
//   MissingKeyError    -> KeyError           a tensor or config key that is not there
//   anything else      -> RuntimeError
// Messages name what was wrong: the file, tensor, argument or input index.
#pragma once

#include <stdexcept>
#include <string>
#include <system_error>

namespace unime {

class InvalidInputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class FileNotFoundError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class MissingKeyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// strerror-like text of an errno value, thread-safe.
inline std::string system_error_text(int err) { return std::generic_category().message(err); }

}  // namespace unime
