#include "model/processor.h"

#include <ATen/ATen.h>
#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/json_file.h"
#include "core/util/strings.h"

namespace unime::model {

Processor::Processor(std::shared_ptr<const core::Tokenizer> tokenizer,
                     const core::prompt::PromptTemplate& prompt_template, int64_t pad_token_id, int64_t max_length)
    : tokenizer_(std::move(tokenizer)),
      template_(&prompt_template),
      pad_token_id_(pad_token_id),
      max_length_(max_length) {}

std::string Processor::prompt(const EncodeInput& input, const ProcessOptions& options) const {
  const bool has_image = input.image.has_value();
  if (input.prompt) return raw_prompt(input);
  const auto& custom = has_image ? options.image_template : options.text_template;
  if (!custom)
    return core::prompt::build_prompt(*template_, input.text, has_image, input.instruction, options.prompt_kind);
  if (input.instruction)
    throw InvalidInputError("an instruction cannot go with a custom prompt template: write it into the template");
  return core::prompt::fill_template(*template_, *custom, input.text, has_image);
}

std::string Processor::raw_prompt(const EncodeInput& input) const {
  if (input.text || input.instruction)
    throw InvalidInputError("a raw prompt excludes text and instruction (write them into the prompt)");
  const auto& p = *input.prompt;
  const auto at = p.find(kImageTag);
  const bool tagged = at != std::string::npos;
  if (tagged != input.image.has_value())
    throw InvalidInputError(input.image
                                ? std::string("the prompt has no ") + kImageTag + " tag for the image"
                                : std::string("the prompt has an ") + kImageTag + " tag but the input has no image");
  if (tagged && p.find(kImageTag, at + 1) != std::string::npos)
    throw InvalidInputError(std::string("the prompt has more than one ") + kImageTag + " tag (one image per input)");
  if (tagged && template_->image_placeholder.empty())
    throw InvalidInputError("model_type '" + template_->family + "' is text-only but the input has an image");
  std::string body = tagged ? p.substr(0, at) + p.substr(at + std::char_traits<char>::length(kImageTag)) : p;
  for (const auto& r : template_->reserved)
    if (body.find(r) != std::string::npos)
      throw InvalidInputError("prompt contains the image placeholder " + core::quote(r) + " outside its one image tag");
  if (!template_->chat.empty()) {
    // A chat-form recipe (GME): the row becomes the user turn under the default system turn, its tag
    // replaced by the vision block in front, as VLM2Vec's GME evaluation passes "instruction text".
    const auto user = core::trim(body);
    return core::prompt::build_prompt(*template_, user.empty() ? std::nullopt : std::optional<std::string>(user),
                                      tagged, std::nullopt);
  }
  if (!tagged) return p;
  return p.substr(0, at) + core::replace_all(template_->instruction_image, "{n}", "1") +
         p.substr(at + std::char_traits<char>::length(kImageTag));
}

ImageInput Processor::preprocess_image(const core::image::ImageView&) const {
  throw InvalidInputError("model_type '" + template_->family + "' takes no images");
}

void Processor::expand_image(Item&) const {
  throw InvalidInputError("model_type '" + template_->family + "' takes no images");
}

std::vector<int64_t> Processor::tokenize(const std::string& prompt) const {
  const auto ids = tokenizer_->encode(prompt, /*add_special_tokens=*/true);
  return {ids.begin(), ids.end()};
}

void Processor::expand_placeholder(Item& item, int64_t token_id, int64_t count, const std::string& hint) {
  std::vector<size_t> where;
  for (size_t k = 0; k < item.ids.size(); ++k)
    if (item.ids[k] == token_id) where.push_back(k);
  if (where.size() != 1)
    throw InvalidInputError("prompt '" + item.prompt + "' holds " + std::to_string(where.size()) +
                            " image placeholders (id " + std::to_string(token_id) + "), not one: " + hint);
  const auto at = where.front();
  item.ids.insert(item.ids.begin() + static_cast<std::ptrdiff_t>(at), static_cast<size_t>(count - 1), token_id);
  item.image_begin = at;
  item.image_end = at + static_cast<size_t>(count);
}

Processor::Item Processor::prepare(const EncodeInput& input, const ProcessOptions& options) const {
  Item item;
  item.prompt = prompt(input, options);
  item.ids = tokenize(item.prompt);
  if (item.ids.empty())  // an empty text where the prompt adds nothing (UniME-V2's, text-only decoders)
    throw InvalidInputError("the input gives no tokens (an empty text, and its prompt adds none)");
  if (input.image) {
    item.image = preprocess_image(*input.image);
    expand_image(item);
  }
  const int64_t limit = options.max_length > 0 ? options.max_length : max_length_;
  const auto length = static_cast<int64_t>(item.ids.size());
  if (limit > 0 && length > limit) {
    const auto image_tokens = static_cast<int64_t>(item.image_end - item.image_begin);
    const std::string what = std::to_string(length) + " tokens (" + std::to_string(length - image_tokens) + " text + " +
                             std::to_string(image_tokens) + " image) are more than max_length " + std::to_string(limit);
    if (options.overflow == Overflow::kRefuse)
      throw InvalidInputError(what + (options.max_length > 0 ? "" : " (the model's or its recipe's maximum)") +
                              "; shorten the input or let it be truncated");
    if (item.image && static_cast<int64_t>(item.image_end) > limit)
      throw InvalidInputError(what + " and truncation would cut the image's tokens");
    item.ids.resize(static_cast<size_t>(limit));
  }
  return item;
}

ProcessedBatch Processor::process(const std::vector<EncodeInput>& inputs, const ProcessOptions& options) const {
  std::vector<Item> items(inputs.size());
  ProcessedBatch out;
  out.errors = core::parallel_for_each(inputs.size(), options.num_threads,
                                       [&](size_t i) { items[i] = prepare(inputs[i], options); });
  if (!options.skip_errors) core::throw_first(out.errors, "input ");
  std::vector<bool> failed(inputs.size(), false);
  for (const auto& e : out.errors) failed[e.index] = true;
  int64_t length = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (failed[i]) continue;
    out.rows.push_back(static_cast<int64_t>(i));
    length = std::max<int64_t>(length, static_cast<int64_t>(items[i].ids.size()));
  }
  const auto B = static_cast<int64_t>(out.rows.size());
  auto ids = at::full({B, length}, pad_token_id_, at::kLong);
  auto mask = at::zeros({B, length}, at::kLong);
  auto id_acc = ids.accessor<int64_t, 2>();
  auto mask_acc = mask.accessor<int64_t, 2>();
  for (int64_t r = 0; r < B; ++r) {
    auto& item = items[static_cast<size_t>(out.rows[r])];
    const auto n = static_cast<int64_t>(item.ids.size());
    const int64_t start = options.padding_side == PaddingSide::kLeft ? length - n : 0;
    for (int64_t j = 0; j < n; ++j) {
      id_acc[r][start + j] = item.ids[static_cast<size_t>(j)];
      mask_acc[r][start + j] = 1;
    }
    out.row_image.push_back(item.image ? static_cast<int64_t>(out.batch.images.size()) : -1);
    if (item.image) out.batch.images.push_back(std::move(*item.image));
    out.prompts.push_back(std::move(item.prompt));
  }
  out.batch.input_ids = ids;
  out.batch.attention_mask = mask;
  out.padding_side = options.padding_side;
  return out;
}

