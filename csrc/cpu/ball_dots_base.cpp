// Portable build of the screening dot products (see ball_dots.h), and the
// run-time choice between it and the AVX2 build.
#include <cstdlib>

#include "ball_dots.h"
#include "ball_exact.h"

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

BallDotsFn pick_ball_dots() {
  const char* force = std::getenv("SMOOTHCERT_CPU_BASELINE");
  if (force != nullptr && force[0] == '1') return &ball_dots_base;
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return &ball_dots_avx2;
#endif
  return &ball_dots_base;
}

}  // namespace smoothcert
