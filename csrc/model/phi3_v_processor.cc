#include "model/phi3_v_processor.h"

#include <ATen/ATen.h>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/image/phi3_v_layout.h"
#include "core/json_file.h"
#include "model/phi3_v.h"

namespace unime::model {

Phi3VImageConfig Phi3VImageConfig::from_path(const std::string& model_dir) {
  Phi3VImageConfig c;
  const auto path = (std::filesystem::path(model_dir) / "preprocessor_config.json").string();
  if (!std::filesystem::exists(path)) return c;
  const auto json = core::read_json_file(path);
  c.num_crops = core::get_or<int64_t>(json, "num_crops", c.num_crops, path);
  for (const char* key : {"image_mean", "image_std"}) {
    if (!json.contains(key)) continue;
    const auto& v = json[key];
    if (!v.is_array() || v.size() != 3) throw InvalidInputError(path + ": " + key + " must be a list of 3 numbers");
    auto& dst = std::string(key) == "image_mean" ? c.mean : c.std;
    for (size_t i = 0; i < 3; ++i) dst[i] = v[i].get<double>();
  }
  if (c.num_crops <= 0) throw InvalidInputError(path + ": num_crops must be positive");
  return c;
}

Phi3VProcessor::Phi3VProcessor(std::shared_ptr<const core::Tokenizer> tokenizer, Phi3VImageConfig image_config,
                               int64_t pad_token_id, int64_t max_length)
    : Processor(std::move(tokenizer), core::prompt::template_for("phi3_v"), pad_token_id, max_length),
      image_config_(image_config) {}

std::vector<int64_t> Phi3VProcessor::tokenize(const std::string& prompt) const {
  // The original splits at every <|image_k|> and tokenizes the pieces separately, BOS included; the
  // image's run goes between them (one image per input here: its tag is <|image_1|>).
  static const std::string tag = "<|image_1|>";
  const auto at = prompt.find(tag);
  if (at == std::string::npos) return Processor::tokenize(prompt);
  auto ids = Processor::tokenize(prompt.substr(0, at));
  ids.push_back(kPhi3VImageTokenId);
  const auto tail = Processor::tokenize(prompt.substr(at + tag.size()));
  ids.insert(ids.end(), tail.begin(), tail.end());
  return ids;
}

ImageInput Phi3VProcessor::preprocess_image(const core::image::ImageView& image) const {
  using core::image::kPhi3VCrop;
  const auto layout = core::image::phi3v_layout(image.height, image.width, image_config_.num_crops);
  auto canvas = core::image::phi3v_hd_canvas(image, layout);
  // torchvision's ToTensor and Normalize, op for op: uint8 HWC -> CHW float / 255, then - mean, / std.
  auto hd = at::from_blob(canvas.data(), {layout.height, layout.width, 3}, at::kByte)
                .permute({2, 0, 1})
                .contiguous()
                .to(at::kFloat)
                .div(255);
  auto mean = at::tensor(at::ArrayRef<double>(image_config_.mean.data(), 3), at::kDouble).to(at::kFloat);
  auto std = at::tensor(at::ArrayRef<double>(image_config_.std.data(), 3), at::kDouble).to(at::kFloat);
  hd.sub_(mean.view({-1, 1, 1})).div_(std.view({-1, 1, 1}));
  // The global thumbnail: bicubic (a = -0.75, no antialias) on the normalised canvas, white padding included.
  auto global = at::upsample_bicubic2d(hd.unsqueeze(0), {kPhi3VCrop, kPhi3VCrop}, false, std::nullopt, std::nullopt);
  auto crops = hd.reshape({1, 3, layout.crop_rows(), kPhi3VCrop, layout.crop_cols(), kPhi3VCrop})
                   .permute({0, 2, 4, 1, 3, 5})
                   .reshape({-1, 3, kPhi3VCrop, kPhi3VCrop});
  return {at::cat({global, crops}, 0).contiguous(), layout.height, layout.width};
}

void Phi3VProcessor::expand_image(Item& item) const {
  core::image::Phi3VLayout layout;  // the token count depends on the HD canvas only
  layout.height = item.image->height;
  layout.width = item.image->width;
  expand_placeholder(item, kPhi3VImageTokenId, layout.num_image_tokens(),
                     "an input with an image needs exactly one <|image_1|> tag");
}

}  // namespace unime::model
