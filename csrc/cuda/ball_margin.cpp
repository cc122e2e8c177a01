// CUDA binding of smoothcert::ball_margin (host compiler): the CPU binding's
// argument checks (prepare_ball_margin), the workspace as ATen tensors, and
// the phases of ball_margin_kernel.h in order on the current stream. It
// synchronises once per call, to size the candidate buffer.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>

#include "../ball_margin_args.h"
#include "ball_margin_kernel.h"

namespace smoothcert {
namespace {

void check(cudaError_t err, const char* phase) {
  TORCH_CHECK(err == cudaSuccess, "ball_margin: CUDA ", phase, " failed: ", cudaGetErrorString(err));
}

unsigned long long* words(at::Tensor& t, int64_t k, int64_t B) {
  return reinterpret_cast<unsigned long long*>(t.data_ptr<int64_t>()) + k * B;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> ball_margin_cuda(
    const at::Tensor& xq, const at::Tensor& xm, const at::Tensor& radius, const at::Tensor& mem_class,
    const at::Tensor& query_class, int64_t norm) {
  at::Tensor xq_c, xm_c, r_c, mc_c, qc_c, margin, margin_idx, nearest, nearest_idx;
  const BallParams p = prepare_ball_margin(xq, xm, radius, mem_class, query_class, norm, xq_c, xm_c, r_c, mc_c,
                                           qc_c);
  const c10::cuda::CUDAGuard guard(xq.device());
  empty_ball_outputs(xq, margin, margin_idx, nearest, nearest_idx);
  if (p.B == 0 || p.N == 0) return {margin, margin_idx, nearest, nearest_idx};
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  const auto opts = xq.options();
  // Keys: u_near, u_margin (screening thresholds), best_near, best_margin,
  // idx_near, idx_margin; all start as "none".
  at::Tensor keys = at::empty({6 * p.B}, opts.dtype(at::kLong));
  check(ball_fill_none(words(keys, 0, p.B), 6 * p.B, stream), "init");
  if (p.p == 2) {
    at::Tensor qn = at::empty({p.B}, opts.dtype(at::kDouble)), mn = at::empty({p.N}, opts.dtype(at::kDouble));
    check(launch_ball_norms(p.xq, p.B, p.D, qn.data_ptr<double>(), stream), "norms");
    check(launch_ball_norms(p.xm, p.N, p.D, mn.data_ptr<double>(), stream), "norms");
    check(launch_ball_screen(p, qn.data_ptr<double>(), mn.data_ptr<double>(), words(keys, 0, p.B),
                             words(keys, 1, p.B), stream), "screen");
    at::Tensor count = at::empty({1}, opts.dtype(at::kLong));
    auto* count_p = reinterpret_cast<unsigned long long*>(count.data_ptr<int64_t>());
    int64_t cap = std::max<int64_t>(4096, 8 * p.B), found = 0;
    at::Tensor cand = at::empty({cap}, opts.dtype(at::kLong));
    for (;;) {
      check(launch_ball_collect(p, qn.data_ptr<double>(), mn.data_ptr<double>(), words(keys, 0, p.B),
                                words(keys, 1, p.B), reinterpret_cast<long long*>(cand.data_ptr<int64_t>()),
                                count_p, cap, stream), "collect");
      check(ball_read_count(count_p, &found, stream), "count");
      if (found <= cap) break;
      cap = found;
      cand = at::empty({cap}, opts.dtype(at::kLong));
    }
    at::Tensor vals = at::empty({std::max<int64_t>(1, found)}, opts.dtype(at::kDouble));
    const auto* cp = reinterpret_cast<const long long*>(cand.data_ptr<int64_t>());
    check(launch_ball_exact(p, cp, found, vals.data_ptr<double>(), words(keys, 2, p.B), words(keys, 3, p.B),
                            stream), "exact");
    check(launch_ball_argmin(p, cp, found, vals.data_ptr<double>(), words(keys, 2, p.B), words(keys, 3, p.B),
                             words(keys, 4, p.B), words(keys, 5, p.B), stream), "argmin");
  } else {
    const int64_t pairs = p.B * p.N;
    check(launch_ball_exact(p, nullptr, pairs, nullptr, words(keys, 2, p.B), words(keys, 3, p.B), stream),
          "exact");
    check(launch_ball_argmin(p, nullptr, pairs, nullptr, words(keys, 2, p.B), words(keys, 3, p.B),
                             words(keys, 4, p.B), words(keys, 5, p.B), stream), "argmin");
  }
  check(launch_ball_finalize(p.B, words(keys, 2, p.B), words(keys, 3, p.B), words(keys, 4, p.B),
                             words(keys, 5, p.B), margin.data_ptr<double>(), margin_idx.data_ptr<int64_t>(),
                             nearest.data_ptr<double>(), nearest_idx.data_ptr<int64_t>(), stream), "finalize");
  return {margin, margin_idx, nearest, nearest_idx};
}

}  // namespace

TORCH_LIBRARY_IMPL(smoothcert, CUDA, m) { m.impl("ball_margin", &ball_margin_cuda); }

}  // namespace smoothcert
