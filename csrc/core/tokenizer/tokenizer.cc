// Tokenizer: loading tokenizer.json and the encode/decode pipeline (see tokenizer.h).
#include "core/tokenizer/tokenizer.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "core/errors.h"
#include "core/util/parallel.h"
#include "core/tokenizer/json_fields.h"
#include "core/tokenizer/utf8.h"

namespace unime::core {
namespace {

using json_fields::fail;

// Top-level fields this implementation reads; any other non-null field is an unsupported
// component (we never skip something that could change the ids).
constexpr const char* kKnownFields[] = {"version",       "truncation", "padding",        "added_tokens", "normalizer",
                                        "pre_tokenizer", "model",      "post_processor", "decoder"};

std::optional<Truncation> parse_truncation(const nlohmann::json& config) {
  if (config.is_null()) return std::nullopt;
  Truncation t;
  t.max_length = size_t(json_fields::get_int(config, "max_length", "truncation", 1, INT32_MAX));
  if (config.contains("direction")) {
    std::string d = json_fields::get_string(config, "direction", "truncation");
    if (d != "Left" && d != "Right") fail("truncation.direction", "expected \"Left\" or \"Right\"");
    t.left = d == "Left";
  }
  if (config.contains("stride") && json_fields::get_int(config, "stride", "truncation", 0, INT32_MAX) != 0) {
    fail("truncation.stride", "unsupported component: truncation with a stride (overflowing tokens)");
  }
  return t;
}

}  // namespace

Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw FileNotFoundError("tokenizer file not found: " + path);
  if (std::filesystem::is_directory(path, ec)) {
    throw InvalidInputError(path + ": is a directory, expected a tokenizer.json file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open tokenizer file " + path);
  std::ostringstream buf;
  buf << in.rdbuf();
  try {
    return from_string(buf.str());
  } catch (const InvalidInputError& e) {
    throw InvalidInputError(path + ": " + e.what());
  }
}

Tokenizer Tokenizer::from_string(std::string_view json_text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_text.begin(), json_text.end());
  } catch (const nlohmann::json::exception& e) {
    // The parser quotes the bytes it last read, which may cut a character: keep the message UTF-8.
    throw InvalidInputError(utf8::to_valid_lossy(std::string("tokenizer.json: not valid JSON: ") + e.what()));
  }
  if (!j.is_object()) fail("(root)", "expected a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool known =
        std::any_of(std::begin(kKnownFields), std::end(kKnownFields), [&](const char* k) { return it.key() == k; });
    if (!known && !it.value().is_null()) fail(it.key(), "unsupported component: unknown field");
  }
  if (j.contains("padding") && !j["padding"].is_null()) {
    fail("padding", "unsupported component: padding (ask for it in the caller instead)");
  }
  Tokenizer t;
  t.model_ = std::make_unique<BpeModel>(BpeModel::from_json(json_fields::require(j, "model", "(root)"), "model"));
  auto get = [&](const char* key) -> const nlohmann::json& {
    static const nlohmann::json null;
    auto it = j.find(key);
    return it == j.end() ? null : *it;
  };
  t.normalizer_ = make_normalizer(get("normalizer"), "normalizer");
  t.pre_tokenizer_ = make_pre_tokenizer(get("pre_tokenizer"), "pre_tokenizer");
  t.post_processor_ = PostProcessor::from_json(get("post_processor"), "post_processor");
  t.decoder_ = make_token_decoder(get("decoder"), "decoder");
  t.added_ = AddedVocabulary::from_json(get("added_tokens"), *t.model_, t.normalizer_.get());
  t.truncation_ = parse_truncation(get("truncation"));
  return t;
}

void Tokenizer::set_truncation(std::optional<Truncation> truncation) {
  if (truncation && truncation->max_length == 0) {
    throw InvalidInputError("truncation: max_length must be positive");
  }
  truncation_ = truncation;
}

void Tokenizer::check_length(std::string_view text, const std::string& what) const {
  // Bytes bound characters from above: most inputs pass without counting.
  if (max_input_chars_ == 0 || text.size() <= max_input_chars_) return;
  size_t chars = utf8::count_chars(text);
  if (chars > max_input_chars_) {
    throw InvalidInputError(what + "is " + std::to_string(chars) + " characters long, over the limit of " +
                            std::to_string(max_input_chars_) + " (max_input_chars; raise it or split the text)");
  }
}

