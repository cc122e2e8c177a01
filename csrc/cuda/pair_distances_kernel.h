// CUDA launchers of smoothcert::pair_distances. Pure CUDA (no torch headers):
// the binding in pair_distances.cpp checks the tensors, allocates the +inf
// output and the workspace, and runs the phases in order on one stream:
//
//   norms (launch_ball_norms of ball_margin_kernel.h, rows and columns)
//   -> collect (-> collect again if the candidate buffer overflowed)
//   -> exact
//
// All pointers are device memory of the current device; every launcher is
// asynchronous on `stream` and returns the launch error.
#pragma once
#include <cuda_runtime.h>
#include <stdint.h>

#include "../common/pair_params.h"

namespace smoothcert {

// Screens every pair (b, i) with float32 dot products and the fp64 squared
// norms qn [B], mn [N], and appends b * N + i to `cand` for every pair whose
// screening lower bound is below reach_q[b] + reach_m[i]. *count is zeroed
// first and then counts every such pair, even past `cap` (only the first
// `cap` are stored; the caller then reruns with a larger buffer).
cudaError_t launch_pair_collect(const PairParams& p, const double* qn, const double* mn, long long* cand,
                                unsigned long long* count, int64_t cap, cudaStream_t stream);

// Canonical exact distance of each of the `count` candidate pairs; writes
// out[b * N + i] = d where d < reach_q[b] + reach_m[i] (the rest stays +inf).
cudaError_t launch_pair_exact(const PairParams& p, const long long* cand, int64_t count, cudaStream_t stream);

}  // namespace smoothcert
