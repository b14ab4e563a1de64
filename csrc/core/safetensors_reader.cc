// Parsing safetensors: dtype table, header validation and the sharded index. Pure functions over
// bytes in memory (the fuzzer links only this file); the I/O is in safetensors_file.cc. See
// safetensors.h for the rules enforced and why they differ from the reference.
#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <tuple>

#include "core/errors.h"
#include "core/safetensors.h"
#include "core/util/strings.h"

namespace unime::core {

namespace {

using nlohmann::json;

struct DTypeEntry {
  DType dtype;
  const char* name;
  size_t size;
};

constexpr DTypeEntry kDTypes[] = {
    {DType::BOOL, "BOOL", 1},
    {DType::U8, "U8", 1},
    {DType::I8, "I8", 1},
    {DType::I16, "I16", 2},
    {DType::U16, "U16", 2},
    {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2},
    {DType::I32, "I32", 4},
    {DType::U32, "U32", 4},
    {DType::F32, "F32", 4},
    {DType::F64, "F64", 8},
    {DType::I64, "I64", 8},
    {DType::U64, "U64", 8},
    {DType::C64, "C64", 8},
    {DType::F8_E4M3, "F8_E4M3", 1},
    {DType::F8_E5M2, "F8_E5M2", 1},
    {DType::F8_E8M0, "F8_E8M0", 1},
    {DType::F8_E4M3FNUZ, "F8_E4M3FNUZ", 1},
    {DType::F8_E5M2FNUZ, "F8_E5M2FNUZ", 1},
};

const DTypeEntry& dtype_entry(DType dtype) {
  for (const auto& e : kDTypes)
    if (e.dtype == dtype) return e;
  throw InvalidInputError("invalid DType value " + std::to_string(static_cast<int>(dtype)));
}

constexpr size_t kMaxJsonDepth = 64;
constexpr size_t kMaxQuoted = 200;  // bytes of a name or parser message kept in error messages

// Keeps error messages bounded (a name may be 100 MB long) without cutting a UTF-8 sequence, so
// the message stays valid UTF-8 for the Python side.
std::string clip(std::string_view text) {
  if (text.size() <= kMaxQuoted) return std::string(text);
  size_t cut = kMaxQuoted;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return std::string(text.substr(0, cut)) + "...";
}

// Offset of the first byte that is not part of well-formed UTF-8 (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), or npos.
size_t find_invalid_utf8(const uint8_t* p, size_t n) {
  size_t i = 0;
  while (i < n) {
    const uint8_t c = p[i];
    size_t len;
    uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return i;
    }
    if (n - i < len) return i;
    if (p[i + 1] < lo || p[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k)
      if ((p[i + k] & 0xC0) != 0x80) return i;
    i += len;
  }
  return std::string::npos;
}

// Builds a DOM through nlohmann's SAX interface so that duplicate keys can be refused: the DOM
// parser silently keeps the last value, which would let two readers disagree about one file.
// Also bounds nesting depth. Pointers on the stack stay valid: a container is only appended to
// while it is the innermost open one, and object members live in std::map nodes.
class StrictDomBuilder {
 public:
  StrictDomBuilder(json& root, const std::string& source) : root_(root), source_(source) {}

  bool null() { return value(json(nullptr)); }
  bool boolean(bool v) { return value(json(v)); }
  bool number_integer(json::number_integer_t v) { return value(json(v)); }
  bool number_unsigned(json::number_unsigned_t v) { return value(json(v)); }
  bool number_float(json::number_float_t v, const std::string&) { return value(json(v)); }
  bool string(std::string& v) { return value(json(std::move(v))); }
  bool binary(json::binary_t&) { return false; }  // JSON text has no binary values
  bool start_object(size_t) { return open(json::object()); }
  bool start_array(size_t) { return open(json::array()); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }

  bool key(std::string& k) {
    json& obj = *stack_.back().value;
    if (obj.contains(k)) {
      const std::string& where = stack_.back().key;
      throw InvalidInputError(source_ + ": duplicate key " + quote(k) +
                              (stack_.size() == 1 ? std::string(" at the top level")
                               : where.empty()    ? std::string(" in a nested object")
                                                  : " in " + quote(where)) +
                              " (refused: readers disagree on which value wins)");
    }
    pending_key_ = k;
    pending_ = &obj[k];
    return true;
  }

