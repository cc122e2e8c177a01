// CUDA kernel of smoothcert::sample_noise. Same per-element math as the CPU
// kernel (common/noise_math.h, compiled with --fmad=false), so the noise is
// bit-identical to the CPU build's.
//
// Work split: one thread per (row, quad). A quad is the 4 consecutive
// elements that one Philox call covers; its counter is (quad, sample or
// antithetic pair, input id, stream), so a thread needs nothing but its own
// coordinates and threads never share draws. Consecutive threads take
// consecutive quads of a row, which keeps the x/sigma loads and the
// (contiguous-layout) stores coalesced. Indices are 64-bit: B * samples * D
// passes 2^31 for ordinary image batches.
#include <cuda_runtime.h>
#include <stdint.h>

#include "launch_common.cuh"
#include "sample_noise_kernel.h"

namespace smoothcert {
namespace {

using cuda_common::kMaxBlocks;
using cuda_common::kThreads;
using cuda_common::store;

template <typename T>
__global__ void __launch_bounds__(kThreads)
sample_noise_kernel(const SampleNoiseParams p, int64_t quads, int64_t work, T* __restrict__ out) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < work;
       i += step) {
    const int64_t row = i / quads;
    const int64_t q = i - row * quads;
    const int64_t b = row / p.samples;
    const int64_t s = p.sample_start + (row - b * p.samples);
    float z[4];
    unit_noise_quad(p.seed, p.stream, static_cast<uint32_t>(p.ids[b]), s, p.antithetic, p.kind,
                    static_cast<uint32_t>(q), z);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const int64_t e = 4 * q + k;
      if (e < p.D) store(out + out_offset(p, row, e), noisy_value(p, b, e, z[k]));
    }
  }
}

template <typename T>
cudaError_t launch(const SampleNoiseParams& p, void* out, int64_t quads, int64_t work,
                   cudaStream_t stream) {
  const int64_t blocks = (work + kThreads - 1) / kThreads;
  const int grid = static_cast<int>(blocks < kMaxBlocks ? blocks : kMaxBlocks);
  sample_noise_kernel<T><<<grid, kThreads, 0, stream>>>(p, quads, work, static_cast<T*>(out));
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_sample_noise(const SampleNoiseParams& p, void* out, int out_dtype,
                                cudaStream_t stream) {
  const int64_t quads = (p.D + 3) / 4;
  const int64_t work = p.B * p.samples * quads;
  if (work == 0) return cudaSuccess;
  switch (out_dtype) {
    case kF32: return launch<float>(p, out, quads, work, stream);
    case kF16: return launch<__half>(p, out, quads, work, stream);
    case kBF16: return launch<__nv_bfloat16>(p, out, quads, work, stream);
    case kF64: return launch<double>(p, out, quads, work, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace smoothcert
