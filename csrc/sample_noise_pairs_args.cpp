#include "sample_noise_pairs_args.h"

#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>

#include "sample_noise_args.h"

namespace smoothcert {

SampleNoiseParams prepare_sample_noise_pairs(
    const at::Tensor& x, const at::Tensor& ids, const at::Tensor& sigma, int64_t samples,
    int64_t sample_start, int64_t seed, int64_t stream, int64_t kind, std::optional<double> clamp_min,
    std::optional<double> clamp_max, std::optional<at::ScalarType> out_dtype, bool channels_last,
    at::Tensor& x_c, at::Tensor& ids_c, at::Tensor& sigma_c, at::Tensor& out, at::Tensor& dots) {
  constexpr const char* op = "sample_noise_pairs";
  TORCH_CHECK(kind == kGaussian || kind == kUniform, op,
              ": kind must be 0 (gaussian) or 1 (uniform): the pair dot products are of additive noise, got ",
              kind);
  TORCH_CHECK(samples % 2 == 0 && sample_start % 2 == 0, op,
              ": samples and sample_start must be even (rows 2j and 2j+1 form a pair), got ", samples, " and ",
              sample_start);
  SampleNoiseParams p = prepare_sample_noise(x, ids, sigma, samples, sample_start, seed, stream, kind, false,
                                             clamp_min, clamp_max, out_dtype, channels_last, x_c, ids_c, sigma_c,
                                             out, op);
  dots = at::empty({p.B, samples / 2}, x.options().dtype(at::kDouble));
  return p;
}

}  // namespace smoothcert
