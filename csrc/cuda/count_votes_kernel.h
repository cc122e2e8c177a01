// CUDA launcher of count_votes_. Pure CUDA (no torch headers): the binding in
// count_votes.cpp checks the tensors; this side only runs the kernel.
#pragma once
#include <cuda_runtime.h>
#include <stdint.h>

#include "dtype_code.h"

namespace smoothcert {

// Adds the first-maximum argmax of every row of `logits` ([rows, K],
// contiguous, dtype a DtypeCode) to counts[(row / samples) * K + argmax]
// (`counts` is [rows / samples, K] int64, contiguous) and, when `nonfinite`
// ([rows / samples] int64) is not null, adds 1 to nonfinite[row / samples]
// for each row holding a NaN or +-inf logit. Device pointers of the
// current device. Asynchronous on `stream`; returns the launch error
// (cudaSuccess if none or if there is no work).
cudaError_t launch_count_votes(const void* logits, int dtype, int64_t rows, int64_t K,
                               int64_t samples, int64_t* counts, int64_t* nonfinite,
                               cudaStream_t stream);

}  // namespace smoothcert
