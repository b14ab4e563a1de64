// Processors: texts, images and instructions -> the model's batch (EncodeBatch), one per model
// family, chosen by config.json's model_type beside the backbone registry (registry.cc). The one
// path that builds batches, shared by unime.encode(), the trainer and C++ users:
//   prompt (the family's template, or a caller's) -> tokens (tokenizer.json, BOS from its
//   post-processor) -> image preprocessing -> placeholder expansion -> length limit (refuse or
//   truncate) -> padding -> EncodeBatch.
// Inputs are prepared in parallel (core/util/parallel.h) and each failure names its input; with
// skip_errors the failing inputs are left out and reported while the rest go on.
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/image/resample.h"
#include "core/prompt/prompt_templates.h"
#include "core/tokenizer/tokenizer.h"
#include "core/util/parallel.h"
#include "model/backbone.h"
#include "model/recipe.h"

namespace unime::model {

// One input: a text, an image, or both, with an optional instruction; or a complete prompt.
struct EncodeInput {
  std::optional<std::string> text;              // UTF-8
  std::optional<core::image::ImageView> image;  // RGB uint8 (H, W, 3), borrowed for the process() call
  std::optional<std::string> instruction;
  // A prompt used as it is (MMEB rows: "<|image_1|>\nRepresent the given image ...\n"), the
  // family-neutral tag kImageTag marking the image, replaced by the family's placeholder as VLM2Vec
  // does. Excludes text and instruction.
  std::optional<std::string> prompt;
};

// The image tag of MMEB's rows (Phi-3.5-V's), which raw prompts use whatever the family.
inline constexpr const char* kImageTag = "<|image_1|>";

enum class Overflow { kRefuse, kTruncate };
enum class PaddingSide { kLeft, kRight };

struct ProcessOptions {
  core::prompt::PromptKind prompt_kind = core::prompt::PromptKind::kEmbed;
  // A caller's prompt instead of the family's ("{text}" / "{image}" slots), per modality.
  std::optional<std::string> text_template, image_template;
  int64_t max_length = 0;  // tokens per input, images included; 0: the model's maximum
  // Over max_length: refuse (an InvalidInputError naming the input) or cut the end of the token
  // sequence as transformers' truncation=True does (never through an image's tokens: that input
  // is refused).
  Overflow overflow = Overflow::kRefuse;
  PaddingSide padding_side = PaddingSide::kLeft;  // UniME evaluates left-padded
  size_t num_threads = 0;                         // 0: one per core
  bool skip_errors = false;
};

struct ProcessedBatch {
  EncodeBatch batch;
  std::vector<int64_t> rows;            // the input index of each batch row
  std::vector<core::ItemError> errors;  // inputs left out (skip_errors), sorted by index
  std::vector<std::string> prompts;     // the prompt of each row
  std::vector<int64_t> row_image;       // per row: its image's index in batch.images, or -1
  PaddingSide padding_side = PaddingSide::kLeft;
  // Real tokens of each row (its image's tokens included): the row's cost for token-budget batching.
  std::vector<int64_t> lengths() const;
};

// Rows `picked` (positions in b.rows, any order) as a batch of their own, padded to the longest of
// them on b's side: token-budget batching builds a window once, then runs it in sub-batches.
// position_ids, when set, are taken along. errors stay with b.
ProcessedBatch select_rows(const ProcessedBatch& b, const std::vector<int64_t>& picked);

class Processor {
 public:
  virtual ~Processor() = default;

  // Builds the batch of `inputs`. Without skip_errors the first failing input (lowest index)
  // throws its error with "input I: " in front; an empty batch (nothing left) has B = 0.
  ProcessedBatch process(const std::vector<EncodeInput>& inputs, const ProcessOptions& options) const;

  // The prompt one input gets (before tokenization).
  std::string prompt(const EncodeInput& input, const ProcessOptions& options) const;
  const core::Tokenizer& tokenizer() const { return *tokenizer_; }
  std::shared_ptr<const core::Tokenizer> shared_tokenizer() const { return tokenizer_; }
  const core::prompt::PromptTemplate& prompt_template() const { return *template_; }
  int64_t pad_token_id() const { return pad_token_id_; }
  int64_t max_length() const { return max_length_; }  // 0: unlimited
  virtual bool takes_images() const { return false; }

 protected:
  Processor(std::shared_ptr<const core::Tokenizer> tokenizer, const core::prompt::PromptTemplate& prompt_template,
            int64_t pad_token_id, int64_t max_length);

  // One input's tokens with its image placeholder expanded, and its preprocessed image.
  struct Item {
    std::vector<int64_t> ids;
    std::optional<ImageInput> image;
    size_t image_begin = 0, image_end = 0;  // the image's token run in ids
    std::string prompt;
  };
  Item prepare(const EncodeInput& input, const ProcessOptions& options) const;
  // A prompt's token ids, BOS from the tokenizer's post-processor; families that tokenize around
  // their image tag (Phi-3.5-V) override it.
  virtual std::vector<int64_t> tokenize(const std::string& prompt) const;
  std::string raw_prompt(const EncodeInput& input) const;
  // Multimodal families: pixels of one image, and its tokens spliced into `ids` in place of its
  // placeholder (sets image_begin/end).
  virtual ImageInput preprocess_image(const core::image::ImageView& image) const;
  virtual void expand_image(Item& item) const;
  // For expand_image: the one `token_id` of item.ids becomes a run of `count`; `hint` ends the error
  // when the prompt holds none or several.
  static void expand_placeholder(Item& item, int64_t token_id, int64_t count, const std::string& hint);

 private:
  std::shared_ptr<const core::Tokenizer> tokenizer_;
  const core::prompt::PromptTemplate* template_;
  int64_t pad_token_id_, max_length_;
};

// The processor of a checkpoint: `model_dir` holds tokenizer.json (and the image processor's
// preprocessor_config.json for multimodal families); `config` is its config.json. nullptr when the
// directory has no tokenizer.json (the model then takes token ids only). `recipe` (resolve_recipe)
// may change the family's prompt, image preprocessing and limits.
std::shared_ptr<Processor> create_processor(const std::string& model_dir, const nlohmann::json& config,
                                            const Backbone& backbone,
                                            const EmbeddingRecipe& recipe = embedding_recipe("default"));

// The pad id of a checkpoint, as the Hugging Face processors pad: config.json's pad_token_id (top
// level, then text_config), else the tokenizer's "<pad>", else 0. Padding positions are masked, so
// only the ids differ.
int64_t resolve_pad_token_id(const nlohmann::json& config, const core::Tokenizer& tokenizer);

// A text-only decoder's processor (llama, mistral, qwen2, phi3).
class TextProcessor : public Processor {
 public:
  TextProcessor(std::shared_ptr<const core::Tokenizer> tokenizer, const std::string& model_type, int64_t pad_token_id,
                int64_t max_length);
};

}  // namespace unime::model
