// Cephes' expf, the constants both vector exps use (avx512_math.h, avx2_math.h), so that the two
// instruction sets give the same bits: e^x = 2^n e^r with n = round(x log2 e), r = x - n ln2 (ln2
// split in two for an exact product), e^r by a degree-7 polynomial, x clamped to [kLo, kHi].
#pragma once

namespace unime::ops::expf_constants {

inline constexpr float kLo = -88.3762626647949f, kHi = 88.7228391116729f;
inline constexpr float kLog2e = 1.44269504088896341f;
inline constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
// Horner order, highest degree first: e^r = 1 + r + r^2 (((((kP0 r + kP1) r + kP2) r + kP3) r + kP4) r + kP5).
inline constexpr float kP0 = 1.9875691500e-4f, kP1 = 1.3981999507e-3f, kP2 = 8.3334519073e-3f, kP3 = 4.1665795894e-2f,
                       kP4 = 1.6666665459e-1f, kP5 = 5.0000001201e-1f;

}  // namespace unime::ops::expf_constants
