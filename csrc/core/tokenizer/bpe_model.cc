// BPE: loading (vocab, merges) and the per-word merge loop described in bpe_model.h.
#include "core/tokenizer/bpe_model.h"

#include <algorithm>

#include "core/tokenizer/json_fields.h"
#include "core/tokenizer/utf8.h"

namespace unime::core {
namespace {

using json_fields::fail;

// tokenizers spells byte tokens "<0x0A>": upper-case hex digits after a lower-case "0x".
std::string fallback_token(unsigned char b) {
  static const char kHex[] = "0123456789ABCDEF";
  return std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">";
}

// A pending merge: rank first, then the position of the pair's left symbol (leftmost wins ties).
struct Candidate {
  uint32_t rank;
  int32_t pos;
  int32_t id;
  bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

}  // namespace

void MergeTable::reserve(size_t n) {
  size_t cap = 16;
  while (cap < n * 2) cap <<= 1;
  keys_.assign(cap, kEmpty);
  values_.assign(cap, Merge{0, 0});
  mask_ = cap - 1;
  shift_ = 64 - __builtin_ctzll(cap);
  size_ = 0;
}

void MergeTable::insert(int32_t left, int32_t right, Merge merge) {
  if ((size_ + 1) * 2 > keys_.size()) {  // grow: re-insert everything at twice the capacity
    std::vector<uint64_t> keys;
    std::vector<Merge> values;
    keys.swap(keys_);
    values.swap(values_);
    reserve(std::max<size_t>(16, keys.size()));
    for (size_t i = 0; i < keys.size(); ++i) {
      if (keys[i] != kEmpty) insert(int32_t(keys[i] >> 32), int32_t(uint32_t(keys[i])), values[i]);
    }
  }
  uint64_t key = pack(left, right);
  for (size_t i = slot(key);; i = (i + 1) & mask_) {
    if (keys_[i] == key) {
      values_[i] = merge;
      return;
    }
    if (keys_[i] == kEmpty) {
      keys_[i] = key;
      values_[i] = merge;
      ++size_;
      return;
    }
  }
}

BpeModel BpeModel::from_json(const nlohmann::json& config, const std::string& where) {
  BpeModel m;
  std::string type = json_fields::get_type(config, where);
  if (type != "BPE") fail(where + ".type", "unsupported component: model type \"" + type + "\"");
  const auto& dropout = json_fields::require(config, "dropout", where);
  if (!dropout.is_null() && !(dropout.is_number() && dropout.get<double>() == 0.0)) {
    fail(where + ".dropout", "unsupported component: BPE dropout (it makes tokenization random)");
  }

  const auto& vocab = json_fields::require(config, "vocab", where);
  if (!vocab.is_object()) fail(where + ".vocab", "expected an object of token -> id");
  int64_t max_id = -1;
  m.vocab_.reserve(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 || it.value().get<int64_t>() > INT32_MAX) {
      fail(where + ".vocab[\"" + it.key() + "\"]", "expected a non-negative 32-bit integer id");
    }
    int32_t id = int32_t(it.value().get<int64_t>());
    m.vocab_[it.key()] = id;
    max_id = std::max<int64_t>(max_id, id);
  }
  // Ids index a vector: refuse absurdly sparse ids rather than allocate for them.
  if (max_id >= int64_t(vocab.size()) + (int64_t(1) << 20)) {
    fail(where + ".vocab", "id " + std::to_string(max_id) + " is far beyond the vocabulary size");
  }
  m.tokens_.assign(size_t(max_id + 1), std::string());
  m.has_id_.assign(size_t(max_id + 1), false);
  for (const auto& [token, id] : m.vocab_) {
    m.tokens_[size_t(id)] = token;
    m.has_id_[size_t(id)] = true;
    size_t pos = 0;
    if (!token.empty()) {
      uint32_t cp = utf8::decode_utf8(token, pos);
      if (pos == token.size()) m.char_ids_[cp] = id;
    }
  }

