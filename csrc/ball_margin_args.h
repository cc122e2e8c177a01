// Argument checks and parameter packing of ball_margin, shared by the CPU and
// CUDA bindings so both backends reject exactly the same inputs.
#pragma once
#include <ATen/core/Tensor.h>

#include "common/ball_math.h"

namespace smoothcert {

// Checks the arguments, makes contiguous copies (kept alive by the caller
// through the references) and returns the packed parameters.
BallParams prepare_ball_margin(const at::Tensor& xq, const at::Tensor& xm, const at::Tensor& radius,
                               const at::Tensor& mem_class, const at::Tensor& query_class, int64_t p,
                               at::Tensor& xq_c, at::Tensor& xm_c, at::Tensor& r_c, at::Tensor& mc_c,
                               at::Tensor& qc_c);

// The four outputs, initialised to "no stored point": margin = nearest = +inf,
// indices = -1 ([B] float64, int64, float64, int64 on xq's device).
void empty_ball_outputs(const at::Tensor& xq, at::Tensor& margin, at::Tensor& margin_idx, at::Tensor& nearest,
                        at::Tensor& nearest_idx);

}  // namespace smoothcert
