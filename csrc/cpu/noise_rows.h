// The vectorised float32 row filler of the CPU sample_noise kernel. Included
// by noise_rows_avx2.cpp (compiled for AVX2) and noise_rows_base.cpp
// (baseline x86-64) under different function names; sample_noise.cpp picks
// one at run time. Both perform the same IEEE operations without FMA
// contraction, so they write identical bits.
//
// Structure of arrays: a block of kBlock quads goes through Philox, then
// through Box-Muller (or the uniform map), then into the output, each stage a
// simple loop over the block that the compiler turns into SIMD code.
#include <stdint.h>

#include "../common/sample_noise_params.h"

#ifndef SC_ROWS_NAME
#error "define SC_ROWS_NAME before including noise_rows.h"
#endif

namespace smoothcert {
namespace {

constexpr int64_t kBlock = 16;

template <int64_t Kind, bool PerElementSigma, bool Clamp>
int64_t rows_impl(const SampleNoiseParams& p, int64_t b, float sign, uint32_t input,
                  uint32_t key_sample, float* __restrict out) {
  const float* __restrict x = p.x + b * p.D;
  const float* __restrict sig = p.sigma + b * p.sigma_b_stride;
  const float s0 = sig[0] * sign;
  const float lo = p.clamp_min, hi = p.clamp_max;
  const int64_t blocks = (p.D / 4) / kBlock;
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t q0 = blk * kBlock;
    uint32_t w0[kBlock], w1[kBlock], w2[kBlock], w3[kBlock];
    float z0[kBlock], z1[kBlock], z2[kBlock], z3[kBlock];
#pragma omp simd
    for (int j = 0; j < kBlock; ++j) {
      const U32x4 w = noise_words(p.seed, p.stream, input, key_sample, static_cast<uint32_t>(q0 + j));
      w0[j] = w.v[0];
      w1[j] = w.v[1];
      w2[j] = w.v[2];
      w3[j] = w.v[3];
    }
#pragma omp simd
    for (int j = 0; j < kBlock; ++j) {
      float a0, a1, a2, a3;
      if (Kind == kUniform) {
        a0 = uniform_unit(w0[j]);
        a1 = uniform_unit(w1[j]);
        a2 = uniform_unit(w2[j]);
        a3 = uniform_unit(w3[j]);
      } else {
        box_muller(w0[j], w1[j], &a0, &a1);
        box_muller(w2[j], w3[j], &a2, &a3);
      }
      z0[j] = a0;
      z1[j] = a1;
      z2[j] = a2;
      z3[j] = a3;
    }
    const float* __restrict xb = x + 4 * q0;
    const float* __restrict sb = sig + 4 * q0;
    float* __restrict ob = out + 4 * q0;
#pragma omp simd
    for (int j = 0; j < kBlock; ++j) {
      const float z[4] = {z0[j], z1[j], z2[j], z3[j]};
      SC_UNROLL
      for (int i = 0; i < 4; ++i) {
        const float s = PerElementSigma ? sb[4 * j + i] * sign : s0;
        float v = xb[4 * j + i] + s * z[i];
        if (Clamp) v = v < lo ? lo : (v > hi ? hi : v);
        ob[4 * j + i] = v;
      }
    }
  }
  return blocks * kBlock;
}

}  // namespace

// Fills the leading full blocks of one contiguous float32 row; returns the
// number of quads written (the caller finishes the rest).
int64_t SC_ROWS_NAME(const SampleNoiseParams& p, int64_t b, float sign, uint32_t input,
                     uint32_t key_sample, float* out) {
  const bool per_elem = p.sigma_e_stride != 0;
  if (p.kind == kUniform) {
    if (per_elem) return p.clamp ? rows_impl<kUniform, true, true>(p, b, sign, input, key_sample, out)
                                 : rows_impl<kUniform, true, false>(p, b, sign, input, key_sample, out);
    return p.clamp ? rows_impl<kUniform, false, true>(p, b, sign, input, key_sample, out)
                   : rows_impl<kUniform, false, false>(p, b, sign, input, key_sample, out);
  }
  if (per_elem) return p.clamp ? rows_impl<kGaussian, true, true>(p, b, sign, input, key_sample, out)
                               : rows_impl<kGaussian, true, false>(p, b, sign, input, key_sample, out);
  return p.clamp ? rows_impl<kGaussian, false, true>(p, b, sign, input, key_sample, out)
                 : rows_impl<kGaussian, false, false>(p, b, sign, input, key_sample, out);
}

}  // namespace smoothcert
