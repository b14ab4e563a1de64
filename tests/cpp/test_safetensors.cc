// Tests of the safetensors reader, checkpoint directories and writer. Malformed files are built
// byte by byte (make_image) and checked through parse_header, or written to a per-test temporary
// directory when the file path matters.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/safetensors.h"

namespace unime::core {
namespace {

namespace fs = std::filesystem;

constexpr DType kAllDTypes[] = {DType::BOOL,    DType::U8,      DType::I8,          DType::I16,        DType::U16,
                                DType::F16,     DType::BF16,    DType::I32,         DType::U32,        DType::F32,
                                DType::F64,     DType::I64,     DType::U64,         DType::C64,        DType::F8_E4M3,
                                DType::F8_E5M2, DType::F8_E8M0, DType::F8_E4M3FNUZ, DType::F8_E5M2FNUZ};

// An 8-byte little-endian length, the header text and `buffer` bytes of data.
std::string make_image(const std::string& header, size_t buffer = 0) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(uint64_t{header.size()} >> (8 * i));
  return out + header + std::string(buffer, '\x5a');
}

Header parse(const std::string& image) {
  return parse_header(reinterpret_cast<const uint8_t*>(image.data()), image.size(), "mem.st");
}

// The image must be refused with InvalidInputError whose message starts with the source name and
// contains `needle`.
void expect_invalid(const std::string& image, const std::string& needle) {
  try {
    parse(image);
    ADD_FAILURE() << "accepted, expected an error containing: " << needle;
  } catch (const InvalidInputError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("mem.st: ", 0), 0u) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << "'" << needle << "' not in: " << msg;
  }
}

// A one-tensor header: `entry` is the JSON of the tensor "t".
void expect_entry_invalid(const std::string& entry, size_t buffer, const std::string& needle) {
  expect_invalid(make_image("{\"t\":" + entry + "}", buffer), needle);
}

class TempDir {
 public:
  TempDir() {
    char templ[] = "/tmp/unime_st_XXXXXX";
    if (!mkdtemp(templ)) throw std::runtime_error("mkdtemp failed");
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(path_)) out.push_back(e.path().filename());
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  std::string path_;
};

