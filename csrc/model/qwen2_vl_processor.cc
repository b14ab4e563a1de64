#include "model/qwen2_vl_processor.h"

#include <ATen/ATen.h>
#include <tuple>

#include "core/errors.h"

namespace unime::model {

namespace {

core::image::Qwen2VLImageConfig with_limits(core::image::Qwen2VLImageConfig config, const EmbeddingRecipe& recipe) {
  if (recipe.min_pixels > 0) config.min_pixels = recipe.min_pixels;
  if (recipe.max_pixels > 0) config.max_pixels = recipe.max_pixels;
  config.validate("recipe " + recipe.name);
  return config;
}

}  // namespace

Qwen2VLProcessor::Qwen2VLProcessor(std::shared_ptr<const core::Tokenizer> tokenizer,
                                   core::image::Qwen2VLImageConfig image_config, int64_t image_token_id,
                                   int64_t pad_token_id, int64_t max_length, const EmbeddingRecipe& recipe)
    : Processor(std::move(tokenizer),
                core::prompt::template_for(recipe.prompt_template.empty() ? "qwen2_vl" : recipe.prompt_template),
                pad_token_id, recipe.max_length > 0 ? recipe.max_length : max_length),
      image_config_(with_limits(image_config, recipe)),
      image_token_id_(image_token_id),
      gme_pre_resize_(recipe.gme_pre_resize),
      square_resize_(recipe.square_resize) {}

ImageInput Qwen2VLProcessor::preprocess_image(const core::image::ImageView& original) const {
  core::image::ImageView image = original;
  std::vector<uint8_t> pre_resized;
  int64_t pre_h = image.height, pre_w = image.width;
  if (gme_pre_resize_)  // GME resizes with PIL's default BICUBIC before its processor resizes again
    std::tie(pre_h, pre_w) = core::image::gme_pre_resize_size(image.height, image.width);
  if (square_resize_ > 0) pre_h = pre_w = square_resize_;  // UniME-V2: Image.resize((1344, 1344))
  if (pre_h != image.height || pre_w != image.width) {
    pre_resized = core::image::resize_rgb(image, pre_h, pre_w, core::image::Filter::kBicubic);
    image = {pre_resized.data(), pre_h, pre_w};
  }
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
