#include "sample_noise_backward_args.h"

#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>

#include "sample_noise_args.h"

namespace smoothcert {

SampleNoiseParams prepare_sample_noise_backward(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& ids, const at::Tensor& sigma,
    int64_t samples, int64_t sample_start, int64_t seed, int64_t stream, int64_t kind, bool antithetic,
    std::optional<double> clamp_min, std::optional<double> clamp_max, at::Tensor& x_c, at::Tensor& ids_c,
    at::Tensor& sigma_c, at::Tensor& grad_x, at::Tensor& grad_sigma) {
  const char* op = "sample_noise_backward";
  SampleNoiseParams p = pack_sample_noise(op, x, ids, sigma, samples, sample_start, seed, stream, kind,
                                          antithetic, clamp_min, clamp_max, x_c, ids_c, sigma_c);
  TORCH_CHECK(kind != kSplit, op, ": splitting noise (kind 2) is not differentiable in sigma");
  TORCH_CHECK(grad.scalar_type() == at::kFloat, op, ": grad must be float32, got ", grad.scalar_type());
  TORCH_CHECK(grad.device() == x.device(), op, ": grad must be on x's device ", x.device(), ", got ",
              grad.device());
  TORCH_CHECK(grad.is_contiguous(), op, ": grad must be contiguous (NCHW order)");
  TORCH_CHECK(grad.dim() >= 1 && grad.size(0) == p.B * samples && grad.numel() == p.B * samples * p.D,
              op, ": grad must have shape [B * samples, *S] = [", p.B * samples, ", ...] with ", p.D,
              " elements per row, got ", grad.sizes());
  grad_x = at::empty({p.B, p.D}, x.options().dtype(at::kDouble));
  grad_sigma = at::empty({p.B, p.D}, x.options().dtype(at::kDouble));
  return p;
}

}  // namespace smoothcert
