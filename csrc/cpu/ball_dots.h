// The float32 screening dot products of the CPU ball_margin kernel: 4 queries
// against a block of stored rows. Two builds (ball_dots_avx2.cpp with FMA
// intrinsics, ball_dots_base.cpp portable); ball_margin.cpp picks one at run
// time. Their results may differ in the last bits: the screening bound holds
// for any summation order, and the kernel's outputs are exact distances.
#pragma once
#include <stdint.h>

namespace smoothcert {

// out[r * 4 + j] = sum_k q[j][k] * m[r * D + k] for r < rows, j < 4
// (q[j] may repeat a row when there are fewer than 4 queries).
using BallDotsFn = void (*)(const float* const q[4], const float* m, int64_t rows, int64_t D, float* out);

void ball_dots_avx2(const float* const q[4], const float* m, int64_t rows, int64_t D, float* out);
void ball_dots_base(const float* const q[4], const float* m, int64_t rows, int64_t D, float* out);

}  // namespace smoothcert