  if (config.contains("unk_token") && !config["unk_token"].is_null()) {
    m.unk_token_ = json_fields::get_string(config, "unk_token", where);
    m.has_unk_ = true;
  }
  m.fuse_unk_ = json_fields::get_bool(config, "fuse_unk", where, false);
  m.byte_fallback_ = json_fields::get_bool(config, "byte_fallback", where, false);
  m.ignore_merges_ = json_fields::get_bool(config, "ignore_merges", where, false);
  for (auto [key, field] :
       {std::pair{"continuing_subword_prefix", &m.prefix_}, std::pair{"end_of_word_suffix", &m.suffix_}}) {
    if (config.contains(key) && !config[key].is_null()) *field = json_fields::get_string(config, key, where);
  }
  m.all_byte_level_ids_ = true;
  for (int b = 0; b < 256; ++b) {
    m.fallback_ids_[b] = m.token_to_id(fallback_token(uint8_t(b)));
    m.byte_level_ids_[b] = m.token_to_id(byte_level_char(uint8_t(b)));
    if (m.byte_level_ids_[b] < 0) m.all_byte_level_ids_ = false;
  }

  const auto& merges = json_fields::require(config, "merges", where);
  if (!merges.is_array()) fail(where + ".merges", "expected an array");
  m.merges_.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    std::string at = where + ".merges[" + std::to_string(i) + "]";
    const auto& entry = merges[i];
    std::string left, right;
    // Two spellings: "a b" (older files) and ["a", "b"] (tokenizers >= 0.20).
    if (entry.is_string()) {
      const auto& s = entry.get_ref<const std::string&>();
      size_t space = s.find(' ');
      if (space == std::string::npos) fail(at, "expected two tokens separated by a space");
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else if (entry.is_array() && entry.size() == 2 && entry[0].is_string() && entry[1].is_string()) {
      left = entry[0].get<std::string>();
      right = entry[1].get<std::string>();
    } else {
      fail(at, "expected a string \"a b\" or a pair of strings");
    }
    // With a continuing_subword_prefix the right token carries it and the merged one does not:
    // ("a", "##b") -> "ab".
    std::string merged_token = left + right;
    if (!m.prefix_.empty()) {
      if (right.compare(0, m.prefix_.size(), m.prefix_) != 0) {
        fail(at, "token \"" + right + "\" does not start with continuing_subword_prefix \"" + m.prefix_ + "\"");
      }
      merged_token = left + right.substr(m.prefix_.size());
    }
    int32_t l = m.token_to_id(left), r = m.token_to_id(right), merged = m.token_to_id(merged_token);
    if (l < 0) fail(at, "token \"" + left + "\" is not in the vocabulary");
    if (r < 0) fail(at, "token \"" + right + "\" is not in the vocabulary");
    if (merged < 0) fail(at, "merged token \"" + merged_token + "\" is not in the vocabulary");
    m.merges_.insert(l, r, {uint32_t(i), merged});
  }
  return m;
}

int32_t BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(std::string(token));
  return it == vocab_.end() ? -1 : it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || size_t(id) >= tokens_.size() || !has_id_[size_t(id)]) return nullptr;
  return &tokens_[size_t(id)];
}

