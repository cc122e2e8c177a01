// Arguments of smoothcert::pair_distances shared by the CPU and CUDA kernels.
#pragma once
#include <stdint.h>

namespace smoothcert {

struct PairParams {
  const float* xq;       // [B, D] row points
  const float* xm;       // [N, D] column points
  const double* reach_q; // [B] reach of each row point
  const double* reach_m; // [N] reach of each column point
  double* out;           // [B, N] exact distance where it is < reach_q + reach_m, else +inf
  int64_t B, N, D;
};

}  // namespace smoothcert
