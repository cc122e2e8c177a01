// Validation and parameter packing for sample_noise_pairs, shared by the CPU
// and CUDA bindings so that both backends reject exactly the same inputs.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include "common/sample_noise_params.h"

namespace smoothcert {

// sample_noise's checks (no antithetic mode; kinds 0 and 1 only) plus even
// `samples` and `sample_start`, so that rows 2j, 2j+1 of every input form one
// of its pairs; allocates the batch `out` and the [B, samples / 2] float64
// `dots`.
SampleNoiseParams prepare_sample_noise_pairs(
    const at::Tensor& x, const at::Tensor& ids, const at::Tensor& sigma, int64_t samples,
    int64_t sample_start, int64_t seed, int64_t stream, int64_t kind, std::optional<double> clamp_min,
    std::optional<double> clamp_max, std::optional<at::ScalarType> out_dtype, bool channels_last,
    at::Tensor& x_c, at::Tensor& ids_c, at::Tensor& sigma_c, at::Tensor& out, at::Tensor& dots);

}  // namespace smoothcert
