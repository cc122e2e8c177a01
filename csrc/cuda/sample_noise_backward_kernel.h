// CUDA launcher of sample_noise_backward. Pure CUDA (no torch headers): the
// binding in sample_noise_backward.cpp validates and allocates.
#pragma once
#include <cuda_runtime.h>

#include "../common/sample_noise_params.h"

namespace smoothcert {

// grad_x, grad_sigma: [B, D] float64 outputs; partial: scratch of
// 2 * chunks * B * D doubles when backward_chunks(p.samples) > 1 (else unused).
// Asynchronous on `stream`; returns the launch error.
cudaError_t launch_sample_noise_backward(const SampleNoiseParams& p, const float* grad, double* grad_x,
                                         double* grad_sigma, double* partial, cudaStream_t stream);

}  // namespace smoothcert
