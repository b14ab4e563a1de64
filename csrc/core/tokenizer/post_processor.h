// Post-processors of tokenizer.json ("post_processor"): what encode(add_special_tokens=true) adds
// around the model's ids.
//
// Supported: TemplateProcessing (its "single" template: special tokens such as BOS/EOS around
// $A), ByteLevel (changes offsets only, so nothing for ids) and Sequence of these. Others
// (BertProcessing, RobertaProcessing, ...) are refused with an InvalidInputError naming the type.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace unime::core {

class PostProcessor {
 public:
  // One element of the single-sequence template: the ids of a special token, or the sequence.
  struct Item {
    bool is_sequence;
    std::vector<int32_t> ids;
  };

  static std::unique_ptr<PostProcessor> from_json(const nlohmann::json& config, const std::string& where);

  // How many ids process() adds (what truncation must leave room for).
  size_t added_count() const;
  // `ids` wrapped in the template; an empty template (ByteLevel only) returns them unchanged.
  std::vector<int32_t> process(std::vector<int32_t> ids) const;

 private:
  void append(const nlohmann::json& config, const std::string& where);
  std::vector<Item> single_;
  bool has_template_ = false;
};

}  // namespace unime::core
