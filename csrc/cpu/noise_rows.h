// The vectorised float32 row filler of the CPU sample_noise kernel. Included
// by noise_rows_{avx512,avx2,base}.cpp, each compiled for its instruction set
// under its own function name; sample_noise.cpp picks one at run time. All
// perform the same IEEE operations without FMA contraction, so they write
// identical bits.
//
// Structure of arrays: a block of kBlock quads of two rows (consecutive
// samples of one input, so they share x and sigma) goes through Philox
// (philox_simd.h), then through Box-Muller (or the uniform map), then into the
// output, each stage a simple loop over the block that the compiler turns into
// SIMD code. Two rows give the core two independent chains at each stage.
#include <stdint.h>

#include "../common/sample_noise_params.h"
#include "philox_simd.h"

#if !defined(SC_ROWS_NAME) || !defined(SC_ROWS_ISA)
#error "define SC_ROWS_NAME and SC_ROWS_ISA before including noise_rows.h"
#endif

namespace smoothcert {
namespace {

// Unit noise of kRows * kBlock quads: lane r * kBlock + j of z0..z3 holds the
// four values of quad q0 + j of sample key[r].
template <int64_t Kind, int kRows>
SC_HD void block_noise(const SampleNoiseParams& p, uint32_t input, const uint32_t* key, uint32_t q0,
                       float* __restrict z0, float* __restrict z1, float* __restrict z2,
                       float* __restrict z3) {
  constexpr int kN = kRows * kBlock;
  alignas(64) uint32_t w0[kN], w1[kN], w2[kN], w3[kN];
  philox_block<kRows>(p.seed, p.stream, input, key, q0, w0, w1, w2, w3);
#pragma omp simd
  for (int j = 0; j < kN; ++j) {
    float a0, a1, a2, a3;
    if (Kind == kUniform) {
      a0 = uniform_unit(w0[j]);
      a1 = uniform_unit(w1[j]);
      a2 = uniform_unit(w2[j]);
      a3 = uniform_unit(w3[j]);
    } else if (Kind == kSplit) {
      a0 = uniform_sym(w0[j]);
      a1 = uniform_sym(w1[j]);
      a2 = uniform_sym(w2[j]);
      a3 = uniform_sym(w3[j]);
    } else {
      box_muller(w0[j], w1[j], &a0, &a1);
      box_muller(w2[j], w3[j], &a2, &a3);
    }
    z0[j] = a0;
    z1[j] = a1;
    z2[j] = a2;
    z3[j] = a3;
  }
}

// out[4j + i] = clamp(x[4j + i] + sign * sigma * z_i[j]) for the kBlock quads
// of one row (x, sig and out already point at the block's first element).
// Splitting noise needs the positive sigma, so its sign goes on z instead.
template <int64_t Kind, bool PerElementSigma, bool Clamp>
SC_HD void store_block(const SampleNoiseParams& p, const float* __restrict x, const float* __restrict sig,
                       float s0, float sign, const float* __restrict z0, const float* __restrict z1,
                       const float* __restrict z2, const float* __restrict z3, float* __restrict out) {
  const float lo = p.clamp_min, hi = p.clamp_max;
#pragma omp simd
  for (int j = 0; j < kBlock; ++j) {
    const float z[4] = {z0[j], z1[j], z2[j], z3[j]};
    SC_UNROLL
    for (int i = 0; i < 4; ++i) {
      float v;
      if (Kind == kSplit) {
        v = split_value(x[4 * j + i], PerElementSigma ? sig[4 * j + i] : s0, sign * z[i]);
      } else {
        const float s = PerElementSigma ? sig[4 * j + i] * sign : s0;
        v = x[4 * j + i] + s * z[i];
      }
      if (Clamp) v = v < lo ? lo : (v > hi ? hi : v);
      out[4 * j + i] = v;
    }
  }
}

SC_HD uint32_t row_key(const SampleNoiseParams& p, int64_t s) {
  return static_cast<uint32_t>(p.antithetic ? (s >> 1) : s);
}

SC_HD float row_sign(const SampleNoiseParams& p, int64_t s) {
  return (p.antithetic && (s & 1)) ? -1.0f : 1.0f;
}

// The shared sigma of a row with one sigma per input: sign-folded for the
// additive kinds, positive for splitting noise.
SC_HD float scalar_sigma(int64_t kind, const float* sig, float sign) {
  return kind == kSplit ? sig[0] : sig[0] * sign;
}

template <int64_t Kind, bool PerElementSigma, bool Clamp>
int64_t rows_impl(const SampleNoiseParams& p, int64_t b, int64_t s_begin, int64_t s_end,
                  float* __restrict out) {
  const float* __restrict x = p.x + b * p.D;
  const float* __restrict sig = p.sigma + b * p.sigma_b_stride;
  const auto input = static_cast<uint32_t>(p.ids[b]);
  const int64_t blocks = (p.D / 4) / kBlock;
  alignas(64) float z0[2 * kBlock], z1[2 * kBlock], z2[2 * kBlock], z3[2 * kBlock];
  for (int64_t s = s_begin; s < s_end; s += 2) {
    float* __restrict oa = out + (s - s_begin) * p.D;
    const bool two = s + 1 < s_end;
    const uint32_t keys[2] = {row_key(p, s), row_key(p, s + 1)};
    const float sign_a = row_sign(p, s), sign_b = row_sign(p, s + 1);
    // An antithetic pair inside the range shares one draw.
    const bool shared = two && keys[0] == keys[1];
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t q0 = blk * kBlock;
      const auto q = static_cast<uint32_t>(q0);
      if (two && !shared) {
        block_noise<Kind, 2>(p, input, keys, q, z0, z1, z2, z3);
      } else {
        block_noise<Kind, 1>(p, input, keys, q, z0, z1, z2, z3);
      }
      store_block<Kind, PerElementSigma, Clamp>(p, x + 4 * q0, sig + 4 * q0, scalar_sigma(Kind, sig, sign_a),
                                                sign_a, z0, z1, z2, z3, oa + 4 * q0);
      if (two) {
        const int64_t o = shared ? 0 : kBlock;
        store_block<Kind, PerElementSigma, Clamp>(p, x + 4 * q0, sig + 4 * q0, scalar_sigma(Kind, sig, sign_b),
                                                  sign_b, z0 + o, z1 + o, z2 + o, z3 + o, oa + p.D + 4 * q0);
      }
    }
  }
  return blocks * kBlock;
}

}  // namespace

