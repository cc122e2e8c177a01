// CUDA launcher of sample_noise_pairs (torch-free; see sample_noise_pairs.cpp).
#pragma once
#include <cuda_runtime.h>

#include "../common/sample_noise_params.h"
#include "dtype_code.h"

namespace smoothcert {

// Writes the B * samples rows of `p` into `out` (dtype code `out_dtype`) and
// the B * samples / 2 pair dot products into `dots`. Asynchronous on `stream`.
cudaError_t launch_sample_noise_pairs(const SampleNoiseParams& p, void* out, int out_dtype, double* dots,
                                      cudaStream_t stream);

}  // namespace smoothcert