void write_bytes(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Writes 1-D F32 tensors given as (name, length), every element `fill`.
void write_f32(const std::string& path, const std::vector<std::pair<std::string, int64_t>>& tensors,
               float fill = 1.0f) {
  std::vector<std::vector<float>> storage;
  std::vector<TensorView> views;
  for (const auto& t : tensors) storage.emplace_back(t.second, fill);
  for (size_t i = 0; i < tensors.size(); ++i)
    views.push_back(
        {tensors[i].first, DType::F32, {tensors[i].second}, storage[i].data(), storage[i].size() * sizeof(float)});
  write_safetensors(path, views);
}

template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

class SafetensorsTest : public ::testing::Test {
 protected:
  TempDir dir_;
};

// ---- dtypes and round trips ---------------------------------------------------------------------

TEST(DTypeTest, NamesRoundTripAndSizes) {
  for (DType d : kAllDTypes) EXPECT_EQ(parse_dtype(dtype_name(d)), d) << dtype_name(d);
  EXPECT_EQ(dtype_size(DType::BOOL), 1u);
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
  EXPECT_EQ(dtype_size(DType::U32), 4u);
  EXPECT_EQ(dtype_size(DType::C64), 8u);
  EXPECT_EQ(dtype_size(DType::F8_E8M0), 1u);
  EXPECT_FALSE(parse_dtype("f32"));
  EXPECT_FALSE(parse_dtype("F4"));
}

TEST_F(SafetensorsTest, RoundTripEveryDtype) {
  std::vector<std::vector<uint8_t>> storage;
  std::vector<TensorView> views;
  for (DType d : kAllDTypes) {
    std::vector<uint8_t> bytes(6 * dtype_size(d));
    std::iota(bytes.begin(), bytes.end(), static_cast<uint8_t>(d) * 16);
    storage.push_back(bytes);
    views.push_back({std::string("t.") + dtype_name(d), d, {2, 3}, nullptr, bytes.size()});
  }
  const float scalar = 3.5f;
  views.push_back({"scalar", DType::F32, {}, &scalar, sizeof scalar});
  views.push_back({"empty", DType::F16, {0, 4}, nullptr, 0});
  views.push_back({"empty2", DType::I64, {3, 0}, nullptr, 0});
  for (size_t i = 0; i < storage.size(); ++i) views[i].data = storage[i].data();
  const std::map<std::string, std::string> metadata{{"format", "pt"}, {"note", "h\xc3\xa9llo"}};
  const std::string path = dir_ / "all.safetensors";
  write_safetensors(path, views, metadata);

  auto file = SafetensorsFile::open(path);
  EXPECT_EQ(file.header().metadata, metadata);
  EXPECT_EQ(file.header().data_start() % 8, 0u);
  ASSERT_EQ(file.header().tensors.size(), views.size());
  for (const auto& v : views) {
    const TensorInfo& info = file.at(v.name);
    EXPECT_EQ(info.dtype, v.dtype) << v.name;
    EXPECT_EQ(info.shape, v.shape) << v.name;
    ASSERT_EQ(info.nbytes(), v.nbytes) << v.name;
    if (v.nbytes) {
      EXPECT_EQ(std::memcmp(file.data(info), v.data, v.nbytes), 0) << v.name;
    }
    // Larger elements come first, so each tensor is aligned to its element size in the file.
    EXPECT_EQ((file.header().data_start() + info.begin) % dtype_size(info.dtype), 0u) << v.name;
  }
  EXPECT_EQ(file.at("scalar").numel(), 1);
  EXPECT_EQ(file.at("empty").numel(), 0);
  for (size_t i = 1; i < file.header().tensors.size(); ++i)
    EXPECT_GE(dtype_size(file.header().tensors[i - 1].dtype), dtype_size(file.header().tensors[i].dtype));
}

// The exact bytes the reference writer (safetensors 0.8.0, save() from Python) produces for these
// tensors: same tensor order, header spelling and padding.
TEST_F(SafetensorsTest, WriterMatchesReferenceBytes) {
  const uint8_t b[] = {1, 2, 3}, a[] = {0, 1, 2, 3}, h[] = {4, 5, 6, 7};
  const uint8_t c[] = {10, 11, 12, 13, 14, 15, 16, 17};
  write_safetensors(dir_ / "g.safetensors",
                    {{"b", DType::U8, {3}, b, 3},
                     {"a", DType::F32, {1}, a, 4},
                     {"c", DType::I64, {}, c, 8},
                     {"h", DType::F16, {2}, h, 4}},
                    {{"format", "pt"}});
  const std::string header = R"({"__metadata__":{"format":"pt"},"c":{"dtype":"I64","shape":[],"data_offsets":[0,8]},)"
                             R"("a":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},)"
                             R"("h":{"dtype":"F16","shape":[2],"data_offsets":[12,16]},)"
                             R"("b":{"dtype":"U8","shape":[3],"data_offsets":[16,19]}} )";
  const std::string expected = std::string("\xf8\0\0\0\0\0\0\0", 8) + header + "\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11" +
                               std::string("\0", 1) + "\x01\x02\x03\x04\x05\x06\x07\x01\x02\x03";
  EXPECT_EQ(read_bytes(dir_ / "g.safetensors"), expected);
}

TEST_F(SafetensorsTest, HeaderIsAlignedForAnyNameLength) {
  for (int len = 1; len <= 9; ++len) {
    const std::string path = dir_ / "a.safetensors";
    write_f32(path, {{std::string(len, 'x'), 2}});
    const std::string bytes = read_bytes(path);
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= uint64_t{static_cast<uint8_t>(bytes[i])} << (8 * i);
    EXPECT_EQ((8 + n) % 8, 0u) << len;
    EXPECT_EQ(bytes.size(), 8 + n + 8);
  }
}

TEST_F(SafetensorsTest, EmptyCheckpointRoundTrips) {
  write_safetensors(dir_ / "e.safetensors", {});
  auto file = SafetensorsFile::open(dir_ / "e.safetensors");
  EXPECT_TRUE(file.header().tensors.empty());
  EXPECT_TRUE(file.names().empty());
}

// ---- length prefix and header text --------------------------------------------------------------

TEST(ParseHeaderTest, TooSmall) {
  for (size_t n = 0; n < 8; ++n) expect_invalid(std::string(n, '\0'), "too small");
}

TEST(ParseHeaderTest, TooLarge) {
  std::string image(16, '\0');
  image[4] = 1;  // N = 2^32
  expect_invalid(image, "exceeds the limit");
  EXPECT_EQ(error_of([&] { parse(image); }).find("Git LFS"), std::string::npos);
}

TEST(ParseHeaderTest, GitLfsPointer) {
  expect_invalid("version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 4242\n",
                 "is this a Git LFS pointer?");
}

TEST(ParseHeaderTest, HeaderBeyondFile) {
  std::string image = make_image("{}");
  image[0] = 3;  // N = 3 > the 2 bytes there are
  expect_invalid(image, "beyond the file");
}

TEST(ParseHeaderTest, NotUtf8) {
  expect_invalid(make_image("{\"\xff\":1}"), "not valid UTF-8");
  expect_invalid(make_image("{\"\xc0\xaf\":1}"), "not valid UTF-8");      // overlong '/'
  expect_invalid(make_image("{\"\xed\xa0\x80\":1}"), "not valid UTF-8");  // surrogate
  expect_invalid(make_image("{\"\xe2\x82\"}"), "not valid UTF-8");        // truncated sequence
  expect_invalid(make_image("\xef\xbb\xbf{}"), "byte order mark");
}

TEST(ParseHeaderTest, InvalidJson) {
  expect_invalid(make_image("{\"a\": "), "not valid JSON");
  expect_invalid(make_image("{} {}"), "not valid JSON");
  // nlohmann alone would stop at a NUL byte and accept these.
  expect_invalid(make_image(std::string("{}\0", 3)), "NUL byte at byte 2");
  expect_invalid(make_image(std::string("{}\0junk", 7)), "not valid JSON");
  expect_invalid(make_image("{/*c*/}"), "not valid JSON");
  expect_invalid(make_image(std::string(100, '[') + std::string(100, ']')), "nested deeper");
}

TEST(ParseHeaderTest, NotAnObject) {
  expect_invalid(make_image("[]"), "must be a JSON object");
  expect_invalid(make_image("\"x\""), "must be a JSON object");
  expect_invalid(make_image("7"), "must be a JSON object");
}

TEST(ParseHeaderTest, WhitespaceAroundJsonAccepted) {
  const std::string entry = R"("t":{"dtype":"U8","shape":[2],"data_offsets":[0,2]})";
  EXPECT_EQ(parse(make_image(" \n\t\r{" + entry + "}", 2)).tensors.size(), 1u);
  EXPECT_EQ(parse(make_image("{" + entry + "}   ", 2)).tensors.size(), 1u);
  EXPECT_TRUE(parse(make_image("{}")).tensors.empty());
}

TEST(ParseHeaderTest, DuplicateKeys) {
  const std::string e = R"({"dtype":"U8","shape":[2],"data_offsets":[0,2]})";
  const std::string f = R"({"dtype":"I8","shape":[2],"data_offsets":[0,2]})";
  expect_invalid(make_image("{\"t\":" + e + ",\"t\":" + e + "}", 2), "duplicate key 't'");
  expect_invalid(make_image("{\"t\":" + e + ",\"t\":" + f + "}", 2), "duplicate key 't'");
  expect_invalid(make_image(R"({"t":{"dtype":"U8","dtype":"I8","shape":[2],"data_offsets":[0,2]}})", 2),
                 "duplicate key 'dtype' in 't'");
  expect_invalid(make_image(R"({"__metadata__":{"a":"1","a":"2"}})"), "duplicate key 'a'");
  expect_invalid(make_image(R"({"__metadata__":{},"__metadata__":{}})"), "duplicate key '__metadata__'");
}

TEST(ParseHeaderTest, Metadata) {
  auto h = parse(make_image(R"({"__metadata__":{"format":"pt","x":""}})"));
  EXPECT_EQ(h.metadata, (std::map<std::string, std::string>{{"format", "pt"}, {"x", ""}}));
  expect_invalid(make_image(R"({"__metadata__":{"a":1}})"), "__metadata__ 'a' must be a string");
  expect_invalid(make_image(R"({"__metadata__":{"a":null}})"), "must be a string");
  expect_invalid(make_image(R"({"__metadata__":["a"]})"), "__metadata__ must be an object");
  expect_invalid(make_image(R"({"__metadata__":null})"), "__metadata__ must be an object");
}

// ---- tensor entries -----------------------------------------------------------------------------

TEST(ParseHeaderTest, EntryFields) {
  expect_entry_invalid("[]", 0, "tensor 't': entry must be an object");
  expect_entry_invalid(R"({"dtype":"U8","shape":[2],"data_offsets":[0,2],"extra":1})", 2, "unknown field 'extra'");
  expect_entry_invalid(R"({"dtype":"U8","shape":[2]})", 2, "missing field 'data_offsets'");
  expect_entry_invalid(R"({"shape":[2],"data_offsets":[0,2]})", 2, "missing field 'dtype'");
  expect_entry_invalid(R"({"dtype":4,"shape":[2],"data_offsets":[0,2]})", 2, "dtype must be a string");
}

TEST(ParseHeaderTest, UnknownAndSubByteDtypes) {
  expect_entry_invalid(R"({"dtype":"F128","shape":[2],"data_offsets":[0,2]})", 2, "tensor 't': unknown dtype 'F128'");
  for (const char* d : {"F4", "F6_E2M3", "F6_E3M2"})
    expect_entry_invalid(std::string(R"({"dtype":")") + d + R"(","shape":[2],"data_offsets":[0,1]})", 1,
                         "tensor 't': unsupported dtype '" + std::string(d) + "'");
}

TEST(ParseHeaderTest, BadOffsets) {
  const std::string pre = R"({"dtype":"U8","shape":[2],"data_offsets":)";
  expect_entry_invalid(pre + "[-1,1]}", 2, "data_offsets[0] must be a non-negative integer, got -1");
  expect_entry_invalid(pre + "[-0,2]}", 2, "data_offsets[0] must be a non-negative integer, got -0");
  expect_entry_invalid(pre + "[0,2.0]}", 2, "data_offsets[1] must be a non-negative integer");
  expect_entry_invalid(pre + "[0,2e0]}", 2, "data_offsets[1] must be a non-negative integer");
  expect_entry_invalid(pre + "[\"0\",2]}", 2, "got a JSON string");
  expect_entry_invalid(pre + "[0,18446744073709551616]}", 2, "non-negative integer");
  expect_entry_invalid(pre + "[0]}", 2, "array of 2 integers");
  expect_entry_invalid(pre + "[0,2,4]}", 2, "array of 2 integers");
  expect_entry_invalid(pre + "[]}", 2, "array of 2 integers");
  expect_entry_invalid(pre + "{}}", 2, "array of 2 integers");
  expect_entry_invalid(pre + "[2,0]}", 2, "end 0 is before begin 2");
}

TEST(ParseHeaderTest, BadShapes) {
  expect_entry_invalid(R"({"dtype":"U8","shape":[-2],"data_offsets":[0,2]})", 2,
                       "shape[0] must be a non-negative integer, got -2");
  expect_entry_invalid(R"({"dtype":"U8","shape":[1.5],"data_offsets":[0,2]})", 2,
                       "shape[0] must be a non-negative integer");
  expect_entry_invalid(R"({"dtype":"U8","shape":2,"data_offsets":[0,2]})", 2, "shape must be an array");
}

TEST(ParseHeaderTest, ShapeOverflowIsCaught) {
  expect_entry_invalid(R"({"dtype":"U8","shape":[2,18446744073709551614],"data_offsets":[0,2]})", 2,
                       "shape[1] = 18446744073709551614 is too large");
  expect_entry_invalid(R"({"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]})", 0, "overflow");
  expect_entry_invalid(R"({"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]})", 0, "overflow");
  // 2^61 elements fit; 2^61 * 8 bytes do not.
  expect_entry_invalid(R"({"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]})", 0,
                       "overflows the byte size");
}

