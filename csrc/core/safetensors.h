// Reading and writing safetensors files and Hugging Face checkpoint directories (plain C++, no
// LibTorch: the model layer turns the bytes into tensors).
//
// File format: an 8-byte little-endian u64 N, N bytes of UTF-8 JSON header, then the byte buffer.
// The header maps tensor names to {"dtype": "F32", "shape": [..], "data_offsets": [BEGIN, END]}
// with offsets relative to the start of the buffer, plus an optional "__metadata__" object of
// string values.
//
// parse_header() accepts what the reference implementation (huggingface/safetensors) accepts,
// including leading and trailing JSON whitespace, an empty header "{}", 0-rank tensors (numel 1)
// and zero-size tensors, and is stricter in these deliberate ways:
//   - duplicate JSON keys are rejected, anywhere in the header (the reference keeps the last one,
//     other JSON parsers the first: two readers would see different tensors in one file);
//   - fields other than dtype, shape and data_offsets in a tensor entry are rejected (the format's
//     JSON schema says additionalProperties: false; the reference ignores them, so they could
//     carry data one reader acts on and another never sees);
//   - "__metadata__": null is rejected (the reference reads it as no metadata; its writer never
//     produces it);
//   - the sub-byte dtypes F4, F6_E2M3 and F6_E3M2 are rejected as unsupported;
//   - JSON nested deeper than 64 levels is rejected (a valid header is 3 levels deep).
// Where nlohmann alone would accept more than the reference, the reference's rule is enforced: a
// UTF-8 byte order mark, a NUL byte (nlohmann stops there), "-0" and non-integral numbers are
// rejected.
// As in the reference, the tensors must tile the buffer exactly (sorted by offset, no gap, no
// overlap) and the buffer must end at the end of the file, so no byte of a file goes unaccounted.
//
// All validation failures throw unime::InvalidInputError whose message starts with the file path
// (or the source name given to parse_header) and names the tensor where there is one.
//
// Implementation: safetensors_reader.cc (pure parsing, what the fuzzer links), safetensors_file.cc
// (mmap and checkpoint directories), safetensors_writer.cc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace unime::core {

// Every dtype of the format that has whole bytes per element. The sub-byte types F4, F6_E2M3 and
// F6_E3M2 are rejected as unsupported by parse_header.
enum class DType {
  BOOL,
  U8,
  I8,
  I16,
  U16,
  F16,
  BF16,
  I32,
  U32,
  F32,
  F64,
  I64,
  U64,
  C64,
  F8_E4M3,
  F8_E5M2,
  F8_E8M0,
  F8_E4M3FNUZ,
  F8_E5M2FNUZ,
};

size_t dtype_size(DType dtype);                           // bytes per element
const char* dtype_name(DType dtype);                      // the header spelling, e.g. "BF16"; static storage
std::optional<DType> parse_dtype(std::string_view name);  // exact spelling; nullopt if unknown

// Headers larger than this are refused before anything is allocated (the reference's limit).
inline constexpr uint64_t kMaxHeaderSize = 100'000'000;

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;  // empty for a 0-rank tensor
  uint64_t begin, end;         // byte offsets relative to the start of the buffer
  uint64_t nbytes() const { return end - begin; }
  int64_t numel() const;  // product of shape; 1 for a 0-rank tensor
};

struct Header {
  std::vector<TensorInfo> tensors;  // in file order of data_offsets (ties by name)
  std::map<std::string, std::string> metadata;
  uint64_t header_size = 0;                                // N: bytes of JSON after the 8-byte length
  uint64_t data_start() const { return 8 + header_size; }  // file offset of the buffer
};

// Validates a whole file image `data[0, size)` (length prefix, header and buffer) and returns its
// header. `source_name` starts every error message. Throws only InvalidInputError (and
// std::bad_alloc). Pure: no I/O, no global state, safe to call from several threads.
Header parse_header(const uint8_t* data, size_t size, const std::string& source_name);

// Parses a sharded checkpoint's index (model.safetensors.index.json) and returns its weight_map,
// tensor name -> shard file name. InvalidInputError (starting with `source_name`) if the text is
// not a JSON object without duplicate keys, weight_map is missing or not an object of strings, or
// a shard is not a plain file name (empty, ".", "..", or containing '/', '\\' or NUL: it is joined
// to the checkpoint directory and must not leave it). Other fields ("metadata") are ignored.
std::map<std::string, std::string> parse_weight_map(std::string_view text, const std::string& source_name);

