// Plain-C description of one sample_noise call, filled by the torch-facing
// binding and read by the CPU and CUDA kernels (which stay free of torch
// headers on the CUDA side).
#pragma once
#include <stdint.h>

#include "macros.h"
#include "noise_math.h"

namespace smoothcert {

struct SampleNoiseParams {
  const float* x;         // [B, D] clean inputs, contiguous
  const int64_t* ids;     // [B] input indices that key the noise
  const float* sigma;     // [Bs, Ds] with Bs in {1, B}, Ds in {1, D}
  int64_t sigma_b_stride;  // Ds if Bs == B else 0
  int64_t sigma_e_stride;  // 1 if Ds == D else 0
  int64_t B, D;
  int64_t samples;        // rows per input in this call
  int64_t sample_start;   // index of this call's first sample
  uint64_t seed;
  uint32_t stream;
  int64_t kind;           // NoiseKind
  bool antithetic;
  bool clamp;
  float clamp_min, clamp_max;
  bool channels_last;     // write [rows, C, H, W] in NHWC memory order
  int64_t C, HW;          // only for channels_last
};

// Value written for element e of output row `row` (= b * samples + j).
SC_HD float noisy_value(const SampleNoiseParams& p, int64_t b, int64_t e,
                        float z) {
  const float s = p.sigma[b * p.sigma_b_stride + e * p.sigma_e_stride];
  float v = p.kind == kSplit ? split_value(p.x[b * p.D + e], s, z) : p.x[b * p.D + e] + s * z;
  if (p.clamp) v = v < p.clamp_min ? p.clamp_min : (v > p.clamp_max ? p.clamp_max : v);
  return v;
}

SC_HD int64_t out_offset(const SampleNoiseParams& p, int64_t row, int64_t e) {
  if (!p.channels_last) return row * p.D + e;
  const int64_t c = e / p.HW;
  return row * p.D + (e - c * p.HW) * p.C + c;
}

}  // namespace smoothcert