TEST(ParseHeaderTest, SizeMismatch) {
  expect_entry_invalid(R"({"dtype":"F32","shape":[2],"data_offsets":[0,4]})", 4,
                       "data_offsets span 4 bytes but shape [2] of F32 needs 8");
}

// ---- tiling of the buffer -----------------------------------------------------------------------

std::string two_tensors(int a_begin, int a_end, int b_begin, int b_end) {
  return R"({"a":{"dtype":"U8","shape":[)" + std::to_string(a_end - a_begin) + R"(],"data_offsets":[)" +
         std::to_string(a_begin) + "," + std::to_string(a_end) + R"(]},"b":{"dtype":"U8","shape":[)" +
         std::to_string(b_end - b_begin) + R"(],"data_offsets":[)" + std::to_string(b_begin) + "," +
         std::to_string(b_end) + "]}}";
}

TEST(ParseHeaderTest, TensorsTileTheBuffer) {
  auto h = parse(make_image(two_tensors(4, 6, 0, 4), 6));
  ASSERT_EQ(h.tensors.size(), 2u);
  EXPECT_EQ(h.tensors[0].name, "b");  // file order of data_offsets, not name order
  EXPECT_EQ(h.header_size, two_tensors(4, 6, 0, 4).size());

  expect_invalid(make_image(two_tensors(0, 4, 5, 6), 6), "tensor 'b': data_offsets begin 5 leaves a gap");
  expect_invalid(make_image(two_tensors(0, 4, 3, 6), 6), "tensor 'b': data_offsets [3, 6] overlap");
  expect_invalid(make_image(two_tensors(0, 4, 0, 4), 4), "overlap tensor 'a'");
  expect_invalid(make_image(two_tensors(1, 4, 4, 6), 6), "leaves a gap: the buffer starts at 0");
  expect_invalid(make_image(two_tensors(0, 4, 4, 6), 5), "tensor 'b': data_offsets end 6 is beyond");
  expect_invalid(make_image(two_tensors(0, 4, 4, 6), 7), "1 bytes after the last tensor");
  expect_invalid(make_image("{}", 1), "1 bytes after the last tensor");
}

