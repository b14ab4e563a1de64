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
  std::vector<size_t> where;
  for (size_t k = 0; k < item.ids.size(); ++k)
    if (item.ids[k] == image_token_id_) where.push_back(k);
  if (where.size() != 1)
    throw InvalidInputError("prompt '" + item.prompt + "' tokenized to " + std::to_string(where.size()) +
                            " image tokens (id " + std::to_string(image_token_id_) +
                            "); the tokenizer must have the image placeholder as one added token");
  const auto count =
      core::image::llava_next_layout(item.image->height, item.image->width, image_config_).num_image_tokens;
  const auto at = where.front();
  item.ids.insert(item.ids.begin() + static_cast<std::ptrdiff_t>(at), static_cast<size_t>(count - 1), image_token_id_);
  item.image_begin = at;
  item.image_end = at + static_cast<size_t>(count);
}

core::image::LlavaNextConfig llava_next_image_config(const std::string& model_dir) {
  return core::image::LlavaNextConfig::from_path(model_dir);
}

}  // namespace unime::model
