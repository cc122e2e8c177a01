// Math of smoothcert::ball_margin shared by the CPU and CUDA kernels: the
// canonical exact distance and the error bound of the fp32 screening.
//
// Exact distance. D(a, b) for float32 rows a, b of length D is computed in
// fp64 in one fixed order: eight lane sums s_j = sum over k = j (mod 8), in
// increasing k, of t_k^2 (p = 2) or |t_k| (p = 1) with t_k = (double)a_k -
// (double)b_k, then ((s0+s1)+(s2+s3))+((s4+s5)+(s6+s7)), then sqrt for p = 2.
// Every operation is a single IEEE rounding (no FMA contraction on either
// side), so the CPU loop, the CUDA kernel's eight cooperating lanes and the
// Python twin give the same bits, and the relative error against the real
// distance is below (D + 4) 2^-53.
//
// Screening (p = 2). ||a - b||^2 = |a|^2 + |b|^2 - 2 a.b with a.b in float32
// in any order (FMA or not) has error at most gamma_D sum_k |a_k b_k| <=
// gamma_D |a||b|, gamma_D = D u / (1 - D u), u = 2^-24 (Higham, Thm 3.1),
// plus 2^-149 per product for underflow; the norms are fp64 sums of exact
// squares. screen_bounds turns that into a guaranteed interval [lo, hi] for
// the real distance, widened by 1e-9 relative so that it also holds the fp64
// exact distance. A pair is recomputed exactly only if its interval could hold
// a minimum, so the kernel's minima are those of the exact distances.
#pragma once
#include <math.h>
#include <stdint.h>

#include "macros.h"

namespace smoothcert {

struct BallParams {
  const float* xq;             // [B, D] queries
  const float* xm;             // [N, D] stored points
  const double* radius;        // [N] stored radii
  const int64_t* mem_class;    // [N] stored classes
  const int64_t* query_class;  // [B] query classes, -1 = every stored point counts
  int64_t B, N, D;
  int p;                       // 1 or 2
};

constexpr int kBallLanes = 8;

SC_HD double ball_lane_total(const double* s) {
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

// The lane-j partial sum of the canonical distance (see the header comment).
SC_HD double ball_lane_sum(const float* a, const float* b, int64_t D, int p, int j) {
  double s = 0.0;
  for (int64_t k = j; k < D; k += kBallLanes) {
    const double t = static_cast<double>(a[k]) - static_cast<double>(b[k]);
    s += p == 2 ? t * t : fabs(t);
  }
  return s;
}

SC_HD double ball_finish(double total, int p) { return p == 2 ? sqrt(total) : total; }

// Bounds [lo, hi] of the real L2 distance from a float32 dot product `dot`
// and the fp64 squared norms qn, mn (screening error bound above). Non-finite
// screening values give [0, inf]: the pair is always recomputed exactly.
SC_HD void ball_screen_bounds(float dot, double qn, double mn, int64_t D, double* lo, double* hi) {
  const double u32 = 5.9604644775390625e-08;  // 2^-24
  const double u64 = 1.1102230246251565e-16;  // 2^-53
  const double nu = static_cast<double>(D) * u32;
  const double gamma = nu / (1.0 - nu);
  const double d2 = qn + mn - 2.0 * static_cast<double>(dot);
  const double err = 2.0 * gamma * sqrt(qn * mn) * (1.0 + 1e-6) +
                     (static_cast<double>(D) + 8.0) * u64 * 4.0 * (qn + mn) +
                     static_cast<double>(D) * 4.0e-45;
  const double lo2 = d2 - err, hi2 = d2 + err;
  if (!(isfinite(lo2) && isfinite(hi2))) {
    *lo = 0.0;
    *hi = INFINITY;
    return;
  }
  *lo = lo2 > 0.0 ? sqrt(lo2) * (1.0 - 1e-9) : 0.0;
  *hi = sqrt(hi2 > 0.0 ? hi2 : 0.0) * (1.0 + 1e-9) + 1e-300;
}

// (value, index) lexicographic minimum: the smaller value, ties to the lower
// index (values are finite; "none" is (+inf, -1)).
SC_HD bool ball_better(double v, int64_t i, double best_v, int64_t best_i) {
  return v < best_v || (v == best_v && i < best_i);
}

}  // namespace smoothcert
