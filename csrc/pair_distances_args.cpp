#include "pair_distances_args.h"

#include <ATen/ops/full.h>
#include <c10/util/Exception.h>

#include <limits>

namespace smoothcert {

PairParams prepare_pair_distances(const at::Tensor& xq, const at::Tensor& xm, const at::Tensor& reach_q,
                                  const at::Tensor& reach_m, at::Tensor& xq_c, at::Tensor& xm_c, at::Tensor& rq_c,
                                  at::Tensor& rm_c, at::Tensor& out) {
  TORCH_CHECK(xq.dim() == 2, "pair_distances: row points must be 2-D [B, D], got shape ", xq.sizes());
  TORCH_CHECK(xm.dim() == 2, "pair_distances: column points must be 2-D [N, D], got shape ", xm.sizes());
  TORCH_CHECK(xq.size(1) == xm.size(1), "pair_distances: row points have D = ", xq.size(1),
              " elements but column points have ", xm.size(1));
  TORCH_CHECK(xq.scalar_type() == at::kFloat && xm.scalar_type() == at::kFloat,
              "pair_distances: points must be float32, got ", xq.scalar_type(), " and ", xm.scalar_type());
  TORCH_CHECK(xq.size(1) < (int64_t(1) << 22),
              "pair_distances: D must be < 2^22 (the fp32 screening bound), got ", xq.size(1));
  const int64_t B = xq.size(0), N = xm.size(0);
  TORCH_CHECK(reach_q.dim() == 1 && reach_q.size(0) == B && reach_q.scalar_type() == at::kDouble,
              "pair_distances: reach_q must be float64 [B] = [", B, "], got ", reach_q.scalar_type(), " ",
              reach_q.sizes());
  TORCH_CHECK(reach_m.dim() == 1 && reach_m.size(0) == N && reach_m.scalar_type() == at::kDouble,
              "pair_distances: reach_m must be float64 [N] = [", N, "], got ", reach_m.scalar_type(), " ",
              reach_m.sizes());
  for (const at::Tensor* t : {&xm, &reach_q, &reach_m}) {
    TORCH_CHECK(t->device() == xq.device(), "pair_distances: every tensor must be on the row points' device ",
                xq.device(), ", got one on ", t->device());
  }
  xq_c = xq.contiguous();
  xm_c = xm.contiguous();
  rq_c = reach_q.contiguous();
  rm_c = reach_m.contiguous();
  out = at::full({B, N}, std::numeric_limits<double>::infinity(), xq.options().dtype(at::kDouble));
  PairParams prm{};
  prm.xq = xq_c.data_ptr<float>();
  prm.xm = xm_c.data_ptr<float>();
  prm.reach_q = rq_c.data_ptr<double>();
  prm.reach_m = rm_c.data_ptr<double>();
  prm.out = out.data_ptr<double>();
  prm.B = B;
  prm.N = N;
  prm.D = xq.size(1);
  return prm;
}

}  // namespace smoothcert
