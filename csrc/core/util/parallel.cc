#include "core/util/parallel.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "core/errors.h"

namespace unime::core {

std::vector<ItemError> parallel_for_each(size_t n, size_t num_threads, const std::function<void(size_t)>& fn,
                                         size_t chunk) {
  if (num_threads == 0) num_threads = std::max(1u, std::thread::hardware_concurrency());
  chunk = std::max<size_t>(chunk, 1);
  num_threads = std::min(num_threads, (n + chunk - 1) / chunk);
  std::atomic<size_t> next{0};
  std::mutex mutex;
  std::vector<ItemError> errors;
  auto work = [&]() {
    for (;;) {
      const size_t begin = next.fetch_add(chunk);
      if (begin >= n) return;
      const size_t end = std::min(n, begin + chunk);
      for (size_t i = begin; i < end; ++i) {
        try {
          fn(i);
        } catch (const std::exception& e) {
          std::lock_guard<std::mutex> lock(mutex);
          errors.push_back({i, std::current_exception(), e.what()});
        } catch (...) {
          std::lock_guard<std::mutex> lock(mutex);
          errors.push_back({i, std::current_exception(), "unknown error"});
        }
      }
    }
  };
  if (num_threads <= 1) {
    work();
  } else {
    std::vector<std::thread> threads;
    threads.reserve(num_threads - 1);
    for (size_t t = 1; t < num_threads; ++t) threads.emplace_back(work);
    work();
    for (auto& t : threads) t.join();
  }
  std::sort(errors.begin(), errors.end(), [](const ItemError& a, const ItemError& b) { return a.index < b.index; });
  return errors;
}

void rethrow_with_prefix(const std::exception_ptr& error, const std::string& prefix) {
  try {
    std::rethrow_exception(error);
  } catch (const InvalidInputError& e) {
    throw InvalidInputError(prefix + e.what());
  } catch (const FileNotFoundError& e) {
    throw FileNotFoundError(prefix + e.what());
  } catch (const MissingKeyError& e) {
    throw MissingKeyError(prefix + e.what());
  } catch (const std::exception& e) {
    throw std::runtime_error(prefix + e.what());
  }
}

void throw_first(const std::vector<ItemError>& errors, const std::string& what) {
  if (errors.empty()) return;
  rethrow_with_prefix(errors.front().error, what + std::to_string(errors.front().index) + ": ");
}

}  // namespace unime::core
