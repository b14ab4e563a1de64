#include "core/util/atomic_file.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "core/errors.h"

namespace unime::core {

AtomicFile::AtomicFile(std::string target) : target_(std::move(target)) {
  // O_EXCL with pid + per-process counter: unique across threads and processes; a name left by a
  // crashed process with a recycled pid is skipped. Mode 0666 & ~umask, like any new file.
  static std::atomic<unsigned> counter{0};
  for (int attempt = 0; attempt < 100; ++attempt) {
    path_ = target_ + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ >= 0 || errno != EEXIST) break;
  }
  if (fd_ < 0) {
    int err = errno;
    if (err == ENOENT) throw FileNotFoundError(target_ + ": cannot write: the directory does not exist");
    throw std::runtime_error(target_ + ": cannot create " + path_ + ": " + system_error_text(err));
  }
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(path_.c_str());
}

void AtomicFile::write(const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {  // write() may be partial (at most ~2 GiB per call on Linux) or interrupted
    ssize_t w = ::write(fd_, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) fail("write", errno);
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void AtomicFile::commit() {
  if (::fsync(fd_) != 0) fail("fsync", errno);
  int fd = std::exchange(fd_, -1);
  if (::close(fd) != 0) fail("close", errno);
  if (::rename(path_.c_str(), target_.c_str()) != 0) {
    int err = errno;
    throw std::runtime_error(target_ + ": cannot rename " + path_ + " over it: " + system_error_text(err));
  }
  committed_ = true;
  // Make the rename itself durable; best effort, the data is already safe.
  sync_directory(std::filesystem::path(target_).parent_path().string());
}

void AtomicFile::fail(const char* what, int err) const {
  throw std::runtime_error(target_ + ": " + what + " of " + path_ + " failed: " + system_error_text(err));
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  AtomicFile file(path);
  file.write(bytes);
  file.commit();
}

void sync_directory(const std::string& dir) {
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

namespace {
int remove_entry(const char* path, const struct stat*, int type, struct FTW*) {
  const int rc = (type == FTW_DP || type == FTW_D) ? ::rmdir(path) : ::unlink(path);
  return rc == 0 || errno == ENOENT ? 0 : -1;
}
}  // namespace

void remove_tree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return;
  if (::nftw(path.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
    throw std::runtime_error(path + ": cannot remove: " + system_error_text(errno));
}

}  // namespace unime::core
