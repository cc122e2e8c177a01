// Portable build of the screening dot products (see ball_dots.h).
#include "ball_dots.h"

namespace smoothcert {

void ball_dots_base(const float* const q[4], const float* m, int64_t rows, int64_t D, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* mr = m + r * D;
    for (int j = 0; j < 4; ++j) {
      const float* qj = q[j];
      float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
      for (int64_t k = 0; k < D; ++k) acc += qj[k] * mr[k];
      out[r * 4 + j] = acc;
    }
  }
}

}  // namespace smoothcert
