#include "model/llava_next_processor.h"

#include <ATen/ATen.h>

#include "core/errors.h"
#include "core/image/llava_next_processor.h"

namespace unime::model {

LlavaNextProcessor::LlavaNextProcessor(std::shared_ptr<const core::Tokenizer> tokenizer,
                                       core::image::LlavaNextConfig image_config, int64_t image_token_id,
                                       int64_t pad_token_id, int64_t max_length)
    : Processor(std::move(tokenizer), core::prompt::template_for("llava_next"), pad_token_id, max_length),
      image_config_(std::move(image_config)),
      image_token_id_(image_token_id) {}

ImageInput LlavaNextProcessor::preprocess_image(const core::image::ImageView& image) const {
  const auto layout = core::image::llava_next_layout(image.height, image.width, image_config_);
  const auto crop = image_config_.crop_size;
  auto pixels = at::empty({layout.num_patches(), 3, crop, crop}, at::kFloat);
  core::image::llava_next_preprocess_into(image, image_config_, layout, pixels.data_ptr<float>());
  return {pixels, image.height, image.width};
}

void LlavaNextProcessor::expand_image(Item& item) const {
  const auto count =
      core::image::llava_next_layout(item.image->height, item.image->width, image_config_).num_image_tokens;
  expand_placeholder(item, image_token_id_, count, "the tokenizer must have the image placeholder as one added token");
}

core::image::LlavaNextConfig llava_next_image_config(const std::string& model_dir) {
  return core::image::LlavaNextConfig::from_path(model_dir);
}

}  // namespace unime::model
