#include "sample_noise_args.h"

#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>

#include <cmath>

namespace smoothcert {

SampleNoiseParams pack_sample_noise(
    const char* op, const at::Tensor& x, const at::Tensor& ids, const at::Tensor& sigma,
    int64_t samples, int64_t sample_start, int64_t seed, int64_t stream, int64_t kind,
    bool antithetic, std::optional<double> clamp_min, std::optional<double> clamp_max,
    at::Tensor& x_c, at::Tensor& ids_c, at::Tensor& sigma_c) {
  TORCH_CHECK(x.dim() >= 1, op, ": x must have a batch dimension [B, ...], got a 0-D tensor");
  TORCH_CHECK(x.scalar_type() == at::kFloat, op, ": x must be float32, got ", x.scalar_type());
  TORCH_CHECK(ids.dim() == 1 && ids.size(0) == x.size(0),
              op, ": ids must have shape [B] = [", x.size(0), "], got ", ids.sizes());
  TORCH_CHECK(ids.scalar_type() == at::kLong, op, ": ids must be int64, got ", ids.scalar_type());
  TORCH_CHECK(sigma.dim() == 2, op, ": sigma must be 2-D [1 or B, 1 or D], got ", sigma.sizes());
  TORCH_CHECK(sigma.scalar_type() == at::kFloat, op, ": sigma must be float32, got ", sigma.scalar_type());
  TORCH_CHECK(x.device() == ids.device() && x.device() == sigma.device(),
              op, ": x, ids and sigma must be on one device, got ", x.device(), ", ",
              ids.device(), " and ", sigma.device());
  const int64_t B = x.size(0);
  const int64_t D = B == 0 ? 0 : x.numel() / B;
  TORCH_CHECK(sigma.size(0) == 1 || sigma.size(0) == B,
              op, ": sigma.size(0) must be 1 or B = ", B, ", got ", sigma.size(0));
  TORCH_CHECK(sigma.size(1) == 1 || sigma.size(1) == D,
              op, ": sigma.size(1) must be 1 or D = ", D, ", got ", sigma.size(1));
  TORCH_CHECK(samples >= 0, op, ": samples must be >= 0, got ", samples);
  TORCH_CHECK(sample_start >= 0, op, ": sample_start must be >= 0, got ", sample_start);
  const int64_t key_limit = antithetic ? (int64_t(1) << 33) : (int64_t(1) << 32);
  TORCH_CHECK(sample_start + samples <= key_limit,
              op, ": sample indices must stay below ", key_limit, ", got ", sample_start + samples);
  TORCH_CHECK(stream >= 0 && stream < (int64_t(1) << 32), op, ": stream must fit in 32 bits, got ", stream);
  TORCH_CHECK(D < (int64_t(1) << 34), op, ": inputs of more than 2^34 elements are not supported, got ", D);
  TORCH_CHECK(kind == kGaussian || kind == kUniform || kind == kSplit,
              op, ": kind must be 0 (gaussian), 1 (uniform) or 2 (splitting noise), got ", kind);
  TORCH_CHECK(!(clamp_min && std::isnan(*clamp_min)) && !(clamp_max && std::isnan(*clamp_max)),
              op, ": clamp bounds must not be NaN");
  if (clamp_min && clamp_max)
    TORCH_CHECK(*clamp_min <= *clamp_max, op, ": clamp_min (", *clamp_min, ") > clamp_max (", *clamp_max, ")");
  x_c = x.contiguous();
  ids_c = ids.contiguous();
  sigma_c = sigma.contiguous();

  SampleNoiseParams p{};
  p.x = x_c.data_ptr<float>();
  p.ids = ids_c.data_ptr<int64_t>();
  p.sigma = sigma_c.data_ptr<float>();
  p.sigma_b_stride = sigma.size(0) == B && B > 1 ? sigma.size(1) : 0;
  p.sigma_e_stride = sigma.size(1) == D && D > 1 ? 1 : 0;
  p.B = B;
  p.D = D;
  p.samples = samples;
  p.sample_start = sample_start;
  p.seed = static_cast<uint64_t>(seed);
  p.stream = static_cast<uint32_t>(stream);
  p.kind = kind;
  p.antithetic = antithetic;
  p.clamp = clamp_min.has_value() || clamp_max.has_value();
  p.clamp_min = clamp_min ? static_cast<float>(*clamp_min) : -3.4e38f;
  p.clamp_max = clamp_max ? static_cast<float>(*clamp_max) : 3.4e38f;
  p.channels_last = false;
  p.C = 1;
  p.HW = D;
  return p;
}

SampleNoiseParams prepare_sample_noise(
    const at::Tensor& x, const at::Tensor& ids, const at::Tensor& sigma,
    int64_t samples, int64_t sample_start, int64_t seed, int64_t stream,
    int64_t kind, bool antithetic, std::optional<double> clamp_min,
    std::optional<double> clamp_max, std::optional<at::ScalarType> out_dtype,
    bool channels_last, at::Tensor& x_c, at::Tensor& ids_c, at::Tensor& sigma_c,
    at::Tensor& out, const char* op) {
  SampleNoiseParams p = pack_sample_noise(op, x, ids, sigma, samples, sample_start, seed, stream,
                                          kind, antithetic, clamp_min, clamp_max, x_c, ids_c, sigma_c);
  TORCH_CHECK(!channels_last || x.dim() == 4, op, ": channels_last needs 4-D x [B, C, H, W], got ",
              x.dim(), "-D");
  const at::ScalarType dt = out_dtype.value_or(at::kFloat);
  TORCH_CHECK(dt == at::kFloat || dt == at::kHalf || dt == at::kBFloat16 || dt == at::kDouble,
              op, ": out_dtype must be float32, float16, bfloat16 or float64, got ", dt);

  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape[0] = p.B * samples;
  out = at::empty(shape, x.options().dtype(dt).memory_format(
                             channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous));
  p.channels_last = channels_last;
  p.C = channels_last ? x.size(1) : 1;
  p.HW = channels_last ? x.size(2) * x.size(3) : p.D;
  return p;
}

SampleNoiseParams prepare_sample_noise_into(
    const at::Tensor& x, const at::Tensor& ids, const at::Tensor& sigma,
    int64_t samples, int64_t sample_start, int64_t seed, int64_t stream,
    int64_t kind, bool antithetic, std::optional<double> clamp_min,
    std::optional<double> clamp_max, bool channels_last, const at::Tensor& out,
    at::Tensor& x_c, at::Tensor& ids_c, at::Tensor& sigma_c) {
  const char* op = "sample_noise_into";
  SampleNoiseParams p = pack_sample_noise(op, x, ids, sigma, samples, sample_start, seed, stream,
                                          kind, antithetic, clamp_min, clamp_max, x_c, ids_c, sigma_c);
  TORCH_CHECK(!channels_last || x.dim() == 4, op, ": channels_last needs 4-D x [B, C, H, W], got ",
              x.dim(), "-D");
  const at::ScalarType dt = out.scalar_type();
  TORCH_CHECK(dt == at::kFloat || dt == at::kHalf || dt == at::kBFloat16 || dt == at::kDouble,
              op, ": out must be float32, float16, bfloat16 or float64, got ", dt);
  TORCH_CHECK(out.device() == x.device(), op, ": out is on ", out.device(), " but x on ", x.device());
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape[0] = p.B * samples;
  TORCH_CHECK(out.sizes().vec() == shape, op, ": out must have shape ", at::IntArrayRef(shape), ", got ",
              out.sizes());
  TORCH_CHECK(out.is_contiguous(channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous),
              op, ": out must be dense in ", channels_last ? "channels_last" : "contiguous", " memory format");
  p.channels_last = channels_last;
  p.C = channels_last ? x.size(1) : 1;
  p.HW = channels_last ? x.size(2) * x.size(3) : p.D;
  return p;
}

}  // namespace smoothcert