void Tokenizer::encode_piece(std::string_view text, bool at_start, std::vector<int32_t>& ids) const {
  thread_local std::vector<Piece> pieces;
  pieces.clear();
  pieces.push_back(Piece{std::string(text), at_start, false});
  if (pre_tokenizer_) pre_tokenizer_->pre_tokenize(pieces);
  for (const auto& p : pieces) model_->tokenize(p, ids);
}

std::vector<int32_t> Tokenizer::encode_checked(std::string_view text, bool add_special_tokens) const {
  size_t bad = utf8::find_invalid(text);
  if (bad != std::string_view::npos) {
    throw InvalidInputError("text is not valid UTF-8 (first bad byte at offset " + std::to_string(bad) + ")");
  }
  std::vector<int32_t> ids;
  std::vector<Span> spans, inner;
  added_.split_raw(text, spans);
  for (const auto& s : spans) {
    if (s.id >= 0) {
      ids.push_back(s.id);
      continue;
    }
    if (s.begin == s.end) continue;
    std::string normalized(text.substr(s.begin, s.end - s.begin));
    if (normalizer_) normalizer_->normalize(normalized);
    inner.clear();
    if (added_.has_normalized()) {
      added_.split_normalized(normalized, inner);
    } else {
      inner.push_back({0, normalized.size(), -1});
    }
    for (const auto& n : inner) {
      if (n.id >= 0) {
        ids.push_back(n.id);
      } else if (n.begin != n.end) {
        encode_piece(std::string_view(normalized).substr(n.begin, n.end - n.begin), s.begin == 0 && n.begin == 0, ids);
      }
    }
  }
  size_t added = add_special_tokens && post_processor_ ? post_processor_->added_count() : 0;
  if (truncation_) {
    if (truncation_->max_length < added) {
      throw InvalidInputError("truncation: max_length " + std::to_string(truncation_->max_length) +
                              " is smaller than the " + std::to_string(added) + " special tokens added");
    }
    size_t keep = truncation_->max_length - added;
    if (ids.size() > keep) {
      if (truncation_->left) {
        ids.erase(ids.begin(), ids.end() - std::ptrdiff_t(keep));
      } else {
        ids.resize(keep);
      }
    }
  }
  if (add_special_tokens && post_processor_) ids = post_processor_->process(std::move(ids));
  return ids;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  check_length(text, "text ");
  return encode_checked(text, add_special_tokens);
}

std::vector<std::vector<int32_t>> Tokenizer::encode_batch(const std::vector<std::string_view>& texts,
                                                          bool add_special_tokens, size_t num_threads) const {
  for (size_t i = 0; i < texts.size(); ++i) check_length(texts[i], "input " + std::to_string(i) + " ");
  std::vector<std::vector<int32_t>> out(texts.size());
  // Chunks of 16 from a shared counter balance uneven text lengths across threads.
  auto errors = parallel_for_each(
      texts.size(), num_threads, [&](size_t i) { out[i] = encode_checked(texts[i], add_special_tokens); }, 16);
  throw_first(errors, "input ");
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (const AddedToken* t = added_.by_id(id)) {
      if (!(skip_special_tokens && t->special)) tokens.push_back(t->content);
    } else if (const std::string* s = model_->id_to_token(id)) {
      tokens.push_back(*s);
    }
  }
  if (!decoder_) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
    return out;
  }
  decoder_->decode_chain(tokens);
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  int32_t id = added_.id_of(token);
  if (id < 0) id = model_->token_to_id(token);
  if (id < 0) return std::nullopt;
  return id;
}

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  if (const AddedToken* t = added_.by_id(id)) return t->content;
  if (const std::string* s = model_->id_to_token(id)) return *s;
  return std::nullopt;
}

size_t Tokenizer::vocab_size(bool with_added_tokens) const {
  size_t n = model_->vocab_size();
  if (!with_added_tokens) return n;
  for (const auto& t : added_.tokens()) n += model_->token_to_id(t.content) < 0;
  return n;
}

}  // namespace unime::core
