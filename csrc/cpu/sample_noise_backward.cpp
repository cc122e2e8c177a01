// CPU kernel of smoothcert::sample_noise_backward: the gradients of
// sample_noise's output with respect to x and sigma, with the noise
// regenerated row by row by the forward's vectorised filler (plain_rows.h)
// instead of being stored.
//
// Work split: one input per task of at::parallel_for. Its samples go through
// a small scratch of unit-noise rows; sums follow common/noise_backward.h.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <vector>

#include "../common/noise_backward.h"
#include "../sample_noise_backward_args.h"
#include "plain_rows.h"

namespace smoothcert {
namespace {

void backward_rows(const SampleNoiseParams& p, const float* grad, double* gx, double* gs) {
  static const RowFiller fill = row_filler();
  const int64_t D = p.D, m = p.samples;
  const int64_t scratch_rows = std::max<int64_t>(2, 16384 / std::max<int64_t>(D, 1));
  const std::vector<float> zeros(static_cast<size_t>(D), 0.0f);
  const float one = 1.0f;
  at::parallel_for(0, p.B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> eps(static_cast<size_t>(std::min(scratch_rows, std::max<int64_t>(m, 1)) * D));
    std::vector<double> ax(D), as(D);
    for (int64_t b = b0; b < b1; ++b) {
      const SampleNoiseParams u = unit_noise_params(p, b, zeros.data(), &one);
      double* tx = gx + b * D;
      double* ts = gs + b * D;
      std::fill(tx, tx + D, 0.0);
      std::fill(ts, ts + D, 0.0);
      for (int64_t c0 = 0; c0 < m; c0 += kBackwardChunk) {
        const int64_t c1 = std::min(m, c0 + kBackwardChunk);
        std::fill(ax.begin(), ax.end(), 0.0);
        std::fill(as.begin(), as.end(), 0.0);
        for (int64_t r0 = c0; r0 < c1; r0 += scratch_rows) {
          const int64_t r1 = std::min(c1, r0 + scratch_rows);
          plain_rows(fill, u, 0, p.sample_start + r0, p.sample_start + r1, eps.data());
          for (int64_t r = r0; r < r1; ++r) {
            const float* g = grad + (b * m + r) * D;
            const float* z = eps.data() + (r - r0) * D;
            for (int64_t e = 0; e < D; ++e) {
              if (!unclamped(p, b, e, z[e])) continue;
              ax[e] += static_cast<double>(g[e]);
              as[e] += static_cast<double>(g[e]) * static_cast<double>(z[e]);
            }
          }
        }
        for (int64_t e = 0; e < D; ++e) {
          tx[e] += ax[e];
          ts[e] += as[e];
        }
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor> sample_noise_backward_cpu(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& ids, const at::Tensor& sigma,
    int64_t samples, int64_t sample_start, int64_t seed, int64_t stream, int64_t kind, bool antithetic,
    std::optional<double> clamp_min, std::optional<double> clamp_max) {
  at::Tensor x_c, ids_c, sigma_c, grad_x, grad_sigma;
  const SampleNoiseParams p = prepare_sample_noise_backward(grad, x, ids, sigma, samples, sample_start, seed,
                                                            stream, kind, antithetic, clamp_min, clamp_max, x_c,
                                                            ids_c, sigma_c, grad_x, grad_sigma);
  if (grad_x.numel() > 0)
    backward_rows(p, grad.data_ptr<float>(), grad_x.data_ptr<double>(), grad_sigma.data_ptr<double>());
  return {grad_x, grad_sigma};
}

}  // namespace

TORCH_LIBRARY_IMPL(smoothcert, CPU, m) { m.impl("sample_noise_backward", &sample_noise_backward_cpu); }

}  // namespace smoothcert
