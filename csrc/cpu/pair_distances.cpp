// CPU kernel of smoothcert::pair_distances: the dense [B, N] matrix of exact
// L2 distances, kept only where a pair is closer than the sum of its reaches
// (+inf elsewhere) -- the conflict graph and LP constraints of sample-wise
// smoothing's robust regions (Wang et al., §4.2 Algorithm 2 and App. C).
//
// Work split: tasks of 4 row points x 256 column points. A task screens its
// pairs with float32 dot products (ball_dots.h, 32 columns at a time) and the
// rigorous interval of common/ball_math.h, and recomputes exactly only the
// pairs whose interval reaches below the threshold; the kept values are the
// canonical fp64 distances, compared with the threshold exactly, so the
// matrix has the same bits on every backend and for any thread count.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../pair_distances_args.h"
#include "ball_dots.h"
#include "ball_exact.h"

namespace smoothcert {
namespace {

constexpr int64_t kRows = 4;
constexpr int64_t kColBlock = 32;
constexpr int64_t kColsPerTask = 256;

void run_task(const PairParams& p, const double* qn, const double* mn, BallDotsFn dots, int64_t b0, int64_t c0,
              int64_t c1) {
  const int64_t nq = std::min(kRows, p.B - b0);
  const float* q[4];
  for (int j = 0; j < 4; ++j) q[j] = p.xq + (b0 + std::min<int64_t>(j, nq - 1)) * p.D;
  float dot[kColBlock * 4];
  for (int64_t m0 = c0; m0 < c1; m0 += kColBlock) {
    const int64_t cols = std::min(kColBlock, c1 - m0);
    dots(q, p.xm + m0 * p.D, cols, p.D, dot);
    for (int64_t r = 0; r < cols; ++r) {
      const int64_t i = m0 + r;
      for (int64_t j = 0; j < nq; ++j) {
        const int64_t b = b0 + j;
        const double thr = p.reach_q[b] + p.reach_m[i];
        double lo, hi;
        ball_screen_bounds(dot[r * 4 + j], qn[b], mn[i], p.D, &lo, &hi);
        if (!(lo < thr)) continue;
        const double d = exact_distance<2>(p.xq + b * p.D, p.xm + i * p.D, p.D);
        if (d < thr) p.out[b * p.N + i] = d;
      }
    }
  }
}

at::Tensor pair_distances_cpu(const at::Tensor& xq, const at::Tensor& xm, const at::Tensor& reach_q,
                              const at::Tensor& reach_m) {
  at::Tensor xq_c, xm_c, rq_c, rm_c, out;
  const PairParams p = prepare_pair_distances(xq, xm, reach_q, reach_m, xq_c, xm_c, rq_c, rm_c, out);
  if (p.B == 0 || p.N == 0) return out;
  std::vector<double> qn(p.B), mn(p.N);
  at::parallel_for(0, p.B + p.N, 64, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      if (i < p.B) qn[i] = squared_norm(p.xq + i * p.D, p.D);
      else mn[i - p.B] = squared_norm(p.xm + (i - p.B) * p.D, p.D);
    }
  });
  const BallDotsFn dots = pick_ball_dots();
  const int64_t row_tasks = (p.B + kRows - 1) / kRows, col_tasks = (p.N + kColsPerTask - 1) / kColsPerTask;
  at::parallel_for(0, row_tasks * col_tasks, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t c0 = (t % col_tasks) * kColsPerTask;
      run_task(p, qn.data(), mn.data(), dots, (t / col_tasks) * kRows, c0, std::min(p.N, c0 + kColsPerTask));
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(smoothcert, CPU, m) { m.impl("pair_distances", &pair_distances_cpu); }

}  // namespace smoothcert
