// The memory-mapped SafetensorsFile and Checkpoint (single file, directory or sharded index).
// Validation of the bytes is parse_header's (safetensors_reader.cc); this file does the I/O.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "core/errors.h"
#include "core/safetensors.h"
#include "core/util/strings.h"

namespace unime::core {

namespace {

namespace fs = std::filesystem;

constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleName = "model.safetensors";

bool path_exists(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

}  // namespace

// ---- SafetensorsFile ----------------------------------------------------------------------------

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  // O_NONBLOCK: opening a FIFO must fail below (not a regular file) rather than block.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) throw FileNotFoundError(path + ": no such file");
    throw std::runtime_error(path + ": cannot open: " + system_error_text(err));
  }
  struct stat st;
  int stat_err = ::fstat(fd, &st) == 0 ? 0 : errno;
  void* map = MAP_FAILED;
  int map_err = 0;
  if (stat_err == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
    map = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    map_err = map == MAP_FAILED ? errno : 0;
  }
  ::close(fd);  // the mapping keeps the file alive
  if (stat_err) throw std::runtime_error(path + ": cannot stat: " + system_error_text(stat_err));
  if (!S_ISREG(st.st_mode)) throw InvalidInputError(path + ": not a regular file");
  if (st.st_size == 0) throw InvalidInputError(path + ": empty file (0 bytes), not safetensors");
  if (map == MAP_FAILED) throw std::runtime_error(path + ": mmap failed: " + system_error_text(map_err));

