// CPU kernel of smoothcert::sample_noise_pairs: sample_noise's batch and, in
// the same pass over the noise, each pair's dot product of unit noise.
//
// Work split: ranges of pairs per task of at::parallel_for. A pair's two rows
// of unit noise come from the forward's vectorised filler (plain_rows.h, with
// x = 0 and sigma = 1, which writes z exactly) into a scratch; one loop then
// writes both output rows with noisy_value (the arithmetic of the filler and
// of sample_noise's tail, so the batch is sample_noise's bit for bit) and sums
// z_2j[e] * z_2j+1[e] over e = 0 .. D-1 in float64 in that order (each
// product of two float32 values is exact; the CUDA kernel sums in the same
// order, so both give the same bits).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <vector>

#include "../sample_noise_pairs_args.h"
#include "plain_rows.h"

namespace smoothcert {
namespace {

template <typename T>
void run_pairs(const SampleNoiseParams& p, T* out, double* dots) {
  static const RowFiller fill = row_filler();
  const int64_t D = p.D, half = p.samples / 2;
  const int64_t pairs = p.B * half;
  const int64_t scratch_pairs = std::max<int64_t>(1, 8192 / std::max<int64_t>(D, 1));
  const std::vector<float> zeros(static_cast<size_t>(D), 0.0f);
  const float one = 1.0f;
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(D, 1));
  at::parallel_for(0, pairs, grain, [&](int64_t j0, int64_t j1) {
    std::vector<float> z(static_cast<size_t>(2 * scratch_pairs * D));
    for (int64_t j = j0; j < j1;) {
      const int64_t b = j / half;
      const int64_t end = std::min(j1, std::min((b + 1) * half, j + scratch_pairs));
      const SampleNoiseParams u = unit_noise_params(p, b, zeros.data(), &one);
      const int64_t k0 = j - b * half;  // pair index within input b
      plain_rows(fill, u, 0, p.sample_start + 2 * k0, p.sample_start + 2 * (k0 + end - j), z.data());
      for (int64_t jj = j; jj < end; ++jj) {
        const float* za = z.data() + 2 * (jj - j) * D;
        const float* zb = za + D;
        const int64_t row = b * p.samples + 2 * (jj - b * half);
        double dot = 0.0;
        for (int64_t e = 0; e < D; ++e) {
          dot += static_cast<double>(za[e]) * static_cast<double>(zb[e]);
          out[out_offset(p, row, e)] = static_cast<T>(noisy_value(p, b, e, za[e]));
          out[out_offset(p, row + 1, e)] = static_cast<T>(noisy_value(p, b, e, zb[e]));
        }
        dots[jj] = dot;
      }
      j = end;
    }
  });
}

std::tuple<at::Tensor, at::Tensor> sample_noise_pairs_cpu(
    const at::Tensor& x, const at::Tensor& ids, const at::Tensor& sigma, int64_t samples, int64_t sample_start,
    int64_t seed, int64_t stream, int64_t kind, std::optional<double> clamp_min, std::optional<double> clamp_max,
    std::optional<at::ScalarType> out_dtype, bool channels_last) {
  at::Tensor x_c, ids_c, sigma_c, out, dots;
  const SampleNoiseParams p =
      prepare_sample_noise_pairs(x, ids, sigma, samples, sample_start, seed, stream, kind, clamp_min, clamp_max,
                                 out_dtype, channels_last, x_c, ids_c, sigma_c, out, dots);
  if (dots.numel() == 0) return {out, dots};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out.scalar_type(), "sample_noise_pairs_cpu", [&] {
    run_pairs<scalar_t>(p, out.data_ptr<scalar_t>(), dots.data_ptr<double>());
  });
  return {out, dots};
}

}  // namespace

TORCH_LIBRARY_IMPL(smoothcert, CPU, m) { m.impl("sample_noise_pairs", &sample_noise_pairs_cpu); }

}  // namespace smoothcert
