#include "model/recipe.h"

#include <filesystem>
#include <map>

#include "core/errors.h"
#include "core/json_file.h"
#include "core/util/strings.h"

namespace unime::model {
namespace {

const std::map<std::string, EmbeddingRecipe>& recipes() {
  // gme: gme_inference.py's defaults (min_image_tokens 256, max_image_tokens 1280, max_length 1800;
  // one image token per 28 x 28 pixels).
  // unime_v2: utils/utils.py's prepare_stage_data (1344 x 1344, max_length 4096). Its pixel limits
  // stay the checkpoint's: the min_pixels / max_pixels it passes are dropped by its processor's
  // constructor (backbones.md C.3).
  static const std::map<std::string, EmbeddingRecipe> table = {
      {"default", {"default", "", "", false, false, 0, 0, 0, 0}},
      {"gme", {"gme", "qwen2_vl", "gme", true, true, 0, 256 * 28 * 28, 1280 * 28 * 28, 1800}},
      {"unime_v2", {"unime_v2", "qwen2_vl", "unime_v2", false, false, 1344, 0, 0, 4096}},
  };
  return table;
}

}  // namespace

const EmbeddingRecipe& embedding_recipe(const std::string& name) {
  auto it = recipes().find(name);
  if (it == recipes().end())
    throw InvalidInputError("unknown recipe " + core::quote(name) +
                            " (known: " + core::join(embedding_recipes(), ", ") + ")");
  return it->second;
}

std::vector<std::string> embedding_recipes() {
  std::vector<std::string> out;
  for (const auto& [name, _] : recipes()) out.push_back(name);
  return out;
}

const EmbeddingRecipe& resolve_recipe(const std::string& name, const std::string& model_dir,
                                      const std::string& model_type) {
  if (name.empty()) {
    const auto dir = std::filesystem::path(model_dir);
    if (std::filesystem::is_regular_file(dir / kRecipeFile)) {
      const auto file = (dir / kRecipeFile).string();
      return resolve_recipe(core::get_required<std::string>(core::read_json_file(file), "recipe", file), model_dir,
                            model_type);
    }
    const bool gme = model_type == "qwen2_vl" && std::filesystem::is_regular_file(dir / "gme_inference.py");
    return embedding_recipe(gme ? "gme" : "default");
  }
  const auto& recipe = embedding_recipe(name);
  if (!recipe.family.empty() && recipe.family != model_type)
    throw InvalidInputError("recipe " + core::quote(name) + " is for " + recipe.family + " checkpoints; " + model_dir +
                            " is " + model_type);
  return recipe;
}

}  // namespace unime::model
