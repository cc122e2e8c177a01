// Argument checks of smoothcert::pair_distances shared by its CPU and CUDA
// bindings (pair_distances_args.cpp).
#pragma once
#include <ATen/core/Tensor.h>

#include "common/pair_params.h"

namespace smoothcert {

// Checks the arguments, makes them contiguous (kept alive in the *_c
// tensors), allocates `out` [B, N] float64 and returns the kernel view.
PairParams prepare_pair_distances(const at::Tensor& xq, const at::Tensor& xm, const at::Tensor& reach_q,
                                  const at::Tensor& reach_m, at::Tensor& xq_c, at::Tensor& xm_c, at::Tensor& rq_c,
                                  at::Tensor& rm_c, at::Tensor& out);

}  // namespace smoothcert
