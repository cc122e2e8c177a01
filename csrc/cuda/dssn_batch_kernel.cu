// CUDA kernel of smoothcert::dssn_batch. Same integer transform as the CPU
// kernel (common/dssn_params.h), so both write identical bits.
//
// Work split (a choice of this library, not the paper's): one thread per
// (input, element). It reads the pixel and its offset v once and loops over
// the nb split offsets, writing one value per output row; consecutive
// threads take consecutive elements, so every row's stores are coalesced.
// Only C*H*W input bytes are read per image whatever nb is.
#include <cuda_runtime.h>
#include <stdint.h>

#include "launch_common.cuh"
#include "dssn_batch_kernel.h"

namespace smoothcert {
namespace {

using cuda_common::kMaxBlocks;
using cuda_common::kThreads;
using cuda_common::store;

template <typename T>
__global__ void __launch_bounds__(kThreads) dssn_batch_kernel(const DssnParams p, T* __restrict__ out) {
  const int64_t work = p.B * p.D;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < work; i += step) {
    const int64_t b = i / p.D;
    const int64_t e = i - b * p.D;
    const int32_t X = dssn_pixel(p, b, e);
    const int32_t ve = p.v[e];
    const int64_t* off = p.offsets + b * p.off_b_stride;
    for (int64_t j = 0; j < p.nb; ++j) {
      store(out + dssn_out_offset(p, b * p.nb + j, e), dssn_value(p, X, ve, off[j], e));
    }
  }
}

template <typename T>
cudaError_t launch(const DssnParams& p, void* out, cudaStream_t stream) {
  const int64_t work = p.B * p.D;
  const int64_t blocks = (work + kThreads - 1) / kThreads;
  const int grid = static_cast<int>(blocks < kMaxBlocks ? blocks : kMaxBlocks);
  dssn_batch_kernel<T><<<grid, kThreads, 0, stream>>>(p, static_cast<T*>(out));
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_dssn_batch(const DssnParams& p, void* out, int out_dtype, cudaStream_t stream) {
  if (p.B * p.D * p.nb == 0) return cudaSuccess;
  switch (out_dtype) {
    case kF32: return launch<float>(p, out, stream);
    case kF16: return launch<__half>(p, out, stream);
    case kBF16: return launch<__nv_bfloat16>(p, out, stream);
    case kF64: return launch<double>(p, out, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace smoothcert
