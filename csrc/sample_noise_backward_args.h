// Validation and parameter packing for sample_noise_backward, shared by the
// CPU and CUDA bindings.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include "common/sample_noise_params.h"

namespace smoothcert {

// Checks the forward's arguments and `grad` ([B * samples, *S] float32,
// contiguous), returns the packed forward parameters, and allocates the two
// [B, D] float64 outputs.
SampleNoiseParams prepare_sample_noise_backward(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& ids, const at::Tensor& sigma,
    int64_t samples, int64_t sample_start, int64_t seed, int64_t stream, int64_t kind, bool antithetic,
    std::optional<double> clamp_min, std::optional<double> clamp_max, at::Tensor& x_c, at::Tensor& ids_c,
    at::Tensor& sigma_c, at::Tensor& grad_x, at::Tensor& grad_sigma);

}  // namespace smoothcert
