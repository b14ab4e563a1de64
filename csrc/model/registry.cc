// The model families: config.json's model_type -> (backbone factory, processor factory).
#include <ATen/ATen.h>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/util/strings.h"
#include "model/backbone.h"
#include "model/decoder.h"
#include "model/decoder_backbone.h"
#include "model/llava_next.h"
#include "model/llava_next_processor.h"
#include "model/phi3_v.h"
#include "model/phi3_v_processor.h"
#include "model/processor.h"
#include "model/qwen2_vl.h"
#include "model/qwen2_vl_processor.h"

namespace unime::model {
namespace {

using ProcessorFactory = std::function<std::shared_ptr<Processor>(
    const std::string& model_dir, const nlohmann::json& config, const Backbone& backbone,
    std::shared_ptr<const core::Tokenizer> tokenizer, const EmbeddingRecipe& recipe)>;

struct Family {
  BackboneFactory backbone;
  ProcessorFactory processor;
};

std::shared_ptr<Processor> make_text_processor(const std::string&, const nlohmann::json& config,
                                               const Backbone& backbone, std::shared_ptr<const core::Tokenizer> tok,
                                               const EmbeddingRecipe&) {
  const auto pad = resolve_pad_token_id(config, *tok);
  return std::make_shared<TextProcessor>(std::move(tok), config.at("model_type").get<std::string>(), pad,
                                         backbone.max_length());
}

std::shared_ptr<Processor> make_llava_next_processor(const std::string& model_dir, const nlohmann::json& config,
                                                     const Backbone& backbone,
                                                     std::shared_ptr<const core::Tokenizer> tok,
                                                     const EmbeddingRecipe&) {
  const auto& llava = dynamic_cast<const LlavaNextBackbone&>(backbone);
  const auto pad = resolve_pad_token_id(config, *tok);
  return std::make_shared<LlavaNextProcessor>(std::move(tok), llava_next_image_config(model_dir),
                                              llava.config().image_token_index, pad, backbone.max_length());
}

std::shared_ptr<Processor> make_phi3_v_processor(const std::string& model_dir, const nlohmann::json& config,
                                                 const Backbone& backbone, std::shared_ptr<const core::Tokenizer> tok,
                                                 const EmbeddingRecipe&) {
  const auto pad = resolve_pad_token_id(config, *tok);
  return std::make_shared<Phi3VProcessor>(std::move(tok), Phi3VImageConfig::from_path(model_dir), pad,
                                          backbone.max_length());
}

std::shared_ptr<Processor> make_qwen2_vl_processor(const std::string& model_dir, const nlohmann::json& config,
                                                   const Backbone& backbone, std::shared_ptr<const core::Tokenizer> tok,
                                                   const EmbeddingRecipe& recipe) {
  const auto& qwen = dynamic_cast<const Qwen2VLBackbone&>(backbone);
  const auto pad = resolve_pad_token_id(config, *tok);
  return std::make_shared<Qwen2VLProcessor>(std::move(tok), core::image::Qwen2VLImageConfig::from_dir(model_dir),
                                            qwen.config().image_token_id, pad, backbone.max_length(), recipe);
}

const std::map<std::string, Family>& families() {
  static const std::map<std::string, Family> table = {
      {"llama", {make_decoder_backbone, make_text_processor}},
      {"mistral", {make_decoder_backbone, make_text_processor}},
      {"qwen2", {make_decoder_backbone, make_text_processor}},
      {"phi3", {make_decoder_backbone, make_text_processor}},
      {"llava_next", {make_llava_next_backbone, make_llava_next_processor}},
      {"phi3_v", {make_phi3_v_backbone, make_phi3_v_processor}},
      {"qwen2_vl", {make_qwen2_vl_backbone, make_qwen2_vl_processor}},
  };
  return table;
}

const Family& family_of(const nlohmann::json& config, const std::string& source) {
  auto it = config.find("model_type");
  if (it == config.end() || !it->is_string()) throw InvalidInputError(source + ": no string field 'model_type'");
  auto type = it->get<std::string>();
  auto found = families().find(type);
  if (found == families().end())
    throw InvalidInputError(source + ": model_type " + core::quote(type) +
                            " is not supported (supported: " + core::join(supported_model_types(), ", ") + ")");
  return found->second;
}

}  // namespace

int64_t Backbone::image_token_count(int64_t, int64_t) const {
  throw InvalidInputError("this model takes no images (text-only backbone)");
}

at::Tensor packed_positions(const EncodeBatch& batch, const PackedSequences& packed) {
  if (!batch.position_ids.defined()) return {};
  const auto& p = batch.position_ids;
  TORCH_CHECK_VALUE(p.dim() >= 2 && p.size(-1) == batch.input_ids.size(1) && p.size(-2) == batch.input_ids.size(0),
                    "position_ids must end in input_ids' shape ", batch.input_ids.sizes(), ", got ", p.sizes());
  auto flat = p.to(packed.token_index.device()).flatten(-2);  // (..., B*L)
  return flat.index_select(-1, packed.token_index);
}

at::Tensor decoder_last_hidden_state(const Decoder& decoder, const EncodeBatch& batch, const EmbedWithImages& embed) {
  return decoder.forward_embeds(embed(batch.input_ids), batch.attention_mask, batch.position_ids);
}

at::Tensor decoder_last_token_hidden(const Decoder& decoder, const EncodeBatch& batch, const EmbedWithImages& embed) {
  TORCH_CHECK_VALUE(batch.attention_mask.sizes() == batch.input_ids.sizes(),
                    "attention_mask must have input_ids' shape ", batch.input_ids.sizes(), ", got ",
                    batch.attention_mask.sizes());
  auto packed = pack_sequences(batch.attention_mask, batch.input_ids.device());
  auto tokens = batch.input_ids.reshape(-1).index_select(0, packed.token_index);
  return decoder.last_token_hidden_packed(embed(tokens), packed, packed_positions(batch, packed));
}

at::Tensor scatter_image_features(const at::Tensor& embeds, const at::Tensor& ids, int64_t placeholder,
                                  const std::vector<ImageInput>& images,
                                  const std::function<at::Tensor(const std::vector<ImageInput>&)>& features) {
  auto is_image = ids.eq(placeholder);
  const int64_t count = is_image.sum().item<int64_t>();
  const auto id = "(" + std::to_string(placeholder) + ")";
  if (images.empty()) {
    if (count != 0)
      throw InvalidInputError("input_ids hold " + std::to_string(count) + " image placeholder(s) " + id +
                              " but no image was given");
    return embeds;
  }
  auto f = features(images).to(embeds.scalar_type());
  if (count != f.size(0))
    throw InvalidInputError("input_ids hold " + std::to_string(count) + " image tokens but the " +
                            std::to_string(images.size()) + " image(s) give " + std::to_string(f.size(0)) +
                            " features: expand each image placeholder " + id +
                            " to image_token_count(height, width) tokens");
  return embeds.masked_scatter(is_image.unsqueeze(-1), f);
}

std::vector<std::string> supported_model_types() {
  std::vector<std::string> out;
  for (const auto& [name, _] : families()) out.push_back(name);
  return out;
}

std::shared_ptr<Backbone> create_backbone(const nlohmann::json& config, const std::string& source) {
  return family_of(config, source).backbone(config, source);
}

std::shared_ptr<Processor> create_processor(const std::string& model_dir, const nlohmann::json& config,
                                            const Backbone& backbone, const EmbeddingRecipe& recipe) {
  const auto tokenizer_path = std::filesystem::path(model_dir) / "tokenizer.json";
  if (!std::filesystem::exists(tokenizer_path)) return nullptr;
  auto tokenizer = std::make_shared<const core::Tokenizer>(core::Tokenizer::from_file(tokenizer_path.string()));
  return family_of(config, model_dir).processor(model_dir, config, backbone, std::move(tokenizer), recipe);
}

}  // namespace unime::model
