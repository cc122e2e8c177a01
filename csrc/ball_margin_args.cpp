#include "ball_margin_args.h"

#include <ATen/ops/full.h>
#include <c10/util/Exception.h>

#include <limits>

namespace smoothcert {

BallParams prepare_ball_margin(const at::Tensor& xq, const at::Tensor& xm, const at::Tensor& radius,
                               const at::Tensor& mem_class, const at::Tensor& query_class, int64_t p,
                               at::Tensor& xq_c, at::Tensor& xm_c, at::Tensor& r_c, at::Tensor& mc_c,
                               at::Tensor& qc_c) {
  TORCH_CHECK(p == 1 || p == 2, "ball_margin: p must be 1 or 2 (the norm), got ", p);
  TORCH_CHECK(xq.dim() == 2, "ball_margin: queries must be 2-D [B, D], got shape ", xq.sizes());
  TORCH_CHECK(xm.dim() == 2, "ball_margin: the memory must be 2-D [N, D], got shape ", xm.sizes());
  TORCH_CHECK(xq.size(1) == xm.size(1), "ball_margin: queries have D = ", xq.size(1),
              " elements but stored points have ", xm.size(1));
  TORCH_CHECK(xq.scalar_type() == at::kFloat && xm.scalar_type() == at::kFloat,
              "ball_margin: queries and memory must be float32, got ", xq.scalar_type(), " and ",
              xm.scalar_type());
  TORCH_CHECK(xq.size(1) < (int64_t(1) << 22), "ball_margin: D must be < 2^22 (the fp32 screening bound), got ",
              xq.size(1));
  const int64_t B = xq.size(0), N = xm.size(0);
  TORCH_CHECK(radius.dim() == 1 && radius.size(0) == N && radius.scalar_type() == at::kDouble,
              "ball_margin: radius must be float64 [N] = [", N, "], got ", radius.scalar_type(), " ",
              radius.sizes());
  TORCH_CHECK(mem_class.dim() == 1 && mem_class.size(0) == N && mem_class.scalar_type() == at::kLong,
              "ball_margin: mem_class must be int64 [N] = [", N, "], got ", mem_class.scalar_type(), " ",
              mem_class.sizes());
  TORCH_CHECK(query_class.dim() == 1 && query_class.size(0) == B && query_class.scalar_type() == at::kLong,
              "ball_margin: query_class must be int64 [B] = [", B, "], got ", query_class.scalar_type(), " ",
              query_class.sizes());
  for (const at::Tensor* t : {&xm, &radius, &mem_class, &query_class}) {
    TORCH_CHECK(t->device() == xq.device(), "ball_margin: every tensor must be on the queries' device ",
                xq.device(), ", got one on ", t->device());
  }
  xq_c = xq.contiguous();
  xm_c = xm.contiguous();
  r_c = radius.contiguous();
  mc_c = mem_class.contiguous();
  qc_c = query_class.contiguous();
  BallParams prm{};
  prm.xq = xq_c.data_ptr<float>();
  prm.xm = xm_c.data_ptr<float>();
  prm.radius = r_c.data_ptr<double>();
  prm.mem_class = mc_c.data_ptr<int64_t>();
  prm.query_class = qc_c.data_ptr<int64_t>();
  prm.B = B;
  prm.N = N;
  prm.D = xq.size(1);
  prm.p = static_cast<int>(p);
  return prm;
}

void empty_ball_outputs(const at::Tensor& xq, at::Tensor& margin, at::Tensor& margin_idx, at::Tensor& nearest,
                        at::Tensor& nearest_idx) {
  const int64_t B = xq.size(0);
  const double inf = std::numeric_limits<double>::infinity();
  margin = at::full({B}, inf, xq.options().dtype(at::kDouble));
  nearest = at::full({B}, inf, xq.options().dtype(at::kDouble));
  margin_idx = at::full({B}, -1, xq.options().dtype(at::kLong));
  nearest_idx = at::full({B}, -1, xq.options().dtype(at::kLong));
}

}  // namespace smoothcert
