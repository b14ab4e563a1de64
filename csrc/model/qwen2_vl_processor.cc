#include "model/qwen2_vl_processor.h"

#include <ATen/ATen.h>

#include "core/errors.h"

namespace unime::model {

Qwen2VLProcessor::Qwen2VLProcessor(std::shared_ptr<const core::Tokenizer> tokenizer,
                                   core::image::Qwen2VLImageConfig image_config, int64_t image_token_id,
                                   int64_t pad_token_id, int64_t max_length)
    : Processor(std::move(tokenizer), core::prompt::template_for("qwen2_vl"), pad_token_id, max_length),
      image_config_(image_config),
      image_token_id_(image_token_id) {}

ImageInput Qwen2VLProcessor::preprocess_image(const core::image::ImageView& image) const {
  const auto [h, w] = core::image::qwen2_vl_smart_resize(image.height, image.width, image_config_);
  const int64_t p = image_config_.patch_size;
  auto pixels = at::empty({(h / p) * (w / p), image_config_.patch_dim()}, at::kFloat);
  core::image::qwen2_vl_preprocess_into(image, image_config_, h, w, pixels.data_ptr<float>());
  return {pixels, h, w};
}

void Qwen2VLProcessor::expand_image(Item& item) const {
  const int64_t f = image_config_.factor();
  expand_placeholder(item, image_token_id_, (item.image->height / f) * (item.image->width / f),
                     "an input with an image needs exactly one <|image_pad|> token");
}

}  // namespace unime::model
