// Validation and parameter packing for dssn_batch, shared by the CPU and CUDA
// bindings so that both backends reject exactly the same inputs.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include "common/dssn_params.h"

namespace smoothcert {

// Checks the arguments, returns the packed parameters (pointers into the
// contiguous copies `x_c`, `v_c`, `off_c`, `mean_c`, `std_c`, which the caller
// keeps alive) and allocates `out`.
DssnParams prepare_dssn_batch(const at::Tensor& x, const at::Tensor& v, const at::Tensor& offsets,
                              int64_t levels, int64_t q, const std::optional<at::Tensor>& mean,
                              const std::optional<at::Tensor>& std, std::optional<at::ScalarType> out_dtype,
                              bool channels_last, at::Tensor& x_c, at::Tensor& v_c, at::Tensor& off_c,
                              at::Tensor& mean_c, at::Tensor& std_c, at::Tensor& out);

}  // namespace smoothcert
