// Embedding recipes: how a released embedding model built on a backbone family embeds where that
// differs from the family's own processor and forward. GME (gme-Qwen2-VL-2B/7B-Instruct) is a
// Qwen2-VL checkpoint, but its gme_inference.py writes its own prompt, resizes images with its own
// smart_resize before the processor, caps the processor at 256-1280 image tokens and 1800 tokens,
// and calls the inner Qwen2VLModel with position_ids=None, so every token gets 1-D positions
// (backbones.md C.3, C.6). UniME-V2 (its README's and utils/utils.py's inference) embeds texts as
// they are, images with "<|image_pad|> Find an image caption describing the given image." after
// resizing them to 1344 x 1344, and truncates at 4096 tokens. A recipe is chosen when the model is
// loaded (EmbeddingModel::load).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace unime::model {

struct EmbeddingRecipe {
  std::string name;                        // "default" | "gme" | "unime_v2"
  std::string family;                      // the model_type it applies to; empty: any
  std::string prompt_template;             // core::prompt table key; empty: the family's own
  bool sequential_positions = false;       // positions 0..n-1 on every M-RoPE axis, images included
  bool gme_pre_resize = false;             // images through GME's smart_resize + Pillow BICUBIC first
  int64_t square_resize = 0;               // images first resized to this square with Pillow BICUBIC (0: not)
  int64_t min_pixels = 0, max_pixels = 0;  // image processor limits in place of the checkpoint's (0: keep)
  int64_t max_length = 0;                  // tokens per input, images included (0: the model's maximum)
  bool is_default() const { return name == "default"; }
};

// The recipes by name; InvalidInputError listing them for an unknown name.
const EmbeddingRecipe& embedding_recipe(const std::string& name);
std::vector<std::string> embedding_recipes();

// A checkpoint directory's own record of its recipe, {"recipe": NAME}: a merged checkpoint saved
// from a model under a recipe writes it (train/peft_format.cc), so it loads the same way again.
inline constexpr const char* kRecipeFile = "unime_recipe.json";

// The recipe a checkpoint is loaded with. `name` empty (auto): the directory's kRecipeFile, else
// "gme" for a qwen2_vl checkpoint whose directory holds gme_inference.py (GME's hub repositories
// ship it), else "default" (UniME-V2's checkpoints carry no such mark: name it). A recipe whose
// family is not `model_type` is an InvalidInputError.
const EmbeddingRecipe& resolve_recipe(const std::string& name, const std::string& model_dir,
                                      const std::string& model_type);

}  // namespace unime::model
