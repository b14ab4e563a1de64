#include "train/checkpoint.h"

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <unistd.h>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/errors.h"
#include "core/util/atomic_file.h"
#include "core/util/strings.h"

namespace unime::train {

namespace fs = std::filesystem;

std::string checkpoint_path(const std::string& root, int64_t step) {
  char name[32];
  std::snprintf(name, sizeof(name), "checkpoint-%08lld", static_cast<long long>(step));
  return (fs::path(root) / name).string();
}

bool is_complete(const std::string& dir) { return fs::exists(fs::path(dir) / kCompleteMarker); }

namespace {
// (step, path) of every checkpoint-* directory under root, complete or not, by step.
std::vector<std::pair<int64_t, std::string>> checkpoint_dirs(const std::string& root) {
  std::vector<std::pair<int64_t, std::string>> out;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return out;
  for (const auto& entry : fs::directory_iterator(root)) {
    const auto name = entry.path().filename().string();
    if (!entry.is_directory() || !core::starts_with(name, "checkpoint-")) continue;
    const auto digits = name.substr(11);
    if (digits.empty() || !std::all_of(digits.begin(), digits.end(), ::isdigit)) continue;
    out.emplace_back(std::stoll(digits), entry.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}
}  // namespace

std::vector<std::string> complete_checkpoints(const std::string& root) {
  std::vector<std::string> out;
  for (const auto& [_, path] : checkpoint_dirs(root))
    if (is_complete(path)) out.push_back(path);
  return out;
}

std::optional<std::string> latest_checkpoint(const std::string& root) {
  auto all = complete_checkpoints(root);
  if (all.empty()) return std::nullopt;
  return all.back();
}

std::string begin_checkpoint(const std::string& root, int64_t step) {
  fs::create_directories(root);
  // Leftovers of interrupted saves (no marker) go first, the target included.
  for (const auto& [_, path] : checkpoint_dirs(root))
    if (!is_complete(path)) core::remove_tree(path);
  const auto dir = checkpoint_path(root, step);
  if (is_complete(dir)) ::unlink((fs::path(dir) / kCompleteMarker).c_str());  // rewriting the same step
  fs::create_directories(dir);
  return dir;
}

void complete_checkpoint(const std::string& root, int64_t step, int64_t keep_last) {
  const auto dir = checkpoint_path(root, step);
  // Fault injection for the kill-and-resume tests: die (as SIGKILL does) with every state file of
  // this step written and the marker not yet.
  if (const char* kill = std::getenv("UNIME_KILL_BEFORE_MARKER"); kill && std::to_string(step) == kill)
    std::raise(SIGKILL);
  core::write_file_atomic((fs::path(dir) / kCompleteMarker).string(), std::to_string(step) + "\n");
  core::sync_directory(root);
  if (keep_last > 0) {
    auto complete = complete_checkpoints(root);
    for (size_t i = 0; i + static_cast<size_t>(keep_last) < complete.size(); ++i)
      if (complete[i] != dir) core::remove_tree(complete[i]);
  }
}

std::string write_checkpoint(const std::string& root, int64_t step,
                             const std::function<void(const std::string& dir)>& write_files, int64_t keep_last) {
  const auto dir = begin_checkpoint(root, step);
  write_files(dir);
  complete_checkpoint(root, step, keep_last);
  return dir;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FileNotFoundError(path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace unime::train
