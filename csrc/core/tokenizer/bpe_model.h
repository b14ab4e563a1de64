// The BPE model of tokenizer.json ("model": {"type": "BPE", ...}): vocabulary, ranked merges,
// unknown-token handling and byte fallback, as Hugging Face tokenizers applies them to one word.
//
// Per word: (1) each character becomes its vocabulary id; a character not in the vocabulary
// becomes its UTF-8 bytes' "<0xXX>" tokens when byte_fallback is set and all exist, otherwise the
// unk token (consecutive unknowns fused into one when fuse_unk is set; dropped when there is no
// unk_token); (2) the adjacent pair with the lowest merge rank is merged, leftmost first on ties,
// until no pair has a merge. With ignore_merges a word that is itself in the vocabulary is one
// token. Words marked byte_level (see Piece) are looked up byte by byte through the GPT-2 table.
// dropout other than null/0 is refused (it makes tokenization random).
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/tokenizer/pre_tokenizer.h"

namespace unime::core {

// Open-addressing map (left id, right id) -> (rank, merged id): the hot lookup of BPE.
class MergeTable {
 public:
  struct Merge {
    uint32_t rank;
    int32_t id;
  };
  void reserve(size_t n);
  void insert(int32_t left, int32_t right, Merge merge);  // overwrites: the last duplicate wins
  const Merge* find(int32_t left, int32_t right) const {
    if (keys_.empty()) return nullptr;
    uint64_t key = pack(left, right);
    for (size_t i = slot(key);; i = (i + 1) & mask_) {
      if (keys_[i] == key) return &values_[i];
      if (keys_[i] == kEmpty) return nullptr;
    }
  }
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  static uint64_t pack(int32_t l, int32_t r) { return (uint64_t(uint32_t(l)) << 32) | uint32_t(r); }
  size_t slot(uint64_t key) const { return size_t((key * 0x9E3779B97F4A7C15ULL) >> shift_); }
  std::vector<uint64_t> keys_;
  std::vector<Merge> values_;
  size_t mask_ = 0, size_ = 0;
  int shift_ = 64;
};

class BpeModel {
 public:
  // Parses `config` (the "model" object); errors name the field under `where`.
  static BpeModel from_json(const nlohmann::json& config, const std::string& where);

  // Appends the ids of one pre-tokenized word to `out`. Thread-safe (const, no shared cache).
  void tokenize(const Piece& word, std::vector<int32_t>& out) const;

  int32_t token_to_id(std::string_view token) const;  // -1 if absent
  const std::string* id_to_token(int32_t id) const;   // nullptr if absent
  size_t vocab_size() const { return vocab_.size(); }
  const std::unordered_map<std::string, int32_t>& vocab() const { return vocab_; }

 private:
  void initial_symbols(const Piece& word, std::vector<int32_t>& symbols) const;
  void merge(std::vector<int32_t>& symbols, std::vector<int32_t>& out) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> tokens_;  // id -> token; empty where no token has that id
  std::vector<bool> has_id_;
  MergeTable merges_;
  std::unordered_map<uint32_t, int32_t> char_ids_;  // single-character tokens by code point
  std::array<int32_t, 256> byte_level_ids_;         // id of each GPT-2 table character, or -1
  std::array<int32_t, 256> fallback_ids_;           // id of "<0xXX>", or -1
  bool all_byte_level_ids_ = false;
  std::string unk_token_;
  bool has_unk_ = false, fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
  std::string prefix_, suffix_;  // continuing_subword_prefix, end_of_word_suffix
};

}  // namespace unime::core
