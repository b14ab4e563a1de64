// Batch work spread over threads with per-item errors: one bad input (a corrupt image, a text that
// is not UTF-8) is reported with its index and loses nothing else. Used by the tokenizer, the image
// preprocessing and the model processors. Plain C++.
#pragma once

#include <cstddef>
#include <exception>
#include <functional>
#include <string>
#include <vector>

namespace unime::core {

struct ItemError {
  size_t index = 0;
  std::exception_ptr error;  // rethrow to get the original type
  std::string message;       // error.what()
};

// Calls fn(i) for every i in [0, n) on up to `num_threads` threads (0: one per core), taking
// `chunk` consecutive items at a time from a shared counter so uneven items balance. Every item is
// attempted; the failures come back sorted by index instead of being thrown. fn must be safe to
// call concurrently for different i.
std::vector<ItemError> parallel_for_each(size_t n, size_t num_threads, const std::function<void(size_t)>& fn,
                                         size_t chunk = 1);

// Rethrows errors.front() (if any) as the same error category (InvalidInputError,
// FileNotFoundError, MissingKeyError, else std::runtime_error) with `what` + index + ": " in front
// of its message, e.g. "input 7: text is not valid UTF-8 ...".
void throw_first(const std::vector<ItemError>& errors, const std::string& what);

// The same for one error.
[[noreturn]] void rethrow_with_prefix(const std::exception_ptr& error, const std::string& prefix);

}  // namespace unime::core