// One validated safetensors file, memory-mapped read-only (MAP_PRIVATE). Owns the mapping:
// move-only, unmapped by the destructor. Pointers from header(), find() and data() stay valid as
// long as this object (or the one it was moved into) lives. Immutable after open(), so concurrent
// reads are safe. As with any mmap, a file truncated in place by another process while mapped
// makes reads fault (SIGBUS); write_safetensors() never does that (it renames a new file over).
class SafetensorsFile {
 public:
  // FileNotFoundError if `path` does not exist; InvalidInputError if it is not a regular file, is
  // empty or fails validation; std::runtime_error (with the system's reason) if open/mmap fail.
  static SafetensorsFile open(const std::string& path);

  SafetensorsFile(SafetensorsFile&& other) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& other) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  const Header& header() const { return header_; }
  const std::string& path() const { return path_; }
  const TensorInfo* find(std::string_view name) const;  // nullptr if absent
  const TensorInfo& at(std::string_view name) const;    // MissingKeyError naming tensor and file
  // First byte of the tensor inside the mapping; the bytes are not aligned to the element size.
  // InvalidInputError if `info` does not lie inside this file.
  const uint8_t* data(const TensorInfo& info) const;
  std::vector<std::string> names() const;  // in file order, like header().tensors

 private:
  SafetensorsFile() = default;
  void unmap() noexcept;

  std::string path_;
  const uint8_t* base_ = nullptr;  // the mapping, size_ bytes; owned
  size_t size_ = 0;
  Header header_;
  std::map<std::string, size_t, std::less<>> index_;  // name -> position in header_.tensors
};

// A tensor of a Checkpoint: both null when absent. Valid while the Checkpoint lives.
struct CheckpointTensor {
  const SafetensorsFile* file = nullptr;
  const TensorInfo* info = nullptr;
  explicit operator bool() const { return info != nullptr; }
};

// A Hugging Face checkpoint: one safetensors file, or a directory holding either a sharded
// checkpoint (model.safetensors.index.json), model.safetensors, or exactly one *.safetensors file,
// looked for in that order. Owns every shard (each opened once); move-only.
class Checkpoint {
 public:
  // FileNotFoundError if the path, a listed shard or any safetensors file in a directory is
  // missing (saying what was looked for). InvalidInputError for a malformed index: weight_map
  // missing or not an object of strings, a shard name that is not a plain file name in the
  // directory (absolute, containing '/' or '\\', "." or ".."), a listed tensor absent from its
  // shard, a shard tensor not listed, or one tensor in two shards. Shard files in the directory
  // that the index does not name are ignored, and so is the index's "metadata".
  static Checkpoint open(const std::string& path);

  std::vector<std::string> names() const;  // sorted
  CheckpointTensor find(std::string_view name) const;
  CheckpointTensor at(std::string_view name) const;  // MissingKeyError naming tensor and path
  size_t size() const { return index_.size(); }
  const std::vector<SafetensorsFile>& files() const { return files_; }
  const std::string& path() const { return path_; }

 private:
  void add_file(SafetensorsFile file);  // indexes its tensors; rejects one seen in another file
  void open_sharded(const std::string& dir, const std::string& index_path);

  std::string path_;
  // Moving the vector keeps element addresses, so CheckpointTensor pointers survive a move.
  std::vector<SafetensorsFile> files_;
  // name -> (position in files_, position in that file's header().tensors)
  std::map<std::string, std::pair<size_t, size_t>, std::less<>> index_;
};

// A tensor to write: `nbytes` bytes of row-major data at `data`, borrowed for the duration of the
// call only.
struct TensorView {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
  size_t nbytes;
};

// Writes a safetensors file at `path`. Throws InvalidInputError (before touching the disk) for a
// duplicate or reserved ("__metadata__") name, names or metadata that are not UTF-8, a negative
// dimension, or nbytes != numel * dtype_size. Layout: header padded with spaces so that the buffer
// starts at a multiple of 8, tensors stored contiguously ordered by dtype size descending, then
// name (as the reference does, so each tensor is aligned to its element size). The file is written
// to a temporary file in the same directory, fsynced and renamed over `path`, so a reader that has
// the old file mapped keeps seeing the old bytes; the temporary is removed on failure. A missing
// directory gives FileNotFoundError, other I/O failures std::runtime_error.
void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace unime::core
