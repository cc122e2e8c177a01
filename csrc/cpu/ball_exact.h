// The canonical exact fp64 distance and the fp64 squared norm on the CPU,
// shared by the ball_margin and pair_distances kernels (the order of the
// sums is fixed by common/ball_math.h, so both give the CUDA kernels' bits).
#pragma once
#include <stdint.h>

#include "../common/ball_math.h"
#include "ball_dots.h"

namespace smoothcert {

// Lane j of the 8 accumulates k = j (mod 8) in increasing k; the inner loop
// over lanes vectorises without reassociation.
template <int P>
inline double exact_distance(const float* __restrict a, const float* __restrict b, int64_t D) {
  double s[kBallLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  const int64_t Dv = D & ~int64_t(kBallLanes - 1);
  for (int64_t k = 0; k < Dv; k += kBallLanes) {
#pragma omp simd
    for (int j = 0; j < kBallLanes; ++j) {
      const double t = static_cast<double>(a[k + j]) - static_cast<double>(b[k + j]);
      s[j] += P == 2 ? t * t : (t < 0 ? -t : t);
    }
  }
  for (int64_t k = Dv; k < D; ++k) {
    const double t = static_cast<double>(a[k]) - static_cast<double>(b[k]);
    s[k - Dv] += P == 2 ? t * t : (t < 0 ? -t : t);
  }
  return ball_finish(ball_lane_total(s), P);
}

inline double squared_norm(const float* a, int64_t D) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t k = 0; k < D; ++k) s += static_cast<double>(a[k]) * static_cast<double>(a[k]);
  return s;
}

// The screening kernel the CPU build uses: AVX2+FMA when the CPU has it,
// else the portable one (SMOOTHCERT_CPU_BASELINE=1 forces the portable one).
BallDotsFn pick_ball_dots();

}  // namespace smoothcert
