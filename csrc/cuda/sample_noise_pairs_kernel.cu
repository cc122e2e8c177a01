// CUDA kernel of smoothcert::sample_noise_pairs. Same per-element math as the
// CPU kernel (common/noise_math.h, --fmad=false): the batch is sample_noise's
// and the dot products are the CPU's bits.
//
// Work split: one thread per pair. It walks the quads of its two rows in
// order, writes both rows and adds z_a[e] * z_b[e] in float64 for e = 0 ..
// D-1, the canonical order of the CPU kernel. (Untuned: neighbouring threads
// write rows D elements apart; a warp-cooperative version would need the
// same fixed order across lanes.)
#include <cuda_runtime.h>
#include <stdint.h>

#include "launch_common.cuh"
#include "sample_noise_pairs_kernel.h"

namespace smoothcert {
namespace {

using cuda_common::kMaxBlocks;
using cuda_common::kThreads;
using cuda_common::store;

template <typename T>
__global__ void __launch_bounds__(kThreads)
pairs_kernel(const SampleNoiseParams p, int64_t pairs, T* __restrict__ out, double* __restrict__ dots) {
  const int64_t half = p.samples / 2;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < pairs; j += step) {
    const int64_t b = j / half;
    const int64_t k = j - b * half;
    const int64_t row = b * p.samples + 2 * k;
    const int64_t s = p.sample_start + 2 * k;
    const auto input = static_cast<uint32_t>(p.ids[b]);
    double dot = 0.0;
    for (int64_t q = 0; 4 * q < p.D; ++q) {
      float za[4], zb[4];
      unit_noise_quad(p.seed, p.stream, input, s, false, p.kind, static_cast<uint32_t>(q), za);
      unit_noise_quad(p.seed, p.stream, input, s + 1, false, p.kind, static_cast<uint32_t>(q), zb);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int64_t e = 4 * q + i;
        if (e < p.D) {
          dot = __dadd_rn(dot, __dmul_rn(static_cast<double>(za[i]), static_cast<double>(zb[i])));
          store(out + out_offset(p, row, e), noisy_value(p, b, e, za[i]));
          store(out + out_offset(p, row + 1, e), noisy_value(p, b, e, zb[i]));
        }
      }
    }
    dots[j] = dot;
  }
}

template <typename T>
cudaError_t launch(const SampleNoiseParams& p, void* out, double* dots, int64_t pairs, cudaStream_t stream) {
  const int64_t blocks = (pairs + kThreads - 1) / kThreads;
  const int grid = static_cast<int>(blocks < kMaxBlocks ? blocks : kMaxBlocks);
  pairs_kernel<T><<<grid, kThreads, 0, stream>>>(p, pairs, static_cast<T*>(out), dots);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_sample_noise_pairs(const SampleNoiseParams& p, void* out, int out_dtype, double* dots,
                                      cudaStream_t stream) {
  const int64_t pairs = p.B * (p.samples / 2);
  if (pairs == 0) return cudaSuccess;
  switch (out_dtype) {
    case kF32: return launch<float>(p, out, dots, pairs, stream);
    case kF16: return launch<__half>(p, out, dots, pairs, stream);
    case kBF16: return launch<__nv_bfloat16>(p, out, dots, pairs, stream);
    case kF64: return launch<double>(p, out, dots, pairs, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace smoothcert
