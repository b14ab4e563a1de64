#include <gtest/gtest.h>

#include <utility>

#include "core/errors.h"
#include "core/image/qwen2_vl_image.h"

namespace {

using unime::core::image::gme_pre_resize_size;
using unime::core::image::qwen2_vl_smart_resize;
using unime::core::image::Qwen2VLImageConfig;
using Size = std::pair<int64_t, int64_t>;

// GME's smart_resize (gme_inference.py): tests/python/test_gme.py checks it against qwen_vl_utils on
// the sizes both accept; these are the cases only GME's copy has.
TEST(GmePreResize, RoundsToMultiplesOf28WithinItsPixelRange) {
  EXPECT_EQ(gme_pre_resize_size(100, 100), Size(112, 112));      // 100 / 28 = 3.57 -> 4
  EXPECT_EQ(gme_pre_resize_size(42, 42), Size(56, 56));          // 1.5 rounds half to even: 2
  EXPECT_EQ(gme_pre_resize_size(70, 70), Size(56, 56));          // 2.5 -> 2
  EXPECT_EQ(gme_pre_resize_size(10, 10), Size(56, 56));          // 28 x 28 < 4 * 28^2: scaled up by ceil
  EXPECT_EQ(gme_pre_resize_size(3700, 3600), Size(3612, 3528));  // over 16384 * 28^2: scaled down by floor
}

TEST(GmePreResize, ClampsAspectRatiosAbove200) {
  EXPECT_EQ(gme_pre_resize_size(20, 6000), Size(28, 5600));  // 28 x 5992 (ratio 214) clamped
  EXPECT_EQ(gme_pre_resize_size(6000, 20), Size(5600, 28));
  EXPECT_EQ(gme_pre_resize_size(28, 5600), Size(28, 5600));  // exactly 200 stays
}

TEST(GmePreResize, RefusesSidesThatWouldVanish) {
  EXPECT_THROW(gme_pre_resize_size(0, 10), unime::InvalidInputError);
  EXPECT_THROW(gme_pre_resize_size(1, 20000000), unime::InvalidInputError);  // floor gives a 0 side
}

// Sizes whose rounded area is past int64 (found by fuzz/image_fuzzer.cc: the product overflowed) are
// above any max_pixels, as Python's ints compare them: a square of any size above the limit scales to
// the same size.
TEST(SmartResize, HugeSizesScaleDownWithoutOverflow) {
  const Qwen2VLImageConfig config;
  const int64_t huge = int64_t{1} << 40;
  EXPECT_EQ(qwen2_vl_smart_resize(huge, huge, config), qwen2_vl_smart_resize(4096, 4096, config));
  EXPECT_EQ(gme_pre_resize_size(huge, huge), gme_pre_resize_size(8192, 8192));
  const auto [h, w] = qwen2_vl_smart_resize(huge, huge / 100, config);
  EXPECT_LE(h * w, config.max_pixels);
  EXPECT_EQ(h % 28, 0);
  EXPECT_EQ(w % 28, 0);
}

}  // namespace
