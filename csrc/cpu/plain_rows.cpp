#include "plain_rows.h"

#include <cstdlib>

namespace smoothcert {

int64_t fill_noise_rows_avx512(const SampleNoiseParams&, int64_t, int64_t, int64_t, float*);
int64_t fill_noise_rows_avx2(const SampleNoiseParams&, int64_t, int64_t, int64_t, float*);
int64_t fill_noise_rows_base(const SampleNoiseParams&, int64_t, int64_t, int64_t, float*);

RowFiller row_filler() {
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

namespace {

// Finishes quads [q_begin, ceil(D / 4)) of one row (the part the vectorised
// filler leaves: a partial block and a partial last quad).
void tail_quads(const SampleNoiseParams& p, int64_t b, int64_t s, int64_t q_begin, float* row) {
  for (int64_t q = q_begin; 4 * q < p.D; ++q) {
    float z[4];
    unit_noise_quad(p.seed, p.stream, static_cast<uint32_t>(p.ids[b]), s, p.antithetic, p.kind,
                    static_cast<uint32_t>(q), z);
    for (int i = 0; i < 4 && 4 * q + i < p.D; ++i) row[4 * q + i] = noisy_value(p, b, 4 * q + i, z[i]);
  }
}

}  // namespace

SampleNoiseParams unit_noise_params(const SampleNoiseParams& p, int64_t b, const float* zeros, const float* one) {
  SampleNoiseParams u = p;
  u.x = zeros;
  u.ids = p.ids + b;
  u.sigma = one;
  u.sigma_b_stride = u.sigma_e_stride = 0;
  u.B = 1;
  u.clamp = false;
  return u;
}

void plain_rows(RowFiller fill, const SampleNoiseParams& p, int64_t b, int64_t s0, int64_t s1, float* rows) {
  const int64_t q_begin = fill(p, b, s0, s1, rows);
  for (int64_t s = s0; s < s1; ++s) tail_quads(p, b, s, q_begin, rows + (s - s0) * p.D);
}

}  // namespace smoothcert
