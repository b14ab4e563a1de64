// unime._C.EmbeddingModel (the loaded model), Processor (texts/images -> batch), Batch, and LoRA.
// Python's unime.Model wraps them (python/unime/model.py).
#include "core/errors.h"
#include "model/embedding_model.h"
#include "model/lora.h"
#include "model/qwen2_vl.h"
#include "python/bindings.h"
#include "python/convert.h"

namespace unime::python {

namespace {
using ImageArg = std::tuple<at::Tensor, int64_t, int64_t>;  // (pixel_values, height, width)
using model::EmbeddingModel;
using model::ProcessedBatch;

model::EncodeBatch make_batch(const at::Tensor& ids, const at::Tensor& mask, const std::vector<ImageArg>& images,
                              const std::optional<at::Tensor>& position_ids) {
  model::EncodeBatch batch{ids, mask, {}, position_ids.value_or(at::Tensor())};
  for (const auto& [pixels, h, w] : images) batch.images.push_back({pixels, h, w});
  return batch;
}

}  // namespace

// Inputs from parallel Python lists (None entries allowed; `prompts` may be None); `keep` holds
// the objects whose buffers the inputs borrow while the GIL is released.
std::vector<model::EncodeInput> to_inputs(const py::sequence& texts, const py::sequence& images,
                                          const py::sequence& instructions, std::vector<py::object>& keep,
                                          const py::object& prompts) {
  const size_t n = py::len(texts);
  if (py::len(images) != n || py::len(instructions) != n || (!prompts.is_none() && py::len(prompts) != n))
    throw InvalidInputError("texts, images, instructions (and prompts) must have one entry per input (" +
                            std::to_string(n) + ", " + std::to_string(py::len(images)) + ", " +
                            std::to_string(py::len(instructions)) + ")");
  std::vector<model::EncodeInput> out(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string what = "input " + std::to_string(i);
    if (!texts[i].is_none()) {
      keep.push_back(texts[i]);
      out[i].text = std::string(utf8_view(keep.back(), what + ": text"));
    }
    if (!instructions[i].is_none()) {
      keep.push_back(instructions[i]);
      out[i].instruction = std::string(utf8_view(keep.back(), what + ": instruction"));
    }
    if (!images[i].is_none()) {
      auto arr = rgb_array(images[i], what + ": image");
      out[i].image = view_of(arr);
      keep.push_back(std::move(arr));
    }
    if (!prompts.is_none()) {
      py::sequence ps = prompts;
      if (!ps[i].is_none()) {
        keep.push_back(ps[i]);
        out[i].prompt = std::string(utf8_view(keep.back(), what + ": prompt"));
      }
    }
    if (!out[i].text && !out[i].image && !out[i].prompt)
      throw InvalidInputError(what + " has neither a text nor an image");
  }
  return out;
}

namespace {

model::ProcessOptions to_options(const std::string& prompt, std::optional<std::string> text_template,
                                 std::optional<std::string> image_template, int64_t max_length, bool truncate,
                                 const std::string& padding_side, size_t num_threads, bool skip_errors) {
  model::ProcessOptions o;
  if (prompt == "embed") {
    o.prompt_kind = core::prompt::PromptKind::kEmbed;
  } else if (prompt == "distill") {
    o.prompt_kind = core::prompt::PromptKind::kDistill;
  } else {
    throw InvalidInputError("prompt must be 'embed' or 'distill', got '" + prompt + "'");
  }
  if (padding_side != "left" && padding_side != "right")
    throw InvalidInputError("padding_side must be 'left' or 'right', got '" + padding_side + "'");
  if (max_length < 0) throw InvalidInputError("max_length must be >= 0 (0: the model's maximum)");
  o.text_template = std::move(text_template);
  o.image_template = std::move(image_template);
  o.max_length = max_length;
  o.overflow = truncate ? model::Overflow::kTruncate : model::Overflow::kRefuse;
  o.padding_side = padding_side == "left" ? model::PaddingSide::kLeft : model::PaddingSide::kRight;
  o.num_threads = num_threads;
  o.skip_errors = skip_errors;
  return o;
}

#define UNIME_PROCESS_ARGS                                                                                 \
  py::arg("texts"), py::arg("images"), py::arg("instructions"),                                            \
      py::arg("prompts") = py::none(), py::arg("prompt") = "embed", py::arg("text_template") = py::none(), \
      py::arg("image_template") = py::none(), py::arg("max_length") = 0, py::arg("truncate") = false,      \
      py::arg("padding_side") = "left", py::arg("num_threads") = 0, py::arg("skip_errors") = false

ProcessedBatch process(const model::Processor& p, const py::sequence& texts, const py::sequence& images,
                       const py::sequence& instructions, const py::object& prompts, const std::string& prompt,
                       std::optional<std::string> text_template, std::optional<std::string> image_template,
                       int64_t max_length, bool truncate, const std::string& padding_side, size_t num_threads,
                       bool skip_errors) {
  std::vector<py::object> keep;
  auto inputs = to_inputs(texts, images, instructions, keep, prompts);
  auto options = to_options(prompt, std::move(text_template), std::move(image_template), max_length, truncate,
                            padding_side, num_threads, skip_errors);
  py::gil_scoped_release release;
  return p.process(inputs, options);
}

const model::Processor& processor_of(const EmbeddingModel& m) {
  if (!m.processor())
    throw InvalidInputError(
        "this checkpoint has no tokenizer.json next to config.json: encoding texts and images "
        "needs one (use encode_ids with token ids)");
  return *m.processor();
}
}  // namespace

void bind_model(py::module_& m) {
  m.def(
      "qwen2_vl_rope_index",
      [](const at::Tensor& input_ids, const at::Tensor& attention_mask, const std::vector<std::vector<int64_t>>& grids,
         int64_t image_token_id, int64_t vision_start_token_id, int64_t spatial_merge_size) {
        std::vector<model::GridTHW> g;
        for (const auto& x : grids) {
          if (x.size() != 3) throw InvalidInputError("each image grid must be (t, h, w)");
          g.push_back({x[0], x[1], x[2]});
        }
        return model::qwen2_vl_rope_index(input_ids, attention_mask, g, image_token_id, vision_start_token_id,
                                          spatial_merge_size);
      },
      py::arg("input_ids"), py::arg("attention_mask"), py::arg("grids"), py::arg("image_token_id"),
      py::arg("vision_start_token_id"), py::arg("spatial_merge_size"),
      "Qwen2-VL's 3-D M-RoPE positions (3, B, L) as transformers' get_rope_index computes them.");
  py::class_<ProcessedBatch>(m, "Batch", "A batch built by a Processor: what the model receives.")
      .def_property_readonly("input_ids", [](const ProcessedBatch& b) { return b.batch.input_ids; })
      .def_property_readonly("attention_mask", [](const ProcessedBatch& b) { return b.batch.attention_mask; })
      .def_property_readonly("position_ids",
                             [](const ProcessedBatch& b) -> std::optional<at::Tensor> {
                               if (!b.batch.position_ids.defined()) return std::nullopt;
                               return b.batch.position_ids;
                             })
      .def_property_readonly("images",
                             [](const ProcessedBatch& b) {
                               std::vector<ImageArg> out;
                               for (const auto& im : b.batch.images)
                                 out.emplace_back(im.pixel_values, im.height, im.width);
                               return out;
                             })
      .def_readonly("rows", &ProcessedBatch::rows, "the input index of each row")
      .def_readonly("prompts", &ProcessedBatch::prompts)
      .def_property_readonly(
          "errors",
          [](const ProcessedBatch& b) {
            std::vector<std::pair<size_t, std::string>> out;
            for (const auto& e : b.errors) out.emplace_back(e.index, e.message);
            return out;
          },
          "(input index, message) of the inputs left out (skip_errors)")
      .def_property_readonly("lengths", &ProcessedBatch::lengths,
                             "real tokens of each row, its image's tokens included (its cost)")
      .def("select", &model::select_rows, py::arg("rows"),
           "rows (positions in this batch, any order) as a batch of their own, padded to the longest of them",
           py::call_guard<py::gil_scoped_release>())
      .def("__len__", [](const ProcessedBatch& b) { return b.rows.size(); });

  py::class_<model::Processor, std::shared_ptr<model::Processor>>(m, "Processor")
      .def("process", &process, UNIME_PROCESS_ARGS,
           "Texts, images (uint8 (H, W, 3) arrays) and instructions, one entry per input (None allowed), to a Batch.")
      .def(
          "prompt",
          [](const model::Processor& p, std::optional<std::string> text, bool has_image,
             std::optional<std::string> instruction, const std::string& prompt) {
            model::EncodeInput input{text, std::nullopt, instruction};
            static const uint8_t pixel[3] = {0, 0, 0};
            if (has_image) input.image = core::image::ImageView{pixel, 1, 1};
            return p.prompt(input, to_options(prompt, std::nullopt, std::nullopt, 0, false, "left", 0, false));
          },
          py::arg("text") = py::none(), py::arg("has_image") = false, py::arg("instruction") = py::none(),
          py::arg("prompt") = "embed")
      .def_property_readonly(
          "tokenizer",
          [](const model::Processor& p) { return std::const_pointer_cast<core::Tokenizer>(p.shared_tokenizer()); })
      .def_property_readonly("pad_token_id", &model::Processor::pad_token_id)
      .def_property_readonly("max_length", &model::Processor::max_length)
      .def_property_readonly("takes_images", &model::Processor::takes_images);

  py::class_<EmbeddingModel, std::shared_ptr<EmbeddingModel>>(m, "EmbeddingModel")
      .def_static(
          "load",
          [](const std::string& path, std::optional<std::string> dtype, const std::string& device, bool text_only,
             const std::string& recipe) {
            std::optional<at::ScalarType> type;
            if (dtype) type = model::parse_float_dtype(*dtype);
            c10::Device dev(device);
            py::gil_scoped_release release;
            return EmbeddingModel::load(path, type, dev, text_only, recipe);
          },
          py::arg("path"), py::arg("dtype") = py::none(), py::arg("device") = "cpu", py::arg("text_only") = false,
          py::arg("recipe") = "",
          "Load a Hugging Face checkpoint directory. dtype: None = config.json's torch_dtype; recipe: '' = from "
          "the directory (model/recipe.h).")
      .def(
          "encode",
          [](const EmbeddingModel& m, const at::Tensor& ids, const at::Tensor& mask,
             const std::vector<ImageArg>& images, bool normalize, bool packed, std::optional<at::Tensor> position_ids) {
            return m.encode(make_batch(ids, mask, images, position_ids), normalize, packed);
          },
          py::arg("input_ids"), py::arg("attention_mask"), py::arg("images") = std::vector<ImageArg>{},
          py::arg("normalize") = true, py::arg("packed") = true, py::arg("position_ids") = py::none(),
          py::call_guard<py::gil_scoped_release>(), "images: [(pixel_values, height, width)] in placeholder order")
      .def(
          "encode_batch",
          [](const EmbeddingModel& m, const ProcessedBatch& b, bool normalize, bool packed) {
            py::gil_scoped_release release;
            if (b.rows.empty())
              return at::empty({0, m.hidden_size()}, at::TensorOptions().dtype(m.dtype()).device(m.device()));
            return m.encode(b.batch, normalize, packed);
          },
          py::arg("batch"), py::arg("normalize") = true, py::arg("packed") = true)
      .def(
          "last_hidden_state",
          [](const EmbeddingModel& m, const at::Tensor& ids, const at::Tensor& mask,
             const std::vector<ImageArg>& images, std::optional<at::Tensor> position_ids) {
            return m.last_hidden_state(make_batch(ids, mask, images, position_ids));
          },
          py::arg("input_ids"), py::arg("attention_mask"), py::arg("images") = std::vector<ImageArg>{},
          py::arg("position_ids") = py::none(), py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("processor",
                             [](const EmbeddingModel& m) -> std::shared_ptr<model::Processor> {
                               return std::const_pointer_cast<model::Processor>(m.shared_processor());
                             })
      .def(
          "process",
          [](const EmbeddingModel& m, const py::sequence& texts, const py::sequence& images,
             const py::sequence& instructions, const py::object& prompts, const std::string& prompt,
             std::optional<std::string> text_template, std::optional<std::string> image_template, int64_t max_length,
             bool truncate, const std::string& padding_side, size_t num_threads, bool skip_errors) {
            return process(processor_of(m), texts, images, instructions, prompts, prompt, std::move(text_template),
                           std::move(image_template), max_length, truncate, padding_side, num_threads, skip_errors);
          },
          UNIME_PROCESS_ARGS)
      .def_property_readonly("image_token_id", [](const EmbeddingModel& m) { return m.backbone().image_token_id(); })
      .def("image_token_count",
           [](const EmbeddingModel& m, int64_t h, int64_t w) { return m.backbone().image_token_count(h, w); })
      .def_property_readonly("ignored_tensors", [](const EmbeddingModel& m) { return m.load_report().ignored; })
      .def_property_readonly("unexpected_tensors", [](const EmbeddingModel& m) { return m.load_report().unexpected; })
      .def_property_readonly("config_json", &EmbeddingModel::config_json)
      .def_property_readonly("model_type", &EmbeddingModel::model_type)
      .def_property_readonly("hidden_size", &EmbeddingModel::hidden_size)
      .def_property_readonly("max_length",
                             [](const EmbeddingModel& m) {  // the processor's: a recipe may lower the model's
                               return m.processor() ? m.processor()->max_length() : m.backbone().max_length();
                             })
      .def_property_readonly("dtype", [](const EmbeddingModel& m) { return std::string(c10::toString(m.dtype())); })
      .def_property_readonly("device", [](const EmbeddingModel& m) { return m.device().str(); })
      .def_property_readonly("text_only", &EmbeddingModel::text_only)
      .def_property_readonly("recipe", [](const EmbeddingModel& m) { return m.recipe().name; })
      .def_property_readonly("components",
                             [](const EmbeddingModel& m) {
                               std::vector<std::pair<std::string, std::string>> out;
                               for (const auto& c : m.backbone().components()) out.emplace_back(c.name, c.module_path);
                               return out;
                             })
      .def(
          "named_parameters",
          [](EmbeddingModel& m) {
            std::vector<std::pair<std::string, at::Tensor>> out;
            for (const auto& item : m.backbone().named_parameters()) out.emplace_back(item.key(), item.value());
            return out;
          },
          "(module path, tensor) for every parameter, sharing memory with the model")
      .def(
          "hf_name",
          [](const EmbeddingModel& m, const std::string& path) { return m.backbone().weight_map().to_hf(path); },
          py::arg("module_path"), "The Hugging Face checkpoint name of a module parameter path (None if unmapped).")
      .def(
          "module_path",
          [](const EmbeddingModel& m, const std::string& hf) { return m.backbone().weight_map().to_module(hf); },
          py::arg("hf_name"), "The module parameter path of a Hugging Face checkpoint name (None if unmapped).")
      .def(
          "add_lora",
          [](EmbeddingModel& m, std::vector<std::string> modules, const std::string& regex,
             std::vector<std::string> components, int64_t rank, double alpha, double dropout, bool use_rslora,
             const std::string& init, std::optional<std::string> dtype, uint64_t seed) {
            model::LoraConfig c{rank, alpha, dropout, use_rslora, init};
            auto type = dtype ? model::parse_float_dtype(*dtype) : m.dtype();
            py::gil_scoped_release release;
            return model::add_lora(m.backbone(), {std::move(modules), regex, std::move(components)}, c, type, seed);
          },
          py::arg("target_modules") = std::vector<std::string>{}, py::arg("regex") = "",
          py::arg("components") = std::vector<std::string>{}, py::arg("r") = 8, py::arg("alpha") = 8.0,
          py::arg("dropout") = 0.0, py::arg("use_rslora") = false, py::arg("init") = "kaiming",
          py::arg("dtype") = py::none(), py::arg("seed") = 0)
      .def("lora_parameters", [](EmbeddingModel& m) { return model::lora_parameters(m.backbone()); })
      .def("merge_lora", [](EmbeddingModel& m) { model::merge_lora(m.backbone()); })
      .def("unmerge_lora", [](EmbeddingModel& m) { model::unmerge_lora(m.backbone()); })
      .def("hf_module_path",
           [](const EmbeddingModel& m, const std::string& path) { return model::hf_module_path(m.backbone(), path); })
      .def(
          "train", [](EmbeddingModel& m, bool on) { m.backbone().train(on); }, py::arg("mode") = true)
      .def_property_readonly("training", [](const EmbeddingModel& m) { return m.backbone().is_training(); })
      .def("set_gradient_checkpointing",
           [](EmbeddingModel& m, bool on) { m.backbone().set_gradient_checkpointing(on); });
}

}  // namespace unime::python