  SafetensorsFile file;  // owns the mapping from here on; unmaps if validation throws
  file.path_ = path;
  file.base_ = static_cast<const uint8_t*>(map);
  file.size_ = static_cast<size_t>(st.st_size);
  file.header_ = parse_header(file.base_, file.size_, path);
  for (size_t i = 0; i < file.header_.tensors.size(); ++i) file.index_.emplace(file.header_.tensors[i].name, i);
  return file;
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& other) noexcept
    : path_(std::move(other.path_)),
      base_(std::exchange(other.base_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      header_(std::move(other.header_)),
      index_(std::move(other.index_)) {}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& other) noexcept {
  if (this != &other) {
    unmap();
    path_ = std::move(other.path_);
    base_ = std::exchange(other.base_, nullptr);
    size_ = std::exchange(other.size_, 0);
    header_ = std::move(other.header_);
    index_ = std::move(other.index_);
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() { unmap(); }

void SafetensorsFile::unmap() noexcept {
  if (base_) ::munmap(const_cast<uint8_t*>(base_), size_);
  base_ = nullptr;
  size_ = 0;
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

const TensorInfo& SafetensorsFile::at(std::string_view name) const {
  if (const TensorInfo* info = find(name)) return *info;
  throw MissingKeyError(path_ + ": no tensor " + quote(name));
}

const uint8_t* SafetensorsFile::data(const TensorInfo& info) const {
  const uint64_t buffer = size_ - header_.data_start();
  if (!base_ || info.end < info.begin || info.end > buffer)
    throw InvalidInputError(path_ + ": tensor " + quote(info.name) + " does not lie in this file");
  return base_ + header_.data_start() + info.begin;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(header_.tensors.size());
  for (const auto& t : header_.tensors) out.push_back(t.name);
  return out;
}

// ---- Checkpoint ---------------------------------------------------------------------------------

Checkpoint Checkpoint::open(const std::string& path) {
  std::error_code ec;
  const auto status = fs::status(path, ec);  // follows symlinks (the Hugging Face cache uses them)
  if (status.type() == fs::file_type::not_found) throw FileNotFoundError(path + ": no such file or directory");
  if (ec) throw std::runtime_error(path + ": cannot access: " + ec.message());
  Checkpoint ckpt;
  ckpt.path_ = path;
  if (fs::is_regular_file(status)) {
    ckpt.add_file(SafetensorsFile::open(path));
    return ckpt;
  }
  if (!fs::is_directory(status)) throw InvalidInputError(path + ": not a regular file or a directory");

  const fs::path dir(path);
  if (path_exists(dir / kIndexName)) {
    ckpt.open_sharded(path, (dir / kIndexName).string());
  } else if (path_exists(dir / kSingleName)) {
    ckpt.add_file(SafetensorsFile::open((dir / kSingleName).string()));
  } else {
    std::vector<std::string> found;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      std::error_code type_ec;
      if (name.size() > 12 && name.compare(name.size() - 12, 12, ".safetensors") == 0 && it->is_regular_file(type_ec))
        found.push_back(name);
    }
    if (ec) throw std::runtime_error(path + ": cannot list directory: " + ec.message());
    std::sort(found.begin(), found.end());
    if (found.size() != 1) {
      std::string msg = path + ": looked for " + kIndexName + ", " + kSingleName + " or a single *.safetensors file";
      if (found.empty()) throw FileNotFoundError(msg + "; found none");
      std::string list;
      for (const auto& f : found) list += (list.empty() ? "" : ", ") + f;
      throw FileNotFoundError(msg + "; found " + std::to_string(found.size()) +
                              " *.safetensors files and no index to choose: " + list);
    }
    ckpt.add_file(SafetensorsFile::open((dir / found[0]).string()));
  }
  return ckpt;
}

void Checkpoint::add_file(SafetensorsFile file) {
  const size_t id = files_.size();
  const auto& tensors = file.header().tensors;
  for (size_t i = 0; i < tensors.size(); ++i) {
    auto [it, inserted] = index_.emplace(tensors[i].name, std::make_pair(id, i));
    if (!inserted)
      throw InvalidInputError(path_ + ": tensor " + quote(tensors[i].name) + " is in both " +
                              files_[it->second.first].path() + " and " + file.path());
  }
  files_.push_back(std::move(file));
}

void Checkpoint::open_sharded(const std::string& dir, const std::string& index_path) {
  std::ifstream in(index_path, std::ios::binary);
  std::stringstream text;
  if (!(in && text << in.rdbuf())) throw std::runtime_error(index_path + ": cannot read the index");
  const auto listed = parse_weight_map(text.str(), index_path);  // tensor -> shard file name
  const auto fail = [&](const std::string& what) { throw InvalidInputError(index_path + ": " + what); };

  std::map<std::string, size_t> shard_ids;  // shard file name -> position in files_
  for (const auto& item : listed) shard_ids.emplace(item.second, 0);
  for (auto& [shard, id] : shard_ids) {
    const fs::path shard_path = fs::path(dir) / shard;
    if (!path_exists(shard_path))
      throw FileNotFoundError(index_path + ": shard " + quote(shard) + " listed in weight_map does not exist (" +
                              shard_path.string() + ")");
    id = files_.size();
    add_file(SafetensorsFile::open(shard_path.string()));  // rejects a tensor in two shards
  }
  for (const auto& [tensor, shard] : listed) {
    auto it = index_.find(tensor);
    if (it == index_.end())
      fail("weight_map lists tensor " + quote(tensor) + " in shard " + quote(shard) + ", which does not contain it");
    if (it->second.first != shard_ids.at(shard))
      fail("weight_map lists tensor " + quote(tensor) + " in shard " + quote(shard) + " but it is in " +
           files_[it->second.first].path());
  }
  for (const auto& [tensor, where] : index_)
    if (!listed.count(tensor))
      fail("tensor " + quote(tensor) + " of " + files_[where.first].path() + " is not listed in weight_map");
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& item : index_) out.push_back(item.first);
  return out;
}

CheckpointTensor Checkpoint::find(std::string_view name) const {
  auto it = index_.find(name);
  if (it == index_.end()) return {};
  const SafetensorsFile& file = files_[it->second.first];
  return {&file, &file.header().tensors[it->second.second]};
}

CheckpointTensor Checkpoint::at(std::string_view name) const {
  if (auto found = find(name)) return found;
  throw MissingKeyError(path_ + ": no tensor " + quote(name) + " in the checkpoint");
}

}  // namespace unime::core
