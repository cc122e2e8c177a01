// CUDA kernel of smoothcert::count_votes_.
//
// Work split: one thread per logits row runs the shared row_argmax
// (common/votes.h), so ties and NaNs resolve exactly as on the CPU. Rows are
// B * samples (thousands at least), which is plenty of parallelism, and the
// logits pass is small next to the classifier call that produced them.
//
// Counting: integer atomics, so the counts are exact and deterministic in
// any order. Nearly all samples of an input vote for the same class, so the
// threads of a warp (consecutive rows) mostly hit the same counter; they are
// combined first and one lane per distinct counter adds the group's size,
// instead of up to 32 atomics serialising on one address.
#include <cuda_runtime.h>
#include <stdint.h>

#include "../common/votes.h"
#include "launch_common.cuh"
#include "count_votes_kernel.h"

namespace smoothcert {
namespace {

using cuda_common::kMaxBlocks;
using cuda_common::kThreads;
static_assert(kThreads % 32 == 0, "the kernel's vote aggregation needs whole warps");

template <typename T>
__global__ void __launch_bounds__(kThreads)
count_votes_kernel(const T* __restrict__ logits, int64_t rows, int64_t K, int64_t samples,
                   unsigned long long* __restrict__ counts,
                   unsigned long long* __restrict__ nonfinite) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int lane = static_cast<int>(threadIdx.x % 32);
  // The trip count is uniform across the warp (the loop runs while the warp's
  // first row, r - lane, is in range; whole warps), so every
  // lane reaches the full-warp match; lanes past the end only take part.
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; r - lane < rows;
       r += step) {
    const bool valid = r < rows;
    unsigned long long slot = ~0ull;
    if (valid) {
      bool bad;
      slot = static_cast<unsigned long long>((r / samples) * K + row_argmax(logits + r * K, K, &bad));
      // Rare (a broken classifier), so a plain atomic per offending row.
      if (bad && nonfinite != nullptr) atomicAdd(nonfinite + r / samples, 1ull);
    }
    const unsigned peers = __match_any_sync(0xffffffffu, slot);
    if (valid && lane == __ffs(peers) - 1)
      atomicAdd(counts + slot, static_cast<unsigned long long>(__popc(peers)));
  }
}

template <typename T>
cudaError_t launch(const void* logits, int64_t rows, int64_t K, int64_t samples, int64_t* counts,
                   int64_t* nonfinite, cudaStream_t stream) {
  const int64_t blocks = (rows + kThreads - 1) / kThreads;
  const int grid = static_cast<int>(blocks < kMaxBlocks ? blocks : kMaxBlocks);
  // int64 and unsigned long long share their representation, and the counts
  // only ever grow by non-negative amounts.
  count_votes_kernel<T><<<grid, kThreads, 0, stream>>>(
      static_cast<const T*>(logits), rows, K, samples,
      reinterpret_cast<unsigned long long*>(counts), reinterpret_cast<unsigned long long*>(nonfinite));
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_count_votes(const void* logits, int dtype, int64_t rows, int64_t K,
                               int64_t samples, int64_t* counts, int64_t* nonfinite,
                               cudaStream_t stream) {
  if (rows == 0 || K == 0) return cudaSuccess;
  switch (dtype) {
    case kF32: return launch<float>(logits, rows, K, samples, counts, nonfinite, stream);
    case kF16: return launch<__half>(logits, rows, K, samples, counts, nonfinite, stream);
    case kBF16: return launch<__nv_bfloat16>(logits, rows, K, samples, counts, nonfinite, stream);
    case kF64: return launch<double>(logits, rows, K, samples, counts, nonfinite, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace smoothcert
