// AVX2 + FMA build of the screening dot products (see ball_dots.h): a 4 x 2
// register tile (4 queries, 2 stored rows, 8 lanes each), so each k step loads
// 6 vectors for 8 FMAs.
#include "ball_dots.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC target("avx2,fma")
#include <immintrin.h>

namespace smoothcert {
namespace {

inline float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}

}  // namespace

void ball_dots_avx2(const float* const q[4], const float* m, int64_t rows, int64_t D, float* out) {
  const int64_t Dv = D & ~int64_t(7);
  int64_t r = 0;
  for (; r + 2 <= rows; r += 2) {
    const float* m0 = m + r * D;
    const float* m1 = m0 + D;
    __m256 a[4][2];
    for (int j = 0; j < 4; ++j) a[j][0] = a[j][1] = _mm256_setzero_ps();
    for (int64_t k = 0; k < Dv; k += 8) {
      const __m256 v0 = _mm256_loadu_ps(m0 + k), v1 = _mm256_loadu_ps(m1 + k);
      for (int j = 0; j < 4; ++j) {
        const __m256 w = _mm256_loadu_ps(q[j] + k);
        a[j][0] = _mm256_fmadd_ps(w, v0, a[j][0]);
        a[j][1] = _mm256_fmadd_ps(w, v1, a[j][1]);
      }
    }
    for (int j = 0; j < 4; ++j) {
      float s0 = hsum(a[j][0]), s1 = hsum(a[j][1]);
      for (int64_t k = Dv; k < D; ++k) {
        s0 += q[j][k] * m0[k];
        s1 += q[j][k] * m1[k];
      }
      out[r * 4 + j] = s0;
      out[(r + 1) * 4 + j] = s1;
    }
  }
  if (r < rows) ball_dots_base(q, m + r * D, rows - r, D, out + r * 4);
}

}  // namespace smoothcert
#else
namespace smoothcert {
void ball_dots_avx2(const float* const q[4], const float* m, int64_t rows, int64_t D, float* out) {
  ball_dots_base(q, m, rows, D, out);
}
}  // namespace smoothcert
#endif
