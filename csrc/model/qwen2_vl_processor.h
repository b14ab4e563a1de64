// Qwen2-VL's processor (Qwen2VLProcessor + Qwen2VLImageProcessor, transformers 4.48; backbones.md
// C.3, C.6): the prompt tokenized whole (no BOS), the image's <|image_pad|> expanded to
// (h / 28) * (w / 28) copies for its smart_resize size, pixel_values as core/image/qwen2_vl_image.
// A recipe (GME) may change the prompt, pre-resize images and override the pixel and token limits.
#pragma once

#include "core/image/qwen2_vl_image.h"
#include "model/processor.h"
#include "model/recipe.h"

namespace unime::model {

class Qwen2VLProcessor : public Processor {
 public:
  Qwen2VLProcessor(std::shared_ptr<const core::Tokenizer> tokenizer, core::image::Qwen2VLImageConfig image_config,
                   int64_t image_token_id, int64_t pad_token_id, int64_t max_length,
                   const EmbeddingRecipe& recipe = embedding_recipe("default"));
  bool takes_images() const override { return true; }
  const core::image::Qwen2VLImageConfig& image_config() const { return image_config_; }

 protected:
  ImageInput preprocess_image(const core::image::ImageView& image) const override;
  void expand_image(Item& item) const override;

 private:
  core::image::Qwen2VLImageConfig image_config_;
  int64_t image_token_id_;
  bool gme_pre_resize_;
  int64_t square_resize_;
};

}  // namespace unime::model