TEST(ParseHeaderTest, ZeroSizeAndScalarTensors) {
  const std::string header = R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                             R"("z":{"dtype":"F32","shape":[0,7],"data_offsets":[4,4]},)"
                             R"("s":{"dtype":"F32","shape":[],"data_offsets":[4,8]},)"
                             R"("e":{"dtype":"U8","shape":[0],"data_offsets":[8,8]}})";
  auto h = parse(make_image(header, 8));
  ASSERT_EQ(h.tensors.size(), 4u);
  EXPECT_EQ(h.tensors[1].name, "z");
  EXPECT_EQ(h.tensors[2].name, "s");
  EXPECT_EQ(h.tensors[2].numel(), 1);
  EXPECT_TRUE(h.tensors[2].shape.empty());
  EXPECT_EQ(h.tensors[3].nbytes(), 0u);
  // A zero-size tensor must still sit inside the tiling.
  expect_entry_invalid(R"({"dtype":"U8","shape":[0],"data_offsets":[3,3]})", 0, "leaves a gap");
}

// ---- SafetensorsFile ----------------------------------------------------------------------------

TEST_F(SafetensorsTest, OpenErrors) {
  EXPECT_THROW(SafetensorsFile::open(dir_ / "missing.safetensors"), FileNotFoundError);
  EXPECT_NE(error_of([&] { SafetensorsFile::open(dir_ / "missing.safetensors"); }).find(dir_ / "missing.safetensors"),
            std::string::npos);
  write_bytes(dir_ / "empty.safetensors", "");
  EXPECT_THROW(SafetensorsFile::open(dir_ / "empty.safetensors"), InvalidInputError);
  EXPECT_THROW(SafetensorsFile::open(dir_.path()), InvalidInputError);  // a directory
  ASSERT_EQ(mkfifo((dir_ / "fifo").c_str(), 0600), 0);
  EXPECT_THROW(SafetensorsFile::open(dir_ / "fifo"), InvalidInputError);  // does not block
  write_bytes(dir_ / "bad.safetensors", make_image("{}", 3));
  std::string msg = error_of([&] { SafetensorsFile::open(dir_ / "bad.safetensors"); });
  EXPECT_EQ(msg.rfind(dir_ / "bad.safetensors: ", 0), 0u) << msg;
}

