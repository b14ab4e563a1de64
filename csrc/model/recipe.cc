#include "model/recipe.h"

#include <filesystem>
#include <map>

#include "core/errors.h"
#include "core/util/strings.h"

namespace unime::model {
namespace {

const std::map<std::string, EmbeddingRecipe>& recipes() {
  // gme: gme_inference.py's defaults (min_image_tokens 256, max_image_tokens 1280, max_length 1800;
  // one image token per 28 x 28 pixels).
  static const std::map<std::string, EmbeddingRecipe> table = {
      {"default", {"default", "", "", false, false, 0, 0, 0}},
      {"gme", {"gme", "qwen2_vl", "gme", true, true, 256 * 28 * 28, 1280 * 28 * 28, 1800}},
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
    const bool gme = model_type == "qwen2_vl" &&
                     std::filesystem::is_regular_file(std::filesystem::path(model_dir) / "gme_inference.py");
    return embedding_recipe(gme ? "gme" : "default");
  }
  const auto& recipe = embedding_recipe(name);
  if (!recipe.family.empty() && recipe.family != model_type)
    throw InvalidInputError("recipe " + core::quote(name) + " is for " + recipe.family + " checkpoints; " + model_dir +
                            " is " + model_type);
  return recipe;
}

}  // namespace unime::model
