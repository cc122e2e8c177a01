// CUDA launcher of sample_noise. Pure CUDA (no torch headers): the binding in
// sample_noise.cpp validates the arguments, packs SampleNoiseParams and
// allocates the output; this side only runs the kernel.
#pragma once
#include <cuda_runtime.h>

#include "../common/sample_noise_params.h"
#include "dtype_code.h"

namespace smoothcert {

// Writes the B * samples noisy rows described by `p` into `out`, whose dtype
// is `out_dtype` (a DtypeCode) and whose layout p.channels_last describes.
// All pointers in `p` and `out` must be device memory of the current device.
// Asynchronous on `stream`; returns the launch error (cudaSuccess if none or
// if there is no work).
cudaError_t launch_sample_noise(const SampleNoiseParams& p, void* out, int out_dtype,
                                cudaStream_t stream);

}  // namespace smoothcert