TEST_F(SafetensorsTest, ShortFileOnDisk) {
  write_f32(dir_ / "a.safetensors", {{"w", 4}});
  std::string bytes = read_bytes(dir_ / "a.safetensors");
  write_bytes(dir_ / "a.safetensors", bytes.substr(0, bytes.size() - 1));
  EXPECT_NE(error_of([&] { SafetensorsFile::open(dir_ / "a.safetensors"); }).find("truncated"), std::string::npos);
}

TEST_F(SafetensorsTest, FindAndAt) {
  write_f32(dir_ / "a.safetensors", {{"w", 4}, {"b", 2}});
  auto file = SafetensorsFile::open(dir_ / "a.safetensors");
  EXPECT_EQ(file.find("nope"), nullptr);
  ASSERT_NE(file.find("w"), nullptr);
  EXPECT_THROW(file.at("nope"), MissingKeyError);
  std::string msg = error_of([&] { file.at("nope"); });
  EXPECT_NE(msg.find("'nope'"), std::string::npos) << msg;
  EXPECT_NE(msg.find(dir_ / "a.safetensors"), std::string::npos) << msg;
  // Moving keeps the mapping and the pointers into the header.
  const TensorInfo* w = file.find("w");
  SafetensorsFile moved = std::move(file);
  EXPECT_EQ(moved.find("w"), w);
  float first;
  std::memcpy(&first, moved.data(*w), sizeof first);
  EXPECT_EQ(first, 1.0f);
  TensorInfo foreign = *w;
  foreign.end = 1 << 20;
  EXPECT_THROW(moved.data(foreign), InvalidInputError);
}

