// unime from C++ alone: load a Hugging Face checkpoint, embed texts and images, write the vectors.
// No Python anywhere: the same processor and model that unime.encode() drives.
//
//   unime_encode_example MODEL_DIR OUT.safetensors [--text TEXT | --image FILE.ppm | --instruction TEXT]...
//
// Each --text / --image starts a new input unless it completes the one before (an --image after a
// --text, or the reverse, makes an image+text pair when --pair is given first). --instruction sets
// the instruction of the input before it. Images are binary PPM (P6, 8-bit), the one image format
// simple enough to read here without a decoder library. The output holds "embeddings" (N, hidden)
// float32, L2-normalised.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "core/safetensors.h"
#include "model/checkpoint_loader.h"
#include "model/embedding_model.h"

namespace {

struct Image {
  std::vector<uint8_t> pixels;  // (H, W, 3)
  int64_t height = 0, width = 0;
};

// Reads a binary PPM (P6, maxval 255); comments allowed in the header.
Image read_ppm(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  auto token = [&]() {
    std::string t;
    while (in >> t && t[0] == '#') std::getline(in, t);
    return t;
  };
  if (token() != "P6") throw std::runtime_error(path + ": not a binary PPM (P6)");
  Image im;
  im.width = std::stoll(token());
  im.height = std::stoll(token());
  if (token() != "255") throw std::runtime_error(path + ": only 8-bit PPM (maxval 255) is supported");
  in.get();  // the single whitespace after maxval
  im.pixels.resize(static_cast<size_t>(im.height * im.width * 3));
  if (!in.read(reinterpret_cast<char*>(im.pixels.data()), static_cast<std::streamsize>(im.pixels.size())))
    throw std::runtime_error(path + ": truncated pixel data");
  return im;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: " << argv[0]
              << " MODEL_DIR OUT.safetensors [--pair] [--text TEXT | --image FILE.ppm | --instruction TEXT]...\n";
    return 2;
  }
  try {
    const std::string model_dir = argv[1], out_path = argv[2];
    std::vector<Image> images;  // owns the pixels the inputs borrow
    images.reserve(static_cast<size_t>(argc));
    std::vector<unime::model::EncodeInput> inputs;
    bool pair = false;
    for (int i = 3; i < argc; ++i) {
      const std::string flag = argv[i];
      if (flag == "--pair") {
        pair = true;
        continue;
      }
      if (i + 1 >= argc) throw std::runtime_error(flag + " needs a value");
      const std::string value = argv[++i];
      if (flag == "--instruction") {
        if (inputs.empty()) throw std::runtime_error("--instruction before any input");
        inputs.back().instruction = value;
      } else if (flag == "--text") {
        if (pair && !inputs.empty() && inputs.back().image && !inputs.back().text)
          inputs.back().text = value;
        else
          inputs.push_back({value, std::nullopt, std::nullopt});
      } else if (flag == "--image") {
        images.push_back(read_ppm(value));
        unime::core::image::ImageView view{images.back().pixels.data(), images.back().height, images.back().width};
        if (pair && !inputs.empty() && inputs.back().text && !inputs.back().image)
          inputs.back().image = view;
        else
          inputs.push_back({std::nullopt, view, std::nullopt});
      } else {
        throw std::runtime_error("unknown argument " + flag);
      }
    }
    if (inputs.empty()) throw std::runtime_error("nothing to encode: give --text or --image");

    auto model = unime::model::EmbeddingModel::load(model_dir, at::kFloat, at::kCPU);
    at::InferenceMode inference;
    auto embeddings =
        model->encode_inputs(inputs, unime::model::ProcessOptions{}, /*normalize=*/true).to(at::kFloat).contiguous();
    unime::core::TensorView view{"embeddings", unime::core::DType::F32, embeddings.sizes().vec(), embeddings.data_ptr(),
                                 embeddings.nbytes()};
    unime::core::write_safetensors(out_path, {view}, {{"model", model_dir}});
    std::cout << "embedded " << inputs.size() << " inputs into " << embeddings.size(1) << "-d vectors: " << out_path
              << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
