// Writing a file so that readers see either the old content or the whole new one, never a torn
// write: data goes to a temporary file in the target's directory, is fsynced, and is renamed over
// the target (then the directory is fsynced). A process killed at any point leaves at most a stray
// "<target>.tmp.<pid>.<n>" file, never a truncated target. Used for safetensors files and the
// trainer's checkpoints. Plain C++ and POSIX.
#pragma once

#include <string>
#include <string_view>

namespace unime::core {

class AtomicFile {
 public:
  // Creates the temporary file. FileNotFoundError when the directory does not exist,
  // std::runtime_error (naming the path and the system error) for anything else.
  explicit AtomicFile(std::string target);
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();  // removes the temporary file unless commit() succeeded

  void write(const void* data, size_t n);  // all of it (retries partial writes and EINTR)
  void write(std::string_view bytes) { write(bytes.data(), bytes.size()); }
  // fsync, close, rename over the target, fsync the directory. After this the target holds
  // everything written.
  void commit();
  const std::string& target() const { return target_; }

 private:
  [[noreturn]] void fail(const char* what, int err) const;
  std::string target_, path_;
  int fd_ = -1;
  bool committed_ = false;
};

// The whole of `bytes` written to `path` through an AtomicFile.
void write_file_atomic(const std::string& path, std::string_view bytes);

// fsync of a directory (best effort): makes renames and new entries in it durable.
void sync_directory(const std::string& dir);

// Removes `path` and everything below it (symlinks are removed, not followed); nothing when it
// does not exist. std::runtime_error naming the entry that could not be removed.
// (Not std::filesystem::remove_all: the torch wheel's libtorch.so exports its own std::filesystem
// symbols, and its remove_all crashes when our code binds to it.)
void remove_tree(const std::string& path);

}  // namespace unime::core