// Fills the leading full blocks of the rows of samples [s_begin, s_end) of
// input b (contiguous float32 rows of D elements; out is the row of s_begin);
// returns the number of quads written per row (the caller finishes the rest).
int64_t SC_ROWS_NAME(const SampleNoiseParams& p, int64_t b, int64_t s_begin, int64_t s_end, float* out) {
  const bool per_elem = p.sigma_e_stride != 0;
  if (p.kind == kSplit) {
    if (per_elem) return p.clamp ? rows_impl<kSplit, true, true>(p, b, s_begin, s_end, out)
                                 : rows_impl<kSplit, true, false>(p, b, s_begin, s_end, out);
    return p.clamp ? rows_impl<kSplit, false, true>(p, b, s_begin, s_end, out)
                   : rows_impl<kSplit, false, false>(p, b, s_begin, s_end, out);
  }
  if (p.kind == kUniform) {
    if (per_elem) return p.clamp ? rows_impl<kUniform, true, true>(p, b, s_begin, s_end, out)
                                 : rows_impl<kUniform, true, false>(p, b, s_begin, s_end, out);
    return p.clamp ? rows_impl<kUniform, false, true>(p, b, s_begin, s_end, out)
                   : rows_impl<kUniform, false, false>(p, b, s_begin, s_end, out);
  }
  if (per_elem) return p.clamp ? rows_impl<kGaussian, true, true>(p, b, s_begin, s_end, out)
                               : rows_impl<kGaussian, true, false>(p, b, s_begin, s_end, out);
  return p.clamp ? rows_impl<kGaussian, false, true>(p, b, s_begin, s_end, out)
                 : rows_impl<kGaussian, false, false>(p, b, s_begin, s_end, out);
}

}  // namespace smoothcert
