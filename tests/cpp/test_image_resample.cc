// csrc/core/image/resample: Pillow-exact resizing. The golden bytes below are PIL 13's
// Image.resize output for the 5x7 pattern made by pattern() (generated once with
// `Image.fromarray(a).resize((w, h), filter)`); tests/python/test_image_resample.py checks many
// more sizes, and random noise, against the installed Pillow.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "core/errors.h"
#include "core/image/resample.h"

namespace unime::core::image {
namespace {

// 5 rows x 7 columns x RGB: (y*37 + x*91 + c*53) mod 256.
std::vector<uint8_t> pattern() {
  std::vector<uint8_t> a;
  for (int y = 0; y < 5; ++y)
    for (int x = 0; x < 7; ++x)
      for (int c = 0; c < 3; ++c) a.push_back(static_cast<uint8_t>((y * 37 + x * 91 + c * 53) % 256));
  return a;
}

TEST(ImageResample, BicubicDownscaleMatchesPillow) {
  auto in = pattern();
  auto out = resize_rgb({in.data(), 5, 7}, 3, 4, Filter::kBicubic);
  std::vector<uint8_t> pil{59,  109, 162, 136, 128, 103, 115, 151, 175, 129, 130, 114, 114, 170, 126, 84,  107, 127,
                           141, 147, 126, 94,  116, 174, 174, 159, 165, 116, 144, 126, 102, 96,  110, 122, 176, 152};
  EXPECT_EQ(out, pil);
}

TEST(ImageResample, BilinearDownscaleMatchesPillow) {
  auto in = pattern();
  auto out = resize_rgb({in.data(), 5, 7}, 2, 3, Filter::kBilinear);
  std::vector<uint8_t> pil{100, 130, 136, 109, 128, 140, 128, 133, 139, 136, 152, 135, 112, 133, 129, 109, 135, 147};
  EXPECT_EQ(out, pil);
}

TEST(ImageResample, VerticalOnlyPassMatchesPillow) {
  // Width 7 -> 3 and height 5 -> 5: only the horizontal pass runs.
  auto in = pattern();
  auto out = resize_rgb({in.data(), 5, 7}, 5, 3, Filter::kBicubic);
  std::vector<uint8_t> pil{75,  128, 127, 99,  152, 123, 117, 170, 119, 112, 111, 164, 136, 107, 160,
                           154, 103, 156, 95,  148, 97,  91,  144, 115, 87,  140, 139, 132, 193, 134,
                           128, 110, 152, 124, 122, 176, 177, 118, 171, 94,  136, 89,  106, 160, 115};
  EXPECT_EQ(out, pil);
}

TEST(ImageResample, BicubicUpscaleClampsOvershoot) {
  // Upscaling 5x7 -> 9x11 overshoots past 0 and 255 at the sharp edges of the pattern; Pillow
  // clamps. Spot-check against PIL's bytes: first pixel, a clamped 255 and a clamped 0.
  auto in = pattern();
  auto out = resize_rgb({in.data(), 5, 7}, 9, 11, Filter::kBicubic);
  ASSERT_EQ(out.size(), 9u * 11 * 3);
  EXPECT_EQ(out[0], 0);
  EXPECT_EQ(out[1], 44);
  EXPECT_EQ(out[2], 97);
  EXPECT_EQ(out[25], 255);   // row 0, column 8, G
  EXPECT_EQ(out.back(), 1);  // row 8, column 10, B
}

TEST(ImageResample, SameSizeIsACopy) {
  auto in = pattern();
  EXPECT_EQ(resize_rgb({in.data(), 5, 7}, 5, 7, Filter::kBicubic), in);
}

TEST(ImageResample, ConstantImageStaysConstant) {
  // The fixed-point weights of each output sum to 2^22 within rounding, so a flat colour survives
  // any resize in either direction.
  std::vector<uint8_t> in(13 * 29 * 3);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<uint8_t>(i % 3 == 0 ? 200 : i % 3 == 1 ? 7 : 255);
  for (auto [h, w] : {std::pair{1, 1}, {3, 336}, {336, 5}, {40, 41}}) {
    for (auto f : {Filter::kBicubic, Filter::kBilinear}) {
      auto out = resize_rgb({in.data(), 13, 29}, h, w, f);
      for (size_t i = 0; i < out.size(); i += 3) {
        ASSERT_EQ(out[i], 200) << h << "x" << w;
        ASSERT_EQ(out[i + 1], 7);
        ASSERT_EQ(out[i + 2], 255);
      }
    }
  }
}

TEST(ImageResample, OnePixelUpscalesToFlat) {
  uint8_t px[3] = {1, 2, 3};
  auto out = resize_rgb({px, 1, 1}, 4, 6, Filter::kBicubic);
  for (size_t i = 0; i < out.size(); ++i) EXPECT_EQ(out[i], px[i % 3]);
}

TEST(ImageResample, RejectsBadArguments) {
  auto in = pattern();
  EXPECT_THROW(resize_rgb({in.data(), 5, 7}, 0, 4, Filter::kBicubic), InvalidInputError);
  EXPECT_THROW(resize_rgb({in.data(), 5, 7}, 4, -1, Filter::kBicubic), InvalidInputError);
  EXPECT_THROW(resize_rgb({nullptr, 5, 7}, 4, 4, Filter::kBicubic), InvalidInputError);
  EXPECT_THROW(resize_rgb({in.data(), 0, 7}, 4, 4, Filter::kBicubic), InvalidInputError);
  EXPECT_THROW(resize_rgb({in.data(), 5, 7}, kMaxSide + 1, 4, Filter::kBicubic), InvalidInputError);
  EXPECT_THROW(resize_rgb({in.data(), 5, 7}, 4, 4, static_cast<Filter>(1)), InvalidInputError);
  try {
    resize_rgb({in.data(), 5, 7}, 0, 4, Filter::kBicubic);
  } catch (const InvalidInputError& e) {
    EXPECT_NE(std::string(e.what()).find("out_h"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace unime::core::image