// ---- writer -------------------------------------------------------------------------------------

TEST_F(SafetensorsTest, WriterValidatesBeforeWriting) {
  const float v[4] = {};
  const std::string path = dir_ / "w.safetensors";
  EXPECT_THROW((write_safetensors(path, {{"a", DType::F32, {4}, v, 16}, {"a", DType::F32, {4}, v, 16}})),
               InvalidInputError);
  EXPECT_THROW((write_safetensors(path, {{"a", DType::F32, {4}, v, 12}})), InvalidInputError);
  EXPECT_THROW((write_safetensors(path, {{"a", DType::F32, {-4}, v, 16}})), InvalidInputError);
  EXPECT_THROW((write_safetensors(path, {{"__metadata__", DType::F32, {4}, v, 16}})), InvalidInputError);
  EXPECT_THROW((write_safetensors(path, {{"\xff", DType::F32, {4}, v, 16}})), InvalidInputError);
  EXPECT_THROW((write_safetensors(path, {}, {{"k", "\xc3"}})), InvalidInputError);
  EXPECT_TRUE(dir_.entries().empty());
  EXPECT_THROW((write_safetensors(dir_ / "no/such/dir.safetensors", {})), FileNotFoundError);
}

TEST_F(SafetensorsTest, WriterLeavesNoTempFile) {
  write_f32(dir_ / "a.safetensors", {{"w", 4}});
  EXPECT_EQ(dir_.entries(), std::vector<std::string>{"a.safetensors"});
  // A failure after the temporary exists (rename onto a non-empty directory) removes it.
  fs::create_directory(dir_ / "d.safetensors");
  write_bytes(dir_ / "d.safetensors/keep", "x");
  EXPECT_THROW(write_f32(dir_ / "d.safetensors", {{"w", 4}}), std::runtime_error);
  EXPECT_EQ(dir_.entries(), (std::vector<std::string>{"a.safetensors", "d.safetensors"}));
}

