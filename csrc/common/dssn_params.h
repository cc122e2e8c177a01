// Deterministic splitting noise (DSSN, Levine & Feizi 2021, §4.1 and
// Corollary 1, Eqs. 47-48 of App. A): the exact integer transform (this
// library's integer form of those equations), shared by the CPU and CUDA
// kernels of smoothcert::dssn_batch, and the plain-C description of one call.
#pragma once
#include <stdint.h>

#include "macros.h"

namespace smoothcert {

struct DssnParams {
  const float* xf;        // [B, D] grid values i / q (float32 input), or
  const uint8_t* xu;      // [B, D] integer pixels (uint8 input); one is null
  const int32_t* v;       // [D] the fixed offset vector, values in [0, L)
  const int64_t* offsets; // [Bo, nb] split offsets b in [0, L), Bo in {1, B}
  int64_t off_b_stride;   // nb if Bo == B else 0
  int64_t B, D, nb;
  int32_t L, q;
  const float* mean;      // [C] or null: fused (value - mean[c]) / std[c]
  const float* std;
  int64_t C, HW;          // channel count and elements per channel
  bool channels_last;     // write [rows, C, H, W] in NHWC memory order
};

// Integer pixel X in {0..q} of element e of input b.
SC_HD int32_t dssn_pixel(const DssnParams& p, int64_t b, int64_t e) {
  if (p.xu != nullptr) return static_cast<int32_t>(p.xu[b * p.D + e]);
  // The binding has checked that x * q is within 1e-3 of an integer.
  const double t = static_cast<double>(p.xf[b * p.D + e]) * static_cast<double>(p.q);
  return static_cast<int32_t>(t + 0.5);
}

// 4q times the noisy value of pixel X under split index k = (v_i + b) mod L:
// the cuts sit at (m L + k + 1/2) / q, the piece holding X / q is
// [max(U - 2L, 0), min(U, 2q)] / (2q) with U = 2 (m L + k) + 1 and
// m = ceil((X - k) / L), and the value is its midpoint.
// m = ceil(n / L) = floor((n + L - 1) / L) for n > -L, taken as the
// truncation of a float quotient of non-negative integers: for L, q < 2^22 a
// non-integer quotient is at least 1 / L below the next integer, more than
// its rounding error, so this is exact, and it vectorises with plain SSE2
// (unlike integer division or ceilf).
SC_HD int32_t dssn_quarter_units(int32_t X, int32_t k, int32_t L, int32_t q) {
  const int32_t n = X - k;
  const int32_t m = static_cast<int32_t>(static_cast<float>(n + L - 1) / static_cast<float>(L));
  const int32_t U = 2 * (m * L + k) + 1;
  const int32_t up = U < 2 * q ? U : 2 * q;
  const int32_t lo = U - 2 * L > 0 ? U - 2 * L : 0;
  return up + lo;
}

// The value written for pixel X with split offset b at element e.
SC_HD float dssn_value(const DssnParams& p, int32_t X, int32_t ve, int64_t off, int64_t e) {
  int32_t k = ve + static_cast<int32_t>(off);
  k = k >= p.L ? k - p.L : k;
  const float val = static_cast<float>(dssn_quarter_units(X, k, p.L, p.q)) /
                    static_cast<float>(4 * p.q);
  if (p.mean == nullptr) return val;
  const int64_t c = e / p.HW;
  return (val - p.mean[c]) / p.std[c];
}

SC_HD int64_t dssn_out_offset(const DssnParams& p, int64_t row, int64_t e) {
  if (!p.channels_last) return row * p.D + e;
  const int64_t c = e / p.HW;
  return row * p.D + (e - c * p.HW) * p.C + c;
}

}  // namespace smoothcert
