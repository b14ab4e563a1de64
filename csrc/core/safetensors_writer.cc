// Writing safetensors files: validate everything first, then temp file + fsync + rename so that a
// file somebody has mapped is replaced, never truncated in place.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <filesystem>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <system_error>

#include "core/errors.h"
#include "core/safetensors.h"
#include "core/util/atomic_file.h"

namespace unime::core {

namespace {

using ordered_json = nlohmann::ordered_json;

// nlohmann's dump() is the one place that checks UTF-8 on output; run it per string so the error
// can say which name or metadata entry is at fault.
bool is_utf8(const std::string& s) {
  try {
    (void)ordered_json(s).dump();
    return true;
  } catch (const nlohmann::json::type_error&) {
    return false;
  }
}

uint64_t checked_nbytes(const TensorView& t, const std::string& path) {
  const auto fail = [&](const std::string& what) {
    throw InvalidInputError(path + ": cannot write tensor '" + t.name + "': " + what);
  };
  uint64_t numel = 1;
  for (size_t i = 0; i < t.shape.size(); ++i) {
    if (t.shape[i] < 0) fail("shape[" + std::to_string(i) + "] is negative");
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(t.shape[i]), &numel) ||
        numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail("shape has too many elements (overflow)");
  }
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(numel, dtype_size(t.dtype), &nbytes)) fail("byte size overflows");
  if (nbytes != t.nbytes)
    fail("nbytes is " + std::to_string(t.nbytes) + " but the shape of " + dtype_name(t.dtype) + " needs " +
         std::to_string(nbytes));
  if (nbytes > 0 && t.data == nullptr) fail("data is null");
  return nbytes;
}

// Position in the reference implementation's dtype order, which is by element size (alignment);
// sorting by it descending, then by name, lays tensors out exactly as the reference writer does.
// The FNUZ float8 types are not in the reference; they go with the other 1-byte types.
constexpr DType kLayoutOrder[] = {
    DType::BOOL,        DType::U8,  DType::I8,  DType::F8_E5M2, DType::F8_E4M3, DType::F8_E8M0, DType::F8_E4M3FNUZ,
    DType::F8_E5M2FNUZ, DType::I16, DType::U16, DType::F16,     DType::BF16,    DType::I32,     DType::U32,
    DType::F32,         DType::C64, DType::F64, DType::I64,     DType::U64};

size_t layout_rank(DType dtype) {
  return std::find(std::begin(kLayoutOrder), std::end(kLayoutOrder), dtype) - std::begin(kLayoutOrder);
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // Everything is validated before the disk is touched.
  for (const auto& [key, value] : metadata)
    if (!is_utf8(key) || !is_utf8(value))
      throw InvalidInputError(path + ": metadata keys and values must be valid UTF-8");
  std::set<std::string_view> seen;
  std::vector<uint64_t> sizes(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    if (!is_utf8(t.name)) throw InvalidInputError(path + ": tensor name #" + std::to_string(i) + " is not valid UTF-8");
    if (t.name == "__metadata__")
      throw InvalidInputError(path + ": '__metadata__' is reserved and cannot name a tensor");
    if (!seen.insert(t.name).second) throw InvalidInputError(path + ": duplicate tensor name '" + t.name + "'");
    sizes[i] = checked_nbytes(t, path);
  }

  // Larger elements first, so that with the buffer starting 8-aligned every tensor is aligned to
  // its element size; then by name (byte order), as the reference orders them.
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const size_t ra = layout_rank(tensors[a].dtype), rb = layout_rank(tensors[b].dtype);
    return ra != rb ? ra > rb : tensors[a].name < tensors[b].name;
  });

  ordered_json header = ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (size_t i : order) {
    const auto& t = tensors[i];
    header[t.name] = {
        {"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + sizes[i]}}};
    offset += sizes[i];
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // 8 + N is a multiple of 8
  if (text.size() > kMaxHeaderSize)
    throw InvalidInputError(path + ": header of " + std::to_string(text.size()) +
                            " bytes exceeds the readers' limit of " + std::to_string(kMaxHeaderSize));
  uint8_t prefix[8];
  for (int b = 0; b < 8; ++b) prefix[b] = static_cast<uint8_t>(uint64_t{text.size()} >> (8 * b));

  AtomicFile out(path);
  out.write(prefix, sizeof prefix);
  out.write(text.data(), text.size());
  for (size_t i : order)
    if (sizes[i] > 0) out.write(tensors[i].data, sizes[i]);
  out.commit();
}

}  // namespace unime::core
