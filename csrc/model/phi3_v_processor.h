// Phi-3.5-V's processor (Phi3VProcessor + Phi3VImageProcessor of the original remote code,
// backbones.md B.4-B.6): the prompt split at its image tag and each piece tokenized on its own (so
// each starts with BOS, as the original does), the image's token run of -1 ids in between, and the HD
// transform: canvas (core/image/phi3_v_layout), normalised, a bicubic 336 x 336 global thumbnail,
// then the 336-px crops row by row.
#pragma once

#include <array>

#include "model/processor.h"

namespace unime::model {

struct Phi3VImageConfig {
  int64_t num_crops = 1;  // Phi3VImageProcessor's default; the released preprocessor_config.json sets its own
  std::array<double, 3> mean{0.48145466, 0.4578275, 0.40821073};  // OpenAI CLIP
  std::array<double, 3> std{0.26862954, 0.26130258, 0.27577711};
  // preprocessor_config.json of `model_dir` when present, else the defaults above.
  static Phi3VImageConfig from_path(const std::string& model_dir);
};

class Phi3VProcessor : public Processor {
 public:
  Phi3VProcessor(std::shared_ptr<const core::Tokenizer> tokenizer, Phi3VImageConfig image_config, int64_t pad_token_id,
                 int64_t max_length);
  bool takes_images() const override { return true; }
  const Phi3VImageConfig& image_config() const { return image_config_; }

 protected:
  std::vector<int64_t> tokenize(const std::string& prompt) const override;
  ImageInput preprocess_image(const core::image::ImageView& image) const override;
  void expand_image(Item& item) const override;

 private:
  Phi3VImageConfig image_config_;
};

}  // namespace unime::model
