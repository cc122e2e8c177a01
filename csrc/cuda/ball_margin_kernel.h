// CUDA launchers of ball_margin. Pure CUDA (no torch headers): the binding in
// ball_margin.cpp checks the tensors, allocates the workspace and runs the
// phases in order on one stream:
//
//   p = 2: norms -> screen -> collect (-> collect again if the candidate
//          buffer overflowed) -> exact -> argmin -> finalize
//   p = 1: exact over all pairs -> argmin over all pairs -> finalize
//
// Keys are doubles mapped to uint64 so that unsigned order is numeric order
// (atomicMin then takes a minimum); ~0 means "none". All pointers are device
// memory of the current device; every launcher is asynchronous on `stream`
// and returns the launch error, except ball_read_count, which synchronises.
#pragma once
#include <cuda_runtime.h>
#include <stdint.h>

#include "../common/ball_math.h"

namespace smoothcert {

// Fills `words` uint64 words with ~0 ("none").
cudaError_t ball_fill_none(unsigned long long* keys, int64_t words, cudaStream_t stream);
// out[r] = sum_k x[r, k]^2 in fp64, for r < rows.
cudaError_t launch_ball_norms(const float* x, int64_t rows, int64_t D, double* out, cudaStream_t stream);
// u_near[b] = min_i hi(b, i), u_margin[b] = min over eligible i of hi(b, i) - R_i
// (keys), from the float32 screening of every pair.
cudaError_t launch_ball_screen(const BallParams& p, const double* qn, const double* mn,
                               unsigned long long* u_near, unsigned long long* u_margin, cudaStream_t stream);
// Appends every pair whose screening interval could hold a minimum to `cand`
// (packed (b * N + i) * 4 + flags, bit 0 nearest, bit 1 margin), counting them
// in *count even past `cap` (the caller then reruns with a larger buffer).
cudaError_t launch_ball_collect(const BallParams& p, const double* qn, const double* mn,
                                const unsigned long long* u_near, const unsigned long long* u_margin,
                                long long* cand, unsigned long long* count, int64_t cap, cudaStream_t stream);
// *host = *count (synchronises the stream).
cudaError_t ball_read_count(const unsigned long long* count, int64_t* host, cudaStream_t stream);
// Exact distances of the candidates (cand == nullptr: all B * N pairs, both
// flags where eligible) into vals (if not null), and their minima into
// best_near / best_margin (keys).
cudaError_t launch_ball_exact(const BallParams& p, const long long* cand, int64_t count, double* vals,
                              unsigned long long* best_near, unsigned long long* best_margin, cudaStream_t stream);
// The lowest index attaining each minimum (vals == nullptr: recomputed).
cudaError_t launch_ball_argmin(const BallParams& p, const long long* cand, int64_t count, const double* vals,
                               const unsigned long long* best_near, const unsigned long long* best_margin,
                               unsigned long long* idx_near, unsigned long long* idx_margin, cudaStream_t stream);
// Keys to the four outputs (+inf and -1 where none).
cudaError_t launch_ball_finalize(int64_t B, const unsigned long long* best_near,
                                 const unsigned long long* best_margin, const unsigned long long* idx_near,
                                 const unsigned long long* idx_margin, double* margin, int64_t* margin_idx,
                                 double* nearest, int64_t* nearest_idx, cudaStream_t stream);

}  // namespace smoothcert
