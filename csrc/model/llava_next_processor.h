// LLaVA-NeXT's processor (LlavaNextProcessor + LlavaNextImageProcessor of transformers 4.48.3): the
// family's prompts, anyres image preprocessing (core/image), and "<image>" expanded to the image's
// feature count (base 576 + unpadded tiles + one newline per row for ViT-L/14-336).
#pragma once

#include "core/image/llava_next_layout.h"
#include "model/processor.h"

namespace unime::model {

class LlavaNextProcessor : public Processor {
 public:
  LlavaNextProcessor(std::shared_ptr<const core::Tokenizer> tokenizer, core::image::LlavaNextConfig image_config,
                     int64_t image_token_id, int64_t pad_token_id, int64_t max_length);
  bool takes_images() const override { return true; }
  const core::image::LlavaNextConfig& image_config() const { return image_config_; }

 protected:
  ImageInput preprocess_image(const core::image::ImageView& image) const override;
  void expand_image(Item& item) const override;

 private:
  core::image::LlavaNextConfig image_config_;
  int64_t image_token_id_;
};

// The image processor settings of a LLaVA-NeXT checkpoint directory: its preprocessor_config.json
// when present, else what config.json implies.
core::image::LlavaNextConfig llava_next_image_config(const std::string& model_dir);

}  // namespace unime::model
