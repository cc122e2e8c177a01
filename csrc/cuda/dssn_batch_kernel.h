// CUDA launcher of dssn_batch. Pure CUDA (no torch headers): the binding in
// dssn_batch.cpp validates the arguments, packs DssnParams and allocates the
// output; this side only runs the kernel.
#pragma once
#include <cuda_runtime.h>

#include "../common/dssn_params.h"
#include "dtype_code.h"

namespace smoothcert {

// Writes the B * nb rows described by `p` into `out` (dtype `out_dtype`, a
// DtypeCode). All pointers must be device memory of the current device.
// Asynchronous on `stream`; returns the launch error.
cudaError_t launch_dssn_batch(const DssnParams& p, void* out, int out_dtype, cudaStream_t stream);

}  // namespace smoothcert