  bool parse_error(size_t, const std::string&, const json::exception& e) {
    error_ = e.what();
    return false;
  }

  const std::string& error() const { return error_; }

 private:
  struct Open {
    json* value;
    std::string key;  // the key this container sits under, for messages
  };

  bool value(json&& v) {
    put(std::move(v));
    return true;
  }

  // Stores a value where the parser is (root, array element or the last key's member); returns
  // where it went. Never null.
  json* put(json&& v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    json& top = *stack_.back().value;
    if (top.is_array()) {
      top.push_back(std::move(v));
      return &top.back();
    }
    *pending_ = std::move(v);
    return pending_;
  }

  bool open(json&& container) {
    if (stack_.size() >= kMaxJsonDepth)
      throw InvalidInputError(source_ + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    std::string key = stack_.empty() || stack_.back().value->is_array() ? "" : pending_key_;
    json* v = put(std::move(container));
    stack_.push_back({v, std::move(key)});
    return true;
  }

  bool close() {
    stack_.pop_back();
    return true;
  }

  json& root_;
  const std::string& source_;
  std::vector<Open> stack_;
  json* pending_ = nullptr;  // the member created by the last key()
  std::string pending_key_;
  std::string error_;
};

// Parses UTF-8 JSON text refusing duplicate keys; `what` names the text in messages ("header").
json parse_json_strict(const char* first, const char* last, const std::string& source, const char* what) {
  const size_t n = static_cast<size_t>(last - first);
  const auto* bytes = reinterpret_cast<const uint8_t*>(first);
  // nlohmann would skip a byte order mark; the reference (serde) and Python's json refuse it.
  if (n >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF)
    throw InvalidInputError(source + ": " + what + " starts with a UTF-8 byte order mark");
  if (size_t bad = find_invalid_utf8(bytes, n); bad != std::string::npos)
    throw InvalidInputError(source + ": " + what + " is not valid UTF-8 (at byte " + std::to_string(bad) + " of the " +
                            what + ")");
  // nlohmann's lexer takes a NUL byte for the end of input, so "{}\0junk" would parse; no NUL can
  // occur in valid JSON text (raw control characters are not allowed even inside strings).
  const void* nul = n == 0 ? nullptr : std::memchr(first, 0, n);
  if (nul)
    throw InvalidInputError(source + ": " + what + " is not valid JSON (NUL byte at byte " +
                            std::to_string(static_cast<const char*>(nul) - first) + ")");
  json root;
  StrictDomBuilder builder(root, source);
  bool ok;
  try {
    ok = json::sax_parse(first, last, &builder);
  } catch (const json::exception& e) {  // nlohmann errors never leave this file
    throw InvalidInputError(source + ": " + what + " is not valid JSON (" + clip(e.what()) + ")");
  }
  if (!ok) throw InvalidInputError(source + ": " + what + " is not valid JSON (" + clip(builder.error()) + ")");
  return root;
}

// nlohmann gives integer literals without a sign as number_unsigned, signed ones (including "-0")
// as number_integer, and anything with a fraction or exponent as number_float.
std::string describe(const json& v) {
  if (v.is_number_integer() && !v.is_number_unsigned() && v.get<int64_t>() == 0) return "-0";
  return v.is_number() ? v.dump() : std::string("a JSON ") + v.type_name();
}

// Only unsigned literals: the reference (serde into usize) refuses "-0", 1.0 and 1e3 as well.
std::optional<uint64_t> non_negative_integer(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  return std::nullopt;
}

[[noreturn]] void fail_tensor(const std::string& source, const std::string& name, const std::string& what) {
  throw InvalidInputError(source + ": tensor " + quote(name) + ": " + what);
}

TensorInfo parse_entry(const std::string& name, const json& entry, const std::string& source) {
  if (!entry.is_object()) fail_tensor(source, name, "entry must be an object, got " + describe(entry));
  for (const auto& item : entry.items()) {
    const auto& k = item.key();
    if (k != "dtype" && k != "shape" && k != "data_offsets")
      fail_tensor(source, name, "unknown field " + quote(k) + " (allowed: dtype, shape, data_offsets)");
  }
  for (const char* k : {"dtype", "shape", "data_offsets"})
    if (!entry.contains(k)) fail_tensor(source, name, std::string("missing field '") + k + "'");

  TensorInfo info;
  info.name = name;
  const json& dtype = entry["dtype"];
  if (!dtype.is_string()) fail_tensor(source, name, "dtype must be a string, got " + describe(dtype));
  const auto& dtype_str = dtype.get_ref<const std::string&>();
  auto parsed = parse_dtype(dtype_str);
  if (!parsed) {
    if (dtype_str == "F4" || dtype_str == "F6_E2M3" || dtype_str == "F6_E3M2")
      fail_tensor(source, name, "unsupported dtype " + quote(dtype_str) + " (sub-byte dtypes are not supported)");
    fail_tensor(source, name, "unknown dtype " + quote(dtype_str));
  }
  info.dtype = *parsed;

  const json& shape = entry["shape"];
  if (!shape.is_array()) fail_tensor(source, name, "shape must be an array, got " + describe(shape));
  uint64_t numel = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    auto dim = non_negative_integer(shape[i]);
    if (!dim)
      fail_tensor(source, name,
                  "shape[" + std::to_string(i) + "] must be a non-negative integer, got " + describe(shape[i]));
    if (*dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail_tensor(source, name, "shape[" + std::to_string(i) + "] = " + std::to_string(*dim) + " is too large");
    // Checked in the same order as the reference (a fold that fails on the first overflow).
    if (__builtin_mul_overflow(numel, *dim, &numel) ||
        numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail_tensor(source, name, "shape " + clip(shape.dump()) + " has too many elements (overflow)");
    info.shape.push_back(static_cast<int64_t>(*dim));
  }
  uint64_t nbytes;
  if (__builtin_mul_overflow(numel, dtype_size(info.dtype), &nbytes))
    fail_tensor(source, name, "shape " + clip(shape.dump()) + " of " + dtype_str + " overflows the byte size");

  const json& offsets = entry["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2)
    fail_tensor(source, name,
                "data_offsets must be an array of 2 integers [begin, end], got " +
                    (offsets.is_array() ? clip(offsets.dump()) : describe(offsets)));
  for (size_t i = 0; i < 2; ++i)
    if (!non_negative_integer(offsets[i]))
      fail_tensor(
          source, name,
          "data_offsets[" + std::to_string(i) + "] must be a non-negative integer, got " + describe(offsets[i]));
  info.begin = *non_negative_integer(offsets[0]);
  info.end = *non_negative_integer(offsets[1]);
  if (info.end < info.begin)
    fail_tensor(source, name,
                "data_offsets end " + std::to_string(info.end) + " is before begin " + std::to_string(info.begin));
  if (info.end - info.begin != nbytes)
    fail_tensor(source, name,
                "data_offsets span " + std::to_string(info.end - info.begin) + " bytes but shape " +
                    clip(shape.dump()) + " of " + dtype_str + " needs " + std::to_string(nbytes));
  return info;
}

}  // namespace

size_t dtype_size(DType dtype) { return dtype_entry(dtype).size; }

const char* dtype_name(DType dtype) { return dtype_entry(dtype).name; }

std::optional<DType> parse_dtype(std::string_view name) {
  for (const auto& e : kDTypes)
    if (name == e.name) return e.dtype;
  return std::nullopt;
}

int64_t TensorInfo::numel() const {
  uint64_t n = 1;  // unsigned: no undefined behaviour for a hand-made shape that overflows
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return static_cast<int64_t>(n);  // exact for every header parse_header accepted
}

Header parse_header(const uint8_t* data, size_t size, const std::string& source) {
  if (size < 8)
    throw InvalidInputError(source + ": file is " + std::to_string(size) +
                            " bytes, too small for a safetensors header (at least 8)");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(data[i]) << (8 * i);
  if (n > kMaxHeaderSize) {
    std::string msg = source + ": header size " + std::to_string(n) + " exceeds the limit of " +
                      std::to_string(kMaxHeaderSize) + " bytes";
    static constexpr std::string_view kLfs = "version https://git-lfs";
    if (size >= kLfs.size() && std::string_view(reinterpret_cast<const char*>(data), kLfs.size()) == kLfs)
      msg += "; the file is text starting with '" + std::string(kLfs) +
             "': is this a Git LFS pointer? (run `git lfs pull`)";
    throw InvalidInputError(msg);
  }
  if (n > size - 8)
    throw InvalidInputError(source + ": header size " + std::to_string(n) + " is beyond the file (" +
                            std::to_string(size - 8) + " bytes after the length)");
  const char* text = reinterpret_cast<const char*>(data + 8);
  json root = parse_json_strict(text, text + n, source, "header");
  if (!root.is_object()) throw InvalidInputError(source + ": header must be a JSON object, got " + describe(root));

  Header header;
  header.header_size = n;
  for (const auto& item : root.items()) {  // std::map order: by name
    if (item.key() != "__metadata__") {
      header.tensors.push_back(parse_entry(item.key(), item.value(), source));
      continue;
    }
    if (!item.value().is_object())
      throw InvalidInputError(source + ": __metadata__ must be an object of strings, got " + describe(item.value()));
    for (const auto& m : item.value().items()) {
      if (!m.value().is_string())
        throw InvalidInputError(source + ": __metadata__ " + quote(m.key()) + " must be a string, got " +
                                describe(m.value()));
      header.metadata.emplace(m.key(), m.value().get<std::string>());
    }
  }

  // Stable: zero-size tensors at the same offset stay in name order.
  std::stable_sort(header.tensors.begin(), header.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
  });
  uint64_t expected = 0;  // where the next tensor must begin
  const TensorInfo* previous = nullptr;
  for (const auto& t : header.tensors) {
    if (t.begin < expected)
      fail_tensor(source, t.name,
                  "data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) + "] overlap tensor " +
                      quote(previous->name) + " which ends at " + std::to_string(expected));
    if (t.begin > expected)
      fail_tensor(
          source, t.name,
          "data_offsets begin " + std::to_string(t.begin) + " leaves a gap: " +
              (previous ? "tensor " + quote(previous->name) + " ends at " : std::string("the buffer starts at ")) +
              std::to_string(expected));
    expected = t.end;
    previous = &t;
  }
  const uint64_t buffer = size - 8 - n;
  if (expected > buffer)
    fail_tensor(source, previous->name,
                "data_offsets end " + std::to_string(expected) + " is beyond the data buffer of " +
                    std::to_string(buffer) + " bytes (file truncated?)");
  if (expected < buffer)
    throw InvalidInputError(source + ": " + std::to_string(buffer - expected) +
                            " bytes after the last tensor (the tensors must fill the data buffer "
                            "exactly)");
  return header;
}

std::map<std::string, std::string> parse_weight_map(std::string_view text, const std::string& source) {
  const json root = parse_json_strict(text.data(), text.data() + text.size(), source, "index");
  if (!root.is_object()) throw InvalidInputError(source + ": index must be a JSON object, got " + describe(root));
  auto wm = root.find("weight_map");
  if (wm == root.end()) throw InvalidInputError(source + ": index has no 'weight_map'");
  if (!wm->is_object()) throw InvalidInputError(source + ": 'weight_map' must be an object, got " + describe(*wm));
  std::map<std::string, std::string> out;
  for (const auto& item : wm->items()) {
    if (!item.value().is_string())
      throw InvalidInputError(source + ": weight_map " + quote(item.key()) + " must be a shard file name, got " +
                              describe(item.value()));
    const auto& shard = item.value().get_ref<const std::string&>();
    // The shard is joined to the checkpoint directory: anything but a plain name could escape it.
    if (shard.empty() || shard == "." || shard == ".." ||
        shard.find_first_of(std::string_view("/\\\0", 3)) != std::string::npos)
      throw InvalidInputError(source + ": shard " + quote(shard) + " of tensor " + quote(item.key()) +
                              " is not a plain file name in the checkpoint directory");
    out.emplace(item.key(), shard);
  }
  return out;
}

}  // namespace unime::core
