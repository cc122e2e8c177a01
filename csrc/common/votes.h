// First-maximum argmax of one logits row, shared by the CPU and CUDA kernels.
// NaN compares as the maximum (and the first NaN wins), matching torch.argmax,
// so every backend and the reference agree exactly.
#pragma once
#include <stdint.h>

#include "macros.h"

namespace smoothcert {

template <typename T>
SC_HD int64_t row_argmax(const T* row, int64_t K) {
  int64_t best = 0;
  float bv = static_cast<float>(row[0]);
  if (bv != bv) return 0;
  for (int64_t k = 1; k < K; ++k) {
    const float v = static_cast<float>(row[k]);
    if (v != v) return k;
    if (v > bv) {
      bv = v;
      best = k;
    }
  }
  return best;
}

}  // namespace smoothcert
