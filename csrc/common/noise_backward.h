// Shared pieces of the sample_noise backward (CPU and CUDA): the fixed sample
// chunking of its sums and the clamp test of one regenerated value.
//
// grad_x[b, e] = sum_j g[b, j, e] * inside(b, j, e) and grad_sigma[b, e] =
// sum_j g[b, j, e] * eps[b, j, e] * inside(b, j, e), with eps regenerated from
// the forward's counters. Every product of two floats is exact in double, and
// both backends add them in one order: within chunks of kBackwardChunk
// consecutive samples, then chunk by chunk. So CPU and CUDA give the same
// bits, whatever the thread count or grid.
#pragma once
#include <stdint.h>

#include "macros.h"
#include "sample_noise_params.h"

namespace smoothcert {

constexpr int64_t kBackwardChunk = 256;

SC_HD int64_t backward_chunks(int64_t samples) { return (samples + kBackwardChunk - 1) / kBackwardChunk; }

// Whether the forward's value for (b, e) with unit noise z was left unclamped:
// the value is recomputed with the forward's float32 operations.
SC_HD bool unclamped(const SampleNoiseParams& p, int64_t b, int64_t e, float z) {
  if (!p.clamp) return true;
  const float s = p.sigma[b * p.sigma_b_stride + e * p.sigma_e_stride];
  const float v = p.x[b * p.D + e] + s * z;
  return v >= p.clamp_min && v <= p.clamp_max;
}

}  // namespace smoothcert