TEST_F(SafetensorsTest, OverwritingAMappedFileKeepsTheOldMapping) {
  const std::string path = dir_ / "m.safetensors";
  write_f32(path, {{"w", 1024}}, 1.0f);
  auto old_file = SafetensorsFile::open(path);
  write_f32(path, {{"v", 8}}, 2.0f);  // smaller: truncating in place would fault the old mapping
  const TensorInfo& w = old_file.at("w");
  std::vector<float> values(1024);
  std::memcpy(values.data(), old_file.data(w), w.nbytes());
  EXPECT_EQ(values, std::vector<float>(1024, 1.0f));
  auto new_file = SafetensorsFile::open(path);
  EXPECT_EQ(new_file.names(), std::vector<std::string>{"v"});
  float v0;
  std::memcpy(&v0, new_file.data(new_file.at("v")), sizeof v0);
  EXPECT_EQ(v0, 2.0f);
}

// ---- checkpoints --------------------------------------------------------------------------------

class CheckpointTest : public SafetensorsTest {
 protected:
  void write_index(const std::string& weight_map) {
    write_bytes(dir_ / "model.safetensors.index.json",
                R"({"metadata":{"total_size":0},"weight_map":)" + weight_map + "}");
  }
  void two_shards() {
    write_f32(dir_ / "s1.safetensors", {{"a", 2}, {"b", 3}});
    write_f32(dir_ / "s2.safetensors", {{"c", 4}});
  }
  void expect_invalid_dir(const std::string& needle) {
    std::string msg = error_of([&] { Checkpoint::open(dir_.path()); });
    EXPECT_THROW(Checkpoint::open(dir_.path()), InvalidInputError) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  }
};

TEST_F(CheckpointTest, SingleFileAndDirectories) {
  write_f32(dir_ / "other.safetensors", {{"x", 2}, {"a", 1}});
  auto by_file = Checkpoint::open(dir_ / "other.safetensors");
  EXPECT_EQ(by_file.names(), (std::vector<std::string>{"a", "x"}));
  EXPECT_EQ(Checkpoint::open(dir_.path()).size(), 2u);  // the only *.safetensors file
  write_f32(dir_ / "model.safetensors", {{"m", 2}});
  auto ckpt = Checkpoint::open(dir_.path());  // model.safetensors wins over the others
  EXPECT_EQ(ckpt.names(), std::vector<std::string>{"m"});
  EXPECT_EQ(ckpt.find("m").file->path(), dir_ / "model.safetensors");
  EXPECT_FALSE(ckpt.find("x"));
  EXPECT_THROW(ckpt.at("x"), MissingKeyError);
  fs::remove(dir_ / "model.safetensors");
  write_f32(dir_ / "third.safetensors", {{"t", 2}});
  EXPECT_THROW(Checkpoint::open(dir_.path()), FileNotFoundError);  // two candidates, no index
  EXPECT_THROW(Checkpoint::open(dir_ / "nothing"), FileNotFoundError);
}

TEST_F(CheckpointTest, DirectoryWithoutSafetensors) {
  write_bytes(dir_ / "config.json", "{}");
  std::string msg = error_of([&] { Checkpoint::open(dir_.path()); });
  EXPECT_THROW(Checkpoint::open(dir_.path()), FileNotFoundError);
  EXPECT_NE(msg.find("model.safetensors.index.json"), std::string::npos) << msg;
}

