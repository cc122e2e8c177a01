// First-maximum argmax of one logits row, shared by the CPU and CUDA kernels.
// NaN compares as the maximum (and the first NaN wins), matching torch.argmax,
// so every backend and the reference agree exactly.
#pragma once
#include <stdint.h>

#include "macros.h"

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

namespace smoothcert {

// Logit in the precision it is compared in: float64 stays float64 (so distinct
// doubles never tie), everything else becomes float. torch compiles CUDA code with __CUDA_NO_HALF_CONVERSIONS__
// and __CUDA_NO_BFLOAT16_CONVERSIONS__, so the CUDA half types go through
// their intrinsics; every other type (c10::Half included) uses static_cast.
template <typename T>
SC_HD float to_float(T v) {
  return static_cast<float>(v);
}
SC_HD double to_float(double v) { return v; }
#if defined(__CUDACC__)
SC_HD float to_float(__half v) { return __half2float(v); }
SC_HD float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
#endif

// First-maximum argmax of one row in a single branch-free pass; *nonfinite
// is set if any logit is NaN or +-inf (v - v is NaN exactly then). A value is
// taken if it is larger, or if it is the first NaN (once the best is NaN no
// comparison succeeds), which is torch.argmax's rule.
template <typename T>
SC_HD int64_t row_argmax(const T* row, int64_t K, bool* nonfinite) {
  int64_t best = 0;
  auto bv = to_float(row[0]);
  bool bad = !(bv - bv == 0);
  for (int64_t k = 1; k < K; ++k) {
    const auto v = to_float(row[k]);
    const bool take = (v > bv) | ((v != v) & (bv == bv));
    best = take ? k : best;
    bv = take ? v : bv;
    bad |= !(v - v == 0);
  }
  *nonfinite = bad;
  return best;
}

}  // namespace smoothcert
