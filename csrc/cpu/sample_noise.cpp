// CPU kernel of smoothcert::sample_noise: x + sigma * eps written straight
// into the classifier's batch.
//
// Work split: ranges of output rows (one row = one sample of one input) per
// task of at::parallel_for. Every row is made by plain_rows (plain_rows.h:
// the vectorised filler plus a scalar tail); float32 NCHW rows are written
// in place, other dtypes and channels_last go through a float32 scratch.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdlib>
#include <vector>
#include <type_traits>

#include "../sample_noise_args.h"
#include "plain_rows.h"

namespace smoothcert {

namespace {

// Copies plain float32 rows into the output's dtype and layout (a transpose
// to NHWC for channels_last); the values are the float32 ones, rounded once.
template <typename T>
void convert_rows(const SampleNoiseParams& p, const float* rows, int64_t n, T* out) {
  for (int64_t r = 0; r < n; ++r) {
    const float* src = rows + r * p.D;
    T* dst = out + r * p.D;
    if (!p.channels_last) {
      for (int64_t e = 0; e < p.D; ++e) dst[e] = static_cast<T>(src[e]);
    } else {
      for (int64_t c = 0; c < p.C; ++c)
        for (int64_t hw = 0; hw < p.HW; ++hw) dst[hw * p.C + c] = static_cast<T>(src[c * p.HW + hw]);
    }
  }
}

template <typename T>
void run_rows(const SampleNoiseParams& p, T* out) {
  static const RowFiller fill = row_filler();
  constexpr bool kDirect = std::is_same_v<T, float>;
  const int64_t rows = p.B * p.samples;
  const int64_t grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(p.D, 1));
  // Other dtypes and layouts go through a small float32 scratch (rows of one
  // input at a time), so they share the vectorised filler.
  const int64_t scratch_rows = std::max<int64_t>(2, 16384 / std::max<int64_t>(p.D, 1));
  at::parallel_for(0, rows, grain, [&](int64_t r0, int64_t r1) {
    std::vector<float> scratch;
    // The task's rows, input by input: each input's rows are consecutive
    // samples, which the vectorised filler takes two at a time.
    for (int64_t r = r0; r < r1;) {
      const int64_t b = r / p.samples;
      const int64_t end = std::min(r1, (b + 1) * p.samples);
      const int64_t s_of_r = p.sample_start - b * p.samples;  // sample index = row + s_of_r
      if constexpr (kDirect) {
        // One channel: NHWC and NCHW are the same memory order.
        if (!p.channels_last || p.C == 1) {
          plain_rows(fill, p, b, r + s_of_r, end + s_of_r, out + r * p.D);
          r = end;
          continue;
        }
      }
      if (scratch.empty()) scratch.resize(static_cast<size_t>(scratch_rows * p.D));
      for (; r < end;) {
        const int64_t n = std::min(end - r, scratch_rows);
        plain_rows(fill, p, b, r + s_of_r, r + n + s_of_r, scratch.data());
        convert_rows(p, scratch.data(), n, out + r * p.D);
        r += n;
      }
    }
  });
}

at::Tensor sample_noise_cpu(const at::Tensor& x, const at::Tensor& ids, const at::Tensor& sigma,
                            int64_t samples, int64_t sample_start, int64_t seed, int64_t stream,
                            int64_t kind, bool antithetic, std::optional<double> clamp_min,
                            std::optional<double> clamp_max,
                            std::optional<at::ScalarType> out_dtype, bool channels_last) {
  at::Tensor x_c, ids_c, sigma_c, out;
  const SampleNoiseParams p =
      prepare_sample_noise(x, ids, sigma, samples, sample_start, seed, stream, kind, antithetic,
                           clamp_min, clamp_max, out_dtype, channels_last, x_c, ids_c, sigma_c, out);
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out.scalar_type(), "sample_noise_cpu",
                                  [&] { run_rows<scalar_t>(p, out.data_ptr<scalar_t>()); });
  return out;
}

// The engine's variant: the same values written into a batch buffer it reuses
// across forward batches (a fresh 100s-of-KiB tensor per batch costs page
// faults on every call).
void sample_noise_into_cpu(const at::Tensor& x, const at::Tensor& ids, const at::Tensor& sigma,
                           int64_t samples, int64_t sample_start, int64_t seed, int64_t stream,
                           int64_t kind, bool antithetic, std::optional<double> clamp_min,
                           std::optional<double> clamp_max, bool channels_last, const at::Tensor& out) {
  at::Tensor x_c, ids_c, sigma_c;
  const SampleNoiseParams p =
      prepare_sample_noise_into(x, ids, sigma, samples, sample_start, seed, stream, kind, antithetic,
                                clamp_min, clamp_max, channels_last, out, x_c, ids_c, sigma_c);
  if (out.numel() == 0) return;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out.scalar_type(), "sample_noise_into_cpu",
                                  [&] { run_rows<scalar_t>(p, out.data_ptr<scalar_t>()); });
}

}  // namespace

TORCH_LIBRARY_IMPL(smoothcert, CPU, m) {
  m.impl("sample_noise", &sample_noise_cpu);
  m.impl("sample_noise_into", &sample_noise_into_cpu);
}

}  // namespace smoothcert