TEST_F(CheckpointTest, GoodIndex) {
  two_shards();
  write_f32(dir_ / "consolidated.safetensors", {{"a", 2}});  // not in the index: ignored
  write_index(R"({"a":"s1.safetensors","b":"s1.safetensors","c":"s2.safetensors"})");
  auto opened = Checkpoint::open(dir_.path());
  Checkpoint ckpt = std::move(opened);  // pointers stay valid across a move
  EXPECT_EQ(ckpt.names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(ckpt.files().size(), 2u);
  auto c = ckpt.at("c");
  EXPECT_EQ(c.file->path(), dir_ / "s2.safetensors");
  EXPECT_EQ(c.info->shape, std::vector<int64_t>{4});
  float v;
  std::memcpy(&v, c.file->data(*c.info), sizeof v);
  EXPECT_EQ(v, 1.0f);
  EXPECT_THROW(ckpt.at("d"), MissingKeyError);
}

TEST_F(CheckpointTest, MissingShard) {
  two_shards();
  write_index(R"({"a":"s1.safetensors","b":"s1.safetensors","c":"s3.safetensors"})");
  EXPECT_THROW(Checkpoint::open(dir_.path()), FileNotFoundError);
  EXPECT_NE(error_of([&] { Checkpoint::open(dir_.path()); }).find("'s3.safetensors'"), std::string::npos);
}

TEST_F(CheckpointTest, ListedButAbsent) {
  two_shards();
  write_index(R"({"a":"s1.safetensors","b":"s1.safetensors","c":"s2.safetensors",)"
              R"("d":"s2.safetensors"})");
  expect_invalid_dir("tensor 'd' in shard 's2.safetensors', which does not contain it");
}

TEST_F(CheckpointTest, ListedInTheWrongShard) {
  two_shards();
  write_index(R"({"a":"s1.safetensors","b":"s2.safetensors","c":"s2.safetensors"})");
  expect_invalid_dir("tensor 'b' in shard 's2.safetensors' but it is in");
}

TEST_F(CheckpointTest, PresentButNotListed) {
  two_shards();
  write_index(R"({"a":"s1.safetensors","c":"s2.safetensors"})");
  expect_invalid_dir("tensor 'b' of " + (dir_ / "s1.safetensors") + " is not listed");
}

TEST_F(CheckpointTest, DuplicateAcrossShards) {
  two_shards();
  write_f32(dir_ / "s3.safetensors", {{"a", 2}});
  write_index(R"({"a":"s1.safetensors","b":"s1.safetensors","c":"s2.safetensors",)"
              R"("x":"s3.safetensors"})");
  expect_invalid_dir("tensor 'a' is in both");
}

TEST_F(CheckpointTest, ShardPathTraversal) {
  two_shards();
  fs::create_directory(dir_ / "sub");
  write_f32(dir_ / "sub/s.safetensors", {{"a", 2}});
  for (const std::string shard :
       {"../s1.safetensors", "/etc/passwd", "sub/s.safetensors", "..", ".", "", "sub\\\\s.safetensors"}) {
    write_index(R"({"a":")" + shard + R"("})");
    expect_invalid_dir("is not a plain file name");
  }
}

TEST_F(CheckpointTest, MalformedIndex) {
  two_shards();
  write_bytes(dir_ / "model.safetensors.index.json", R"({"metadata":{}})");
  expect_invalid_dir("no 'weight_map'");
  write_index("[]");
  expect_invalid_dir("'weight_map' must be an object");
  write_index(R"({"a":1})");
  expect_invalid_dir("weight_map 'a' must be a shard file name");
  write_index(R"({"a":"s1.safetensors","a":"s2.safetensors"})");
  expect_invalid_dir("duplicate key 'a'");
  write_bytes(dir_ / "model.safetensors.index.json", "{");
  expect_invalid_dir("not valid JSON");
}

}  // namespace
}  // namespace unime::core