std::vector<int64_t> ProcessedBatch::lengths() const {
  if (rows.empty()) return {};
  auto n = batch.attention_mask.ne(0).sum(1).to(at::kCPU, at::kLong).contiguous();
  return {n.data_ptr<int64_t>(), n.data_ptr<int64_t>() + n.numel()};
}

ProcessedBatch select_rows(const ProcessedBatch& b, const std::vector<int64_t>& picked) {
  const auto all = b.lengths();
  const auto B = static_cast<int64_t>(b.rows.size());
  ProcessedBatch out;
  out.padding_side = b.padding_side;
  int64_t length = 0;
  for (auto r : picked) {
    TORCH_CHECK_INDEX(r >= 0 && r < B, "select_rows: row ", r, " of a batch of ", B);
    length = std::max(length, all[static_cast<size_t>(r)]);
  }
  const auto L = b.batch.input_ids.size(1);
  // Rows are one run of real tokens against one side, so keeping `length` columns on that side keeps
  // every picked row's tokens.
  const int64_t first_column = b.padding_side == PaddingSide::kLeft ? L - length : 0;
  auto index = at::tensor(picked, at::kLong).to(b.batch.input_ids.device());
  auto take = [&](const at::Tensor& t, int64_t row_dim) {
    return t.index_select(row_dim, index.to(t.device())).narrow(row_dim + 1, first_column, length).contiguous();
  };
  out.batch.input_ids = take(b.batch.input_ids, 0);
  out.batch.attention_mask = take(b.batch.attention_mask, 0);
  if (b.batch.position_ids.defined())
    out.batch.position_ids = take(b.batch.position_ids, b.batch.position_ids.dim() == 3 ? 1 : 0);
  for (auto r : picked) {
    const auto i = static_cast<size_t>(r);
    out.rows.push_back(b.rows[i]);
    out.prompts.push_back(i < b.prompts.size() ? b.prompts[i] : std::string());
    const int64_t image = i < b.row_image.size() ? b.row_image[i] : -1;
    out.row_image.push_back(image < 0 ? -1 : static_cast<int64_t>(out.batch.images.size()));
    if (image >= 0) out.batch.images.push_back(b.batch.images[static_cast<size_t>(image)]);
  }
  return out;
}

int64_t resolve_pad_token_id(const nlohmann::json& config, const core::Tokenizer& tokenizer) {
  for (const auto* source : {&config, config.contains("text_config") ? &config["text_config"] : nullptr}) {
    if (!source || !source->is_object()) continue;
    auto it = source->find("pad_token_id");
    if (it != source->end() && it->is_number_integer()) return it->get<int64_t>();
  }
  if (auto pad = tokenizer.token_to_id("<pad>")) return *pad;
  return 0;
}

TextProcessor::TextProcessor(std::shared_ptr<const core::Tokenizer> tokenizer, const std::string& model_type,
                             int64_t pad_token_id, int64_t max_length)
    : Processor(std::move(tokenizer), core::prompt::template_for(model_type), pad_token_id, max_length) {}

}  // namespace unime::model
