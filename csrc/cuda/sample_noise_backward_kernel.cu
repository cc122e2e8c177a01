// CUDA kernel of smoothcert::sample_noise_backward (common/noise_backward.h
// gives the sums and their order, shared with the CPU kernel).
//
// Stage 1: one thread per (sample chunk, input, quad) regenerates the quad's
// unit noise for every sample of its chunk (the forward's Philox counters)
// and sums g and g * eps in double; with one chunk it writes the result,
// otherwise a [chunks, B, D] partial. Stage 2: one thread per (input,
// element) adds the chunks in order. No atomics, so the result is
// deterministic and equal to the CPU kernel's.
#include <cuda_runtime.h>
#include <stdint.h>

#include "../common/noise_backward.h"
#include "launch_common.cuh"
#include "sample_noise_backward_kernel.h"

namespace smoothcert {
namespace {

using cuda_common::kMaxBlocks;
using cuda_common::kThreads;

__global__ void __launch_bounds__(kThreads)
chunk_sums(const SampleNoiseParams p, const float* __restrict grad, int64_t quads, int64_t work,
           double* __restrict out_x, double* __restrict out_s) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < work; i += step) {
    const int64_t q = i % quads;
    const int64_t cb = i / quads;  // chunk * B + b
    const int64_t b = cb % p.B;
    const int64_t c = cb / p.B;
    const int64_t j0 = c * kBackwardChunk;
    const int64_t j1 = j0 + kBackwardChunk < p.samples ? j0 + kBackwardChunk : p.samples;
    double ax[4] = {0, 0, 0, 0}, as[4] = {0, 0, 0, 0};
    for (int64_t j = j0; j < j1; ++j) {
      float z[4];
      unit_noise_quad(p.seed, p.stream, static_cast<uint32_t>(p.ids[b]), p.sample_start + j, p.antithetic,
                      p.kind, static_cast<uint32_t>(q), z);
      const float* g = grad + (b * p.samples + j) * p.D;
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const int64_t e = 4 * q + k;
        if (e < p.D && unclamped(p, b, e, z[k])) {
          ax[k] += static_cast<double>(g[e]);
          as[k] += static_cast<double>(g[e]) * static_cast<double>(z[k]);
        }
      }
    }
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const int64_t e = 4 * q + k;
      if (e < p.D) {
        out_x[cb * p.D + e] = ax[k];
        out_s[cb * p.D + e] = as[k];
      }
    }
  }
}

__global__ void __launch_bounds__(kThreads)
add_chunks(int64_t chunks, int64_t n, const double* __restrict part_x, const double* __restrict part_s,
           double* __restrict grad_x, double* __restrict grad_s) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    double tx = 0.0, ts = 0.0;
    for (int64_t c = 0; c < chunks; ++c) {
      tx += part_x[c * n + i];
      ts += part_s[c * n + i];
    }
    grad_x[i] = tx;
    grad_s[i] = ts;
  }
}

int grid_for(int64_t work) {
  const int64_t blocks = (work + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < kMaxBlocks ? blocks : kMaxBlocks);
}

}  // namespace

cudaError_t launch_sample_noise_backward(const SampleNoiseParams& p, const float* grad, double* grad_x,
                                         double* grad_sigma, double* partial, cudaStream_t stream) {
  const int64_t n = p.B * p.D;
  if (n == 0) return cudaSuccess;
  const int64_t chunks = backward_chunks(p.samples);
  const int64_t quads = (p.D + 3) / 4;
  if (chunks <= 1) {
    // Zero samples leave zero gradients; one chunk writes the result directly.
    const int64_t work = p.B * quads;
    chunk_sums<<<grid_for(work), kThreads, 0, stream>>>(p, grad, quads, work, grad_x, grad_sigma);
    return cudaGetLastError();
  }
  const int64_t work = chunks * p.B * quads;
  double* part_x = partial;
  double* part_s = partial + chunks * n;
  chunk_sums<<<grid_for(work), kThreads, 0, stream>>>(p, grad, quads, work, part_x, part_s);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  add_chunks<<<grid_for(n), kThreads, 0, stream>>>(chunks, n, part_x, part_s, grad_x, grad_sigma);
  return cudaGetLastError();
}

}  // namespace smoothcert
