// CUDA binding of smoothcert::pair_distances (host compiler): the CPU
// binding's argument checks and +inf output (prepare_pair_distances), the
// workspace as ATen tensors, and the phases of pair_distances_kernel.h in
// order on the current stream. It synchronises once per collection pass, to
// size the candidate buffer (twice only when the first guess was too small).
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <algorithm>

#include "../pair_distances_args.h"
#include "ball_margin_kernel.h"
#include "pair_distances_kernel.h"

namespace smoothcert {
namespace {

void check(cudaError_t err, const char* phase) {
  TORCH_CHECK(err == cudaSuccess, "pair_distances: CUDA ", phase, " failed: ", cudaGetErrorString(err));
}

at::Tensor pair_distances_cuda(const at::Tensor& xq, const at::Tensor& xm, const at::Tensor& reach_q,
                               const at::Tensor& reach_m) {
  at::Tensor xq_c, xm_c, rq_c, rm_c, out;
  const PairParams p = prepare_pair_distances(xq, xm, reach_q, reach_m, xq_c, xm_c, rq_c, rm_c, out);
  // After the checks, which put every tensor on xq's device.
  const c10::cuda::CUDAGuard guard(xq.device());
  if (p.B == 0 || p.N == 0) return out;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  const auto opts = xq.options();
  // fp64 squared norms for the screening bound; any summation order is
  // covered by it, so ball_margin's warp-per-row kernel serves as is.
  at::Tensor qn = at::empty({p.B}, opts.dtype(at::kDouble)), mn = at::empty({p.N}, opts.dtype(at::kDouble));
  check(launch_ball_norms(p.xq, p.B, p.D, qn.data_ptr<double>(), stream), "norms");
  check(launch_ball_norms(p.xm, p.N, p.D, mn.data_ptr<double>(), stream), "norms");
  at::Tensor count = at::empty({1}, opts.dtype(at::kLong));
  auto* count_p = reinterpret_cast<unsigned long long*>(count.data_ptr<int64_t>());
  // First guess at the number of candidates: a few per point, never more than
  // B * N (which fits, as out holds B * N doubles). A larger count reruns the
  // collection with an exact-sized buffer; the candidate set is deterministic,
  // so the rerun finds the same count.
  const int64_t pairs = p.B * p.N;
  int64_t cap = std::min(pairs, std::max<int64_t>(65536, 8 * (p.B + p.N))), found = 0;
  at::Tensor cand = at::empty({cap}, opts.dtype(at::kLong));
  for (;;) {
    check(launch_pair_collect(p, qn.data_ptr<double>(), mn.data_ptr<double>(),
                              reinterpret_cast<long long*>(cand.data_ptr<int64_t>()), count_p, cap, stream),
          "collect");
    check(ball_read_count(count_p, &found, stream), "count");
    if (found <= cap) break;
    cap = found;
    cand = at::empty({cap}, opts.dtype(at::kLong));
  }
  check(launch_pair_exact(p, reinterpret_cast<const long long*>(cand.data_ptr<int64_t>()), found, stream),
        "exact");
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(smoothcert, CUDA, m) { m.impl("pair_distances", &pair_distances_cuda); }

}  // namespace smoothcert