void BpeModel::initial_symbols(const Piece& word, std::vector<int32_t>& symbols) const {
  bool plain = prefix_.empty() && suffix_.empty();
  if (word.byte_level && plain && all_byte_level_ids_) {
    for (unsigned char b : word.text) symbols.push_back(byte_level_ids_[b]);
    return;
  }
  std::string mapped;
  const std::string* text = &word.text;
  if (word.byte_level) {
    mapped = byte_level_encode(word.text);
    text = &mapped;
  }
  // A pending unknown run: flushed before the next known character (fused when fuse_unk).
  bool pending_unk = false;
  int32_t unk_id = -1;
  auto unk = [&]() {
    if (unk_id < 0) {
      unk_id = token_to_id(unk_token_);
      if (unk_id < 0) {
        throw InvalidInputError("tokenizer.json: model.unk_token \"" + unk_token_ +
                                "\" is not in the vocabulary, and the input needs it");
      }
    }
    return unk_id;
  };
  std::string piece;
  for (size_t pos = 0; pos < text->size();) {
    size_t start = pos;
    uint32_t cp = utf8::decode_utf8(*text, pos);
    int32_t id = -1;
    if (plain) {
      auto it = char_ids_.find(cp);
      if (it != char_ids_.end()) id = it->second;
      piece.assign(*text, start, pos - start);
    } else {
      piece.clear();
      if (start != 0) piece += prefix_;
      piece.append(*text, start, pos - start);
      if (pos == text->size()) piece += suffix_;
      id = token_to_id(piece);
    }
    if (id >= 0) {
      if (pending_unk) symbols.push_back(unk());
      pending_unk = false;
      symbols.push_back(id);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (unsigned char b : piece) all = all && fallback_ids_[b] >= 0;
      if (all) {
        // As in tokenizers, a pending unknown is not flushed here: it lands after these bytes.
        for (unsigned char b : piece) symbols.push_back(fallback_ids_[b]);
        continue;
      }
    }
    if (!has_unk_) continue;  // no unk_token: the character is dropped
    if (pending_unk && !fuse_unk_) symbols.push_back(unk());
    pending_unk = true;
  }
  if (pending_unk) symbols.push_back(unk());
}

void BpeModel::merge(std::vector<int32_t>& ids, std::vector<int32_t>& out) const {
  const int32_t n = int32_t(ids.size());
  if (n == 1) {
    out.push_back(ids[0]);
    return;
  }
  thread_local std::vector<int32_t> prev, next;
  thread_local std::vector<Candidate> heap;
  prev.resize(size_t(n));
  next.resize(size_t(n));
  heap.clear();
  for (int32_t i = 0; i < n; ++i) {
    prev[size_t(i)] = i - 1;
    next[size_t(i)] = i + 1 < n ? i + 1 : -1;
    if (i + 1 < n) {
      if (const auto* m = merges_.find(ids[size_t(i)], ids[size_t(i) + 1])) heap.push_back({m->rank, i, m->id});
    }
  }
  auto greater = std::greater<Candidate>();
  std::make_heap(heap.begin(), heap.end(), greater);
  // Merged-away symbols get id -1; a stale candidate is recognised by re-checking its pair.
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), greater);
    Candidate top = heap.back();
    heap.pop_back();
    int32_t p = top.pos;
    if (ids[size_t(p)] < 0) continue;
    int32_t q = next[size_t(p)];
    if (q < 0) continue;
    const auto* m = merges_.find(ids[size_t(p)], ids[size_t(q)]);
    if (!m || m->id != top.id) continue;
    ids[size_t(p)] = top.id;
    ids[size_t(q)] = -1;
    next[size_t(p)] = next[size_t(q)];
    if (next[size_t(q)] >= 0) prev[size_t(next[size_t(q)])] = p;
    if (int32_t l = prev[size_t(p)]; l >= 0) {
      if (const auto* lm = merges_.find(ids[size_t(l)], ids[size_t(p)])) {
        heap.push_back({lm->rank, l, lm->id});
        std::push_heap(heap.begin(), heap.end(), greater);
      }
    }
    if (int32_t r = next[size_t(p)]; r >= 0) {
      if (const auto* rm = merges_.find(ids[size_t(p)], ids[size_t(r)])) {
        heap.push_back({rm->rank, p, rm->id});
        std::push_heap(heap.begin(), heap.end(), greater);
      }
    }
  }
  for (int32_t i = 0; i >= 0; i = next[size_t(i)]) out.push_back(ids[size_t(i)]);
}

void BpeModel::tokenize(const Piece& word, std::vector<int32_t>& out) const {
  if (word.text.empty()) return;
  if (ignore_merges_) {
    int32_t id = token_to_id(word.byte_level ? byte_level_encode(word.text) : word.text);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  thread_local std::vector<int32_t> symbols;
  symbols.clear();
  initial_symbols(word, symbols);
  if (!symbols.empty()) merge(symbols, out);
}

}  // namespace unime::core
