// Turning Philox words into noise, shared by the CPU and CUDA kernels.
//
// log and sin/cos are our own short polynomials rather than libm/CUDA
// intrinsics: the same arithmetic runs on host and device, it vectorises on
// the CPU, and its accuracy (about 1e-7 relative) matches float32 rounding.
//
// CPU and CUDA builds turn off FMA contraction for this math, so both produce
// the same float32 operations and, since every operation used is correctly
// rounded (IEEE +, -, *, /, sqrt, int->float), bit-identical noise.
//
// Distributional notes (documented for users in docs/soundness.md):
//  * Gaussian: Box-Muller with u1 in [2^-32, 1], so |z| <= 6.66; the tail
//    beyond that has probability 2.7e-11 per pair.
//  * Uniform: (2k+1) 2^-23 - 1 for k < 2^23, exactly symmetric about 0, scaled
//    by sqrt(3) so that sigma is the RMS of the noise.
//  * Splitting noise (SSN, Levine & Feizi 2021): the split value is
//    s = lambda (1 + u) with the same symmetric u, i.e. uniform on (0, 2 lambda)
//    over 2^23 points; lambda = sqrt(3) sigma as for uniform noise.
#pragma once
#include <stdint.h>

#include "macros.h"
#include "philox.h"

namespace smoothcert {

SC_HD int32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_int(f);
#else
  return __builtin_bit_cast(int32_t, f);
#endif
}

SC_HD float bits_float(int32_t i) {
#if defined(__CUDA_ARCH__)
  return __int_as_float(i);
#else
  return __builtin_bit_cast(float, i);
#endif
}

// Natural log for normal positive floats (our u1 >= 2^-32 is always normal).
// u = 2^e m with m in [sqrt(1/2), sqrt(2)); log m = 2 atanh(f / (2 + f)).
SC_HD float log_positive(float u) {
  const int32_t i = float_bits(u);
  int32_t e = ((i >> 23) & 0xff) - 127;
  float m = bits_float((i & 0x007fffff) | 0x3f800000);
  // Arithmetic instead of selects keeps the CPU loop free of branches.
  const int32_t big = m > 1.41421356f ? 1 : 0;
  m = m * (1.0f - 0.5f * static_cast<float>(big));
  e = e + big;
  const float f = m - 1.0f;
  const float s = f / (2.0f + f);
  const float s2 = s * s;
  const float poly =
      1.0f + s2 * (0.33333333f + s2 * (0.2f + s2 * (0.14285714f + s2 * 0.11111111f)));
  const float fe = static_cast<float>(e);
  return fe * 0.693145752f + (fe * 1.42860682e-06f + 2.0f * s * poly);
}

// sin and cos of 2*pi*u for u in [0, 1): reduce to a quarter turn exactly,
// then Taylor polynomials on [-pi/4, pi/4].
SC_HD void sincos_turn(float u, float* sn, float* cs) {
  const float t = 4.0f * u;
  // t + 0.5 > 0, so truncation is floor (and vectorises, unlike floorf).
  const int32_t ki = static_cast<int32_t>(t + 0.5f);
  const float th = (t - static_cast<float>(ki)) * 1.57079633f;
  const float t2 = th * th;
  const float s = th * (1.0f + t2 * (-1.66666667e-01f + t2 * (8.33333333e-03f +
                  t2 * (-1.98412698e-04f + t2 * 2.75573192e-06f))));
  const float c = 1.0f + t2 * (-0.5f + t2 * (4.16666667e-02f + t2 * (-1.38888889e-03f +
                  t2 * (2.48015873e-05f + t2 * -2.75573192e-07f))));
  // Quarter turns q: odd q swaps sin and cos; q in {2, 3} negates sin and
  // q in {1, 2} negates cos. Selects and sign-bit flips are exact, and
  // vectorise to blends and xors.
  const int32_t q = ki & 3;
  const bool swap = (q & 1) != 0;
  const float sq = swap ? c : s;
  const float cq = swap ? s : c;
  const uint32_t sin_flip = static_cast<uint32_t>(q & 2) << 30;
  const uint32_t cos_flip = static_cast<uint32_t>((q + 1) & 2) << 30;
  *sn = bits_float(static_cast<int32_t>(static_cast<uint32_t>(float_bits(sq)) ^ sin_flip));
  *cs = bits_float(static_cast<int32_t>(static_cast<uint32_t>(float_bits(cq)) ^ cos_flip));
}

