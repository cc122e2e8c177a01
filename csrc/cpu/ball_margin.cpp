// CPU kernel of smoothcert::ball_margin: for each query, the minimum over
// stored points of another class of (distance - stored radius), and the
// nearest stored point, both as exact fp64 distances (common/ball_math.h).
//
// Work split: tasks of (a block of up to 32 queries) x (a contiguous range of
// stored rows), enough of them to occupy every thread even for one query.
// Inside a task, blocks of 32 stored rows meet tiles of 4 queries in the
// float32 screening kernel (ball_dots.h; both blocks stay in L2), and a pair
// is recomputed exactly only if its screening interval could hold a minimum:
// the running threshold is the best upper bound seen so far, so a task
// recomputes few pairs beyond the record lows. For p = 1 there is no
// screening and every pair is exact. Each task keeps its own minima; they
// are merged in task order by (value, index), so the result does not depend
// on the number of threads.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <tuple>
#include <vector>

#include "../ball_margin_args.h"
#include "ball_dots.h"
#include "ball_exact.h"

namespace smoothcert {
namespace {

constexpr int64_t kQueryBlock = 32;
constexpr int64_t kRowBlock = 32;
constexpr int64_t kMinRowsPerTask = 256;

struct Best {
  double v = std::numeric_limits<double>::infinity();
  int64_t i = -1;
  void offer(double value, int64_t index) {
    if (ball_better(value, index, v, i)) {
      v = value;
      i = index;
    }
  }
};

// Per-query state of one task.
struct QueryState {
  double u_near = std::numeric_limits<double>::infinity();
  double u_margin = std::numeric_limits<double>::infinity();
  Best near, margin;
};

// One (query, stored row) pair with screening interval [lo, hi] of its distance.
template <int P>
inline void visit(const BallParams& p, int64_t b, int64_t i, double lo, double hi, QueryState& st) {
  st.u_near = std::min(st.u_near, hi);
  const bool need_near = lo <= st.u_near;
  const bool eligible = p.mem_class[i] != p.query_class[b];
  const double r = p.radius[i];
  if (eligible) st.u_margin = std::min(st.u_margin, hi - r);
  const bool need_margin = eligible && lo - r <= st.u_margin;
  if (!(need_near || need_margin)) return;
  const double d = exact_distance<P>(p.xq + b * p.D, p.xm + i * p.D, p.D);
  if (need_near) {
    st.near.offer(d, i);
    st.u_near = std::min(st.u_near, d);
  }
  if (need_margin) {
    const double m = d - r;
    st.margin.offer(m, i);
    st.u_margin = std::min(st.u_margin, m);
  }
}

void run_task(const BallParams& p, const std::vector<double>& qn, const std::vector<double>& mn, BallDotsFn dots,
              int64_t b0, int64_t b1, int64_t r0, int64_t r1, QueryState* st) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  if (p.p == 1) {
    for (int64_t i = r0; i < r1; ++i)
      for (int64_t b = b0; b < b1; ++b) visit<1>(p, b, i, 0.0, kInf, st[b - b0]);
    return;
  }
  float out[kRowBlock * 4];
  for (int64_t m0 = r0; m0 < r1; m0 += kRowBlock) {
    const int64_t rows = std::min(kRowBlock, r1 - m0);
    for (int64_t t0 = b0; t0 < b1; t0 += 4) {
      const int64_t nq = std::min<int64_t>(4, b1 - t0);
      const float* q[4];
      for (int j = 0; j < 4; ++j) q[j] = p.xq + (t0 + std::min<int64_t>(j, nq - 1)) * p.D;
      dots(q, p.xm + m0 * p.D, rows, p.D, out);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t i = m0 + r;
        for (int64_t j = 0; j < nq; ++j) {
          const int64_t b = t0 + j;
          double lo, hi;
          ball_screen_bounds(out[r * 4 + j], qn[b], mn[i], p.D, &lo, &hi);
          visit<2>(p, b, i, lo, hi, st[b - b0]);
        }
      }
    }
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> ball_margin_cpu(
    const at::Tensor& xq, const at::Tensor& xm, const at::Tensor& radius, const at::Tensor& mem_class,
    const at::Tensor& query_class, int64_t norm) {
  at::Tensor xq_c, xm_c, r_c, mc_c, qc_c, margin, margin_idx, nearest, nearest_idx;
  const BallParams p = prepare_ball_margin(xq, xm, radius, mem_class, query_class, norm, xq_c, xm_c, r_c, mc_c,
                                           qc_c);
  empty_ball_outputs(xq, margin, margin_idx, nearest, nearest_idx);
  if (p.B == 0 || p.N == 0) return {margin, margin_idx, nearest, nearest_idx};
  std::vector<double> qn(p.p == 2 ? p.B : 0), mn(p.p == 2 ? p.N : 0);
  if (p.p == 2) {
    at::parallel_for(0, p.B + p.N, 64, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        if (i < p.B) qn[i] = squared_norm(p.xq + i * p.D, p.D);
        else mn[i - p.B] = squared_norm(p.xm + (i - p.B) * p.D, p.D);
      }
    });
  }
  const int64_t query_blocks = (p.B + kQueryBlock - 1) / kQueryBlock;
  const int64_t want = std::max<int64_t>(1, (4 * at::get_num_threads() + query_blocks - 1) / query_blocks);
  const int64_t splits = std::min(want, std::max<int64_t>(1, p.N / kMinRowsPerTask));
  const int64_t rows_per = (p.N + splits - 1) / splits;
  std::vector<QueryState> state(static_cast<size_t>(splits * p.B));
  const BallDotsFn dots = pick_ball_dots();
  at::parallel_for(0, query_blocks * splits, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t qb = t / splits, s = t % splits;
      const int64_t b0 = qb * kQueryBlock, b1 = std::min(p.B, b0 + kQueryBlock);
      const int64_t r0 = s * rows_per, r1 = std::min(p.N, r0 + rows_per);
      if (r0 < r1) run_task(p, qn, mn, dots, b0, b1, r0, r1, state.data() + s * p.B + b0);
    }
  });
  double* mv = margin.data_ptr<double>();
  int64_t* mi = margin_idx.data_ptr<int64_t>();
  double* nv = nearest.data_ptr<double>();
  int64_t* ni = nearest_idx.data_ptr<int64_t>();
  for (int64_t b = 0; b < p.B; ++b) {
    Best near, marg;
    for (int64_t s = 0; s < splits; ++s) {
      const QueryState& st = state[s * p.B + b];
      if (st.near.i >= 0) near.offer(st.near.v, st.near.i);
      if (st.margin.i >= 0) marg.offer(st.margin.v, st.margin.i);
    }
    nv[b] = near.v;
    ni[b] = near.i;
    mv[b] = marg.v;
    mi[b] = marg.i;
  }
  return {margin, margin_idx, nearest, nearest_idx};
}

}  // namespace

TORCH_LIBRARY_IMPL(smoothcert, CPU, m) { m.impl("ball_margin", &ball_margin_cpu); }

}  // namespace smoothcert
