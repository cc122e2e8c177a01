// Rows of noisy samples as plain float32 rows: the vectorised filler of
// noise_rows.h (AVX-512, AVX2 or baseline, chosen once at run time) plus a
// scalar tail for the last quads. Shared by the CPU sample_noise kernel and
// its backward, which regenerates the noise instead of storing it.
#pragma once
#include <stdint.h>

#include "../common/sample_noise_params.h"

namespace smoothcert {

// (params, input b, first sample, end sample, first row) -> quads filled per row
using RowFiller = int64_t (*)(const SampleNoiseParams&, int64_t, int64_t, int64_t, float*);

// The filler for this CPU; SMOOTHCERT_CPU_BASELINE=1 forces the baseline build
// and =2 the AVX2 build (tests check that all builds write the same bits).
RowFiller row_filler();

// Rows of samples [s0, s1) of input b (D floats each, consecutive) at `rows`.
void plain_rows(RowFiller fill, const SampleNoiseParams& p, int64_t b, int64_t s0, int64_t s1, float* rows);

// The parameters that make plain_rows write the unit noise z of input b of `p` (as input 0):
// x = `zeros` (D floats), sigma = `one` (1.0f), no clamp; 0 + 1 * z is z exactly.
SampleNoiseParams unit_noise_params(const SampleNoiseParams& p, int64_t b, const float* zeros, const float* one);

}  // namespace smoothcert