// One Box-Muller pair from two words: u1 in [2^-32, 1], u2 in [0, 1).
SC_HD void box_muller(uint32_t a, uint32_t b, float* z0, float* z1) {
  const float u1 = static_cast<float>(static_cast<int32_t>(a >> 1)) * 4.65661287e-10f +
                   2.32830644e-10f;
  const float u2 = static_cast<float>(static_cast<int32_t>(b >> 8)) * 5.96046448e-08f;
  float sn, cs;
  sincos_turn(u2, &sn, &cs);
#if defined(__CUDA_ARCH__)
  const float r = sqrtf(-2.0f * log_positive(u1));
#else
  const float r = __builtin_sqrtf(-2.0f * log_positive(u1));
#endif
  *z0 = r * cs;
  *z1 = r * sn;
}

// Uniform on (-1, 1), exactly symmetric, from one word.
SC_HD float uniform_sym(uint32_t w) {
  const int32_t k = static_cast<int32_t>(w >> 9);
  return static_cast<float>(2 * k + 1) * 1.1920929e-07f - 1.0f;
}

// Uniform on (-sqrt(3), sqrt(3)) (unit variance) from one word.
SC_HD float uniform_unit(uint32_t w) { return uniform_sym(w) * 1.73205081f; }

constexpr float kSqrt3 = 1.73205081f;

SC_HD float ceil_float(float v) {
#if defined(__CUDA_ARCH__)
  return ceilf(v);
#else
  return __builtin_ceilf(v);
#endif
}

// Splitting noise (Levine & Feizi 2021, Theorem 2, general case: §4.3,
// Eqs. 27-28; both lambda regimes): the cuts sit at s + 2 lambda n for
// integers n, with s = lambda (1 + u), u in (-1, 1); the value is the
// midpoint of the piece of [0, 1] that holds x. The float ops are spelled
// out one by one so the twin in reference.py can repeat them.
SC_HD float split_value(float x, float sigma, float u) {
  const float lam = sigma * kSqrt3;
  const float two_lam = 2.0f * lam;
  const float s = lam + lam * u;
  const float m = ceil_float((x - s) / two_lam);
  const float up_raw = two_lam * m + s;
  const float lo_raw = up_raw - two_lam;
  const float up = up_raw < 1.0f ? up_raw : 1.0f;
  const float lo = lo_raw > 0.0f ? lo_raw : 0.0f;
  return 0.5f * (up + lo);
}

SC_HD void gaussian4(const U32x4& w, float z[4]) {
  box_muller(w.v[0], w.v[1], &z[0], &z[1]);
  box_muller(w.v[2], w.v[3], &z[2], &z[3]);
}

SC_HD void uniform4(const U32x4& w, float z[4]) {
  SC_UNROLL
  for (int i = 0; i < 4; ++i) z[i] = uniform_unit(w.v[i]);
}

SC_HD void sym4(const U32x4& w, float z[4]) {
  SC_UNROLL
  for (int i = 0; i < 4; ++i) z[i] = uniform_sym(w.v[i]);
}

// kSplit's unit noise is the symmetric u of split_value (antithetic pairs
// use u and -u, i.e. s and 2 lambda - s).
enum NoiseKind : int64_t { kGaussian = 0, kUniform = 1, kSplit = 2 };

// Unit-scale noise of one quad for one row (input b, sample s). In antithetic
// mode rows 2p and 2p+1 share pair p's draw with opposite signs.
SC_HD void unit_noise_quad(uint64_t seed, uint32_t stream, uint32_t input,
                           int64_t sample, bool antithetic, int64_t kind,
                           uint32_t quad, float z[4]) {
  const uint32_t key_sample =
      static_cast<uint32_t>(antithetic ? (sample >> 1) : sample);
  const U32x4 w = noise_words(seed, stream, input, key_sample, quad);
  if (kind == kUniform) {
    uniform4(w, z);
  } else if (kind == kSplit) {
    sym4(w, z);
  } else {
    gaussian4(w, z);
  }
  if (antithetic && (sample & 1)) {
SC_UNROLL
    for (int i = 0; i < 4; ++i) z[i] = -z[i];
  }
}

}  // namespace smoothcert
