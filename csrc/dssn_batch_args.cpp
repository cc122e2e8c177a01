#include "dssn_batch_args.h"

#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>

namespace smoothcert {

DssnParams prepare_dssn_batch(const at::Tensor& x, const at::Tensor& v, const at::Tensor& offsets,
                              int64_t levels, int64_t q, const std::optional<at::Tensor>& mean,
                              const std::optional<at::Tensor>& std, std::optional<at::ScalarType> out_dtype,
                              bool channels_last, at::Tensor& x_c, at::Tensor& v_c, at::Tensor& off_c,
                              at::Tensor& mean_c, at::Tensor& std_c, at::Tensor& out) {
  TORCH_CHECK(x.dim() >= 1, "dssn_batch: x must have a batch dimension [B, ...], got a 0-D tensor");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kByte,
              "dssn_batch: x must be float32 grid values or uint8 pixels, got ", x.scalar_type());
  TORCH_CHECK(q >= 1 && q < (int64_t(1) << 22), "dssn_batch: q must lie in [1, 2^22), got ", q);
  TORCH_CHECK(levels >= 1 && levels < (int64_t(1) << 22), "dssn_batch: L must lie in [1, 2^22), got ", levels);
  TORCH_CHECK(x.scalar_type() != at::kByte || q >= 255,
              "dssn_batch: uint8 pixels need q >= 255 (pixel values may reach 255), got q = ", q);
  const int64_t B = x.size(0);
  int64_t D = 1;
  for (int64_t i = 1; i < x.dim(); ++i) D *= x.size(i);
  TORCH_CHECK(v.dim() == 1 && v.size(0) == D, "dssn_batch: v must have shape [D] = [", D, "], got ", v.sizes());
  TORCH_CHECK(v.scalar_type() == at::kInt, "dssn_batch: v must be int32, got ", v.scalar_type());
  TORCH_CHECK(offsets.dim() == 2 && (offsets.size(0) == 1 || offsets.size(0) == B),
              "dssn_batch: offsets must have shape [1 or B, nb] with B = ", B, ", got ", offsets.sizes());
  TORCH_CHECK(offsets.scalar_type() == at::kLong, "dssn_batch: offsets must be int64, got ", offsets.scalar_type());
  TORCH_CHECK(x.device() == v.device() && x.device() == offsets.device(),
              "dssn_batch: x, v and offsets must be on one device, got ", x.device(), ", ", v.device(), " and ",
              offsets.device());
  TORCH_CHECK(mean.has_value() == std.has_value(), "dssn_batch: give both mean and std, or neither");
  TORCH_CHECK(!channels_last || x.dim() == 4, "dssn_batch: channels_last needs 4-D x [B, C, H, W], got ", x.dim(), "-D");
  const int64_t C = x.dim() >= 2 ? x.size(1) : 1;
  if (mean.has_value()) {
    TORCH_CHECK(x.dim() >= 2, "dssn_batch: normalisation needs x with a channel dimension [B, C, ...]");
    for (const at::Tensor* t : {&*mean, &*std}) {
      TORCH_CHECK(t->dim() == 1 && t->size(0) == C, "dssn_batch: mean and std must have shape [C] = [", C,
                  "], got ", t->sizes());
      TORCH_CHECK(t->scalar_type() == at::kFloat, "dssn_batch: mean and std must be float32, got ", t->scalar_type());
      TORCH_CHECK(t->device() == x.device(), "dssn_batch: mean and std must be on x's device ", x.device());
    }
  }
  const at::ScalarType dt = out_dtype.value_or(at::kFloat);
  TORCH_CHECK(dt == at::kFloat || dt == at::kHalf || dt == at::kBFloat16 || dt == at::kDouble,
              "dssn_batch: out_dtype must be float32, float16, bfloat16 or float64, got ", dt);

  const int64_t nb = offsets.size(1);
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape[0] = B * nb;
  out = at::empty(shape, x.options().dtype(dt).memory_format(
                             channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous));
  x_c = x.contiguous();
  v_c = v.contiguous();
  off_c = offsets.contiguous();
  DssnParams p{};
  p.xf = x.scalar_type() == at::kFloat ? x_c.data_ptr<float>() : nullptr;
  p.xu = x.scalar_type() == at::kByte ? x_c.data_ptr<uint8_t>() : nullptr;
  p.v = v_c.data_ptr<int32_t>();
  p.offsets = off_c.data_ptr<int64_t>();
  p.off_b_stride = offsets.size(0) == B && B > 1 ? nb : 0;
  p.B = B;
  p.D = D;
  p.nb = nb;
  p.L = static_cast<int32_t>(levels);
  p.q = static_cast<int32_t>(q);
  if (mean.has_value()) {
    mean_c = mean->contiguous();
    std_c = std->contiguous();
    p.mean = mean_c.data_ptr<float>();
    p.std = std_c.data_ptr<float>();
  }
  p.C = C;
  p.HW = C > 0 ? D / C : D;
  p.channels_last = channels_last;
  return p;
}

}  // namespace smoothcert
