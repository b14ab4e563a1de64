// The Hugging Face image processors' rescale then normalize (BaseImageProcessor.rescale /
// .normalize on numpy): x = float32(float64(u8) * rescale_factor), then (x - mean) / std in float32
// with mean and std cast to float32. The result depends only on the byte and the channel, so it is
// a 3 x 256 table built with exactly those operations: bit-identical to numpy's floats. Callers
// compile with -ffp-contract=off (a fused multiply-add would change the last bit).
#pragma once

#include <array>

namespace unime::core::image {

using NormalisationTable = std::array<std::array<float, 256>, 3>;

inline NormalisationTable normalisation_table(double rescale_factor, const std::array<float, 3>& mean,
                                              const std::array<float, 3>& std) {
  NormalisationTable t{};
  for (int c = 0; c < 3; ++c)
    for (int v = 0; v < 256; ++v) {
      const auto x = static_cast<float>(static_cast<double>(v) * rescale_factor);
      t[c][v] = (x - mean[c]) / std[c];
    }
  return t;
}

}  // namespace unime::core::image
