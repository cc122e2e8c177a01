// CPU kernel of smoothcert::sample_noise: x + sigma * eps written straight
// into the classifier's batch.
//
// Work split: one output row (one sample of one input) per task of
// at::parallel_for. Contiguous float32 rows go through the vectorised filler
// (noise_rows.h, AVX2 or baseline, chosen once at run time); other dtypes,
// channels_last and each row's last few quads take the scalar path.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include <cstdlib>
#include <type_traits>

#include "../sample_noise_args.h"

namespace smoothcert {

int64_t fill_noise_rows_avx512(const SampleNoiseParams&, int64_t, float, uint32_t, uint32_t, float*);
int64_t fill_noise_rows_avx2(const SampleNoiseParams&, int64_t, float, uint32_t, uint32_t, float*);
int64_t fill_noise_rows_base(const SampleNoiseParams&, int64_t, float, uint32_t, uint32_t, float*);

namespace {

using RowFiller = int64_t (*)(const SampleNoiseParams&, int64_t, float, uint32_t, uint32_t, float*);

// SMOOTHCERT_CPU_BASELINE=1 forces the baseline build and =2 the AVX2 build
// (tests check that all builds write the same bits).
RowFiller pick_row_filler() {
  const char* force = std::getenv("SMOOTHCERT_CPU_BASELINE");
  if (force != nullptr && force[0] == '1') return &fill_noise_rows_base;
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
  if (force != nullptr && force[0] == '2') return &fill_noise_rows_avx2;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw"))
    return &fill_noise_rows_avx512;
  if (__builtin_cpu_supports("avx2")) return &fill_noise_rows_avx2;
#endif
  return &fill_noise_rows_base;
}

template <typename T>
void generic_quads(const SampleNoiseParams& p, int64_t row, int64_t q_begin, T* out) {
  const int64_t b = row / p.samples;
  const int64_t s = p.sample_start + row % p.samples;
  for (int64_t q = q_begin; 4 * q < p.D; ++q) {
    float z[4];
    unit_noise_quad(p.seed, p.stream, static_cast<uint32_t>(p.ids[b]), s, p.antithetic,
                    p.kind, static_cast<uint32_t>(q), z);
    for (int i = 0; i < 4 && 4 * q + i < p.D; ++i) {
      const int64_t e = 4 * q + i;
      out[out_offset(p, row, e)] = static_cast<T>(noisy_value(p, b, e, z[i]));
    }
  }
}

template <typename T>
void run_rows(const SampleNoiseParams& p, T* out) {
  static const RowFiller fill_rows = pick_row_filler();
  const int64_t rows = p.B * p.samples;
  const int64_t grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(p.D, 1));
  at::parallel_for(0, rows, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      int64_t q_begin = 0;
      if constexpr (std::is_same_v<T, float>) {
        if (!p.channels_last) {
          const int64_t b = row / p.samples;
          const int64_t s = p.sample_start + row % p.samples;
          const float sign = (p.antithetic && (s & 1)) ? -1.0f : 1.0f;
          const auto key = static_cast<uint32_t>(p.antithetic ? (s >> 1) : s);
          const auto input = static_cast<uint32_t>(p.ids[b]);
          q_begin = fill_rows(p, b, sign, input, key, out + row * p.D);
        }
      }
      generic_quads(p, row, q_begin, out);
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

}  // namespace

TORCH_LIBRARY_IMPL(smoothcert, CPU, m) { m.impl("sample_noise", &sample_noise_cpu); }

}  // namespace smoothcert
