// Validation and parameter packing for sample_noise, shared by the CPU and
// CUDA bindings so that both backends reject exactly the same inputs.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include "common/sample_noise_params.h"

namespace smoothcert {

// Checks the arguments shared by sample_noise and its backward (messages
// start with `op`) and packs them (contiguous NCHW layout); the tensors
// `x_c`, `ids_c`, `sigma_c` hold the contiguous inputs the pointers refer to.
SampleNoiseParams pack_sample_noise(
    const char* op, const at::Tensor& x, const at::Tensor& ids, const at::Tensor& sigma,
    int64_t samples, int64_t sample_start, int64_t seed, int64_t stream, int64_t kind,
    bool antithetic, std::optional<double> clamp_min, std::optional<double> clamp_max,
    at::Tensor& x_c, at::Tensor& ids_c, at::Tensor& sigma_c);

// Checks the arguments, returns the packed parameters (pointers into `x_c`,
// `ids_c`, `sigma_c`, which the caller keeps alive) and allocates `out`.
SampleNoiseParams prepare_sample_noise(
    const at::Tensor& x, const at::Tensor& ids, const at::Tensor& sigma,
    int64_t samples, int64_t sample_start, int64_t seed, int64_t stream,
    int64_t kind, bool antithetic, std::optional<double> clamp_min,
    std::optional<double> clamp_max, std::optional<at::ScalarType> out_dtype,
    bool channels_last, at::Tensor& x_c, at::Tensor& ids_c, at::Tensor& sigma_c,
    at::Tensor& out, const char* op = "sample_noise");

// As prepare_sample_noise, writing into the caller's `out` instead of a new
// tensor: refuses an `out` that is not [B * samples, *S] of a float dtype,
// dense in the requested memory format and on x's device.
SampleNoiseParams prepare_sample_noise_into(
    const at::Tensor& x, const at::Tensor& ids, const at::Tensor& sigma,
    int64_t samples, int64_t sample_start, int64_t seed, int64_t stream,
    int64_t kind, bool antithetic, std::optional<double> clamp_min,
    std::optional<double> clamp_max, bool channels_last, const at::Tensor& out,
    at::Tensor& x_c, at::Tensor& ids_c, at::Tensor& sigma_c);

}  // namespace smoothcert
