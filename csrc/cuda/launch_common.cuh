// Device helpers shared by the elementwise CUDA kernels (included only by .cu files).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

namespace smoothcert {
namespace cuda_common {

constexpr int kThreads = 256;
// Enough blocks to fill any current GPU; the grid-stride loops cover the rest.
constexpr int64_t kMaxBlocks = 65536;

// Round to nearest even, like the CPU kernels' static_cast to c10::Half and
// c10::BFloat16 (torch builds CUDA code without the implicit conversions).
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(double* p, float v) { *p = static_cast<double>(v); }
__device__ __forceinline__ void store(__half* p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void store(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

}  // namespace cuda_common
}  // namespace smoothcert
