// CUDA kernels of smoothcert::pair_distances (phases in pair_distances_kernel.h).
//
// Collection: a block of 16 x 16 threads computes the float32 dot products of
// a 64-row x 64-column tile (4 x 4 per thread, rows ty + 16 s and columns
// tx + 16 t, so the shared-memory reads are broadcasts or conflict-free)
// through shared-memory slices of 16 elements. Its epilogue screens each pair
// with the rigorous interval of common/ball_math.h and appends the pairs whose
// lower bound is below the threshold, one atomicAdd per warp. Any pair with
// exact distance below the threshold has lo <= distance < threshold, so it is
// collected; the others keep the output's +inf.
//
// Exact: 8 lanes per pair, lane j summing k = j (mod 8) in increasing k, the
// lanes combined by xor shuffles in the canonical tree; every operation is an
// explicit _rn intrinsic, so the bits are those of the CPU kernel and the twin
// whatever --fmad the build passes.
#include <cuda_runtime.h>
#include <stdint.h>

#include "../common/ball_math.h"
#include "launch_common.cuh"
#include "pair_distances_kernel.h"

namespace smoothcert {
namespace {

using cuda_common::kMaxBlocks;
using cuda_common::kThreads;

constexpr int kTile = 64, kSlice = 16, kSub = 4, kSide = 16;
constexpr unsigned kFull = 0xffffffffu;

// Appends the pairs of this thread's `mask` (bit s * 4 + t: row ty + 16 s,
// column tx + 16 t of the tile). Warp-level prefix sum of the counts, then one
// atomicAdd per warp: with wide reaches nearly every pair is a candidate, and
// one atomic per pair on a single counter would serialise the kernel. All 32
// lanes must call it.
__device__ __forceinline__ void append(const PairParams& p, unsigned mask, int64_t b0, int64_t i0, int lane,
                                       long long* cand, unsigned long long* count, int64_t cap) {
  const unsigned n = __popc(mask);
  unsigned incl = n;
  for (int o = 1; o < 32; o *= 2) {
    const unsigned v = __shfl_up_sync(kFull, incl, o);
    if (lane >= o) incl += v;
  }
  const unsigned total = __shfl_sync(kFull, incl, 31);
  if (total == 0) return;  // warp-uniform
  unsigned long long base = 0;
  if (lane == 31) base = atomicAdd(count, static_cast<unsigned long long>(total));
  unsigned long long slot = __shfl_sync(kFull, base, 31) + (incl - n);
  while (mask != 0) {
    const int bit = __ffs(mask) - 1;
    mask &= mask - 1;
    if (slot < static_cast<unsigned long long>(cap))
      cand[slot] = (b0 + kSide * (bit / kSub)) * p.N + (i0 + kSide * (bit % kSub));
    ++slot;
  }
}

// Grid-stride over the tiles (row tile t / tiles_n, column tile t % tiles_n),
// so no grid dimension limits B or N.
__global__ void __launch_bounds__(256) collect_kernel(const PairParams p, const double* __restrict__ qn,
                                                     const double* __restrict__ mn, long long* cand,
                                                     unsigned long long* count, int64_t cap, int64_t tiles_n,
                                                     int64_t tiles) {
  __shared__ float qs[kSlice][kTile + 1];
  __shared__ float ms[kSlice][kTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * kSide + tx, lane = tid % 32;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int64_t q0 = (tile / tiles_n) * kTile, m0 = (tile % tiles_n) * kTile;
    float acc[kSub][kSub];
    for (int s = 0; s < kSub; ++s)
      for (int t = 0; t < kSub; ++t) acc[s][t] = 0.0f;
    for (int64_t k0 = 0; k0 < p.D; k0 += kSlice) {
      // 16 consecutive threads read 16 consecutive elements of one row; zero
      // padding past B, N or D adds nothing to the dot products.
      for (int l = 0; l < (kTile * kSlice) / 256; ++l) {
        const int idx = tid + l * 256, row = idx / kSlice, col = idx % kSlice;
        const int64_t k = k0 + col, qb = q0 + row, mi = m0 + row;
        qs[col][row] = (qb < p.B && k < p.D) ? p.xq[qb * p.D + k] : 0.0f;
        ms[col][row] = (mi < p.N && k < p.D) ? p.xm[mi * p.D + k] : 0.0f;
      }
      __syncthreads();
      for (int kk = 0; kk < kSlice; ++kk) {
        float a[kSub], c[kSub];
        for (int s = 0; s < kSub; ++s) {
          a[s] = qs[kk][ty + kSide * s];
          c[s] = ms[kk][tx + kSide * s];
        }
        for (int s = 0; s < kSub; ++s)
          for (int t = 0; t < kSub; ++t) acc[s][t] = __fmaf_rn(a[s], c[t], acc[s][t]);
      }
      __syncthreads();  // the next slice (or tile) overwrites qs / ms
    }
    unsigned mask = 0;
    for (int s = 0; s < kSub; ++s) {
      const int64_t b = q0 + ty + kSide * s;
      if (b >= p.B) continue;
      for (int t = 0; t < kSub; ++t) {
        const int64_t i = m0 + tx + kSide * t;
        if (i >= p.N) continue;
        // The same fp64 sum as the exact kernel's, so the two tests agree.
        const double thr = p.reach_q[b] + p.reach_m[i];
        double lo, hi;
        ball_screen_bounds(acc[s][t], qn[b], mn[i], p.D, &lo, &hi);
        if (lo < thr) mask |= 1u << (s * kSub + t);
      }
    }
    append(p, mask, q0 + ty, m0 + tx, lane, cand, count, cap);
  }
}

// Lane j's canonical partial sum (ball_lane_sum's order) without contraction.
__device__ __forceinline__ double lane_sum_rn(const float* a, const float* b, int64_t D, int j) {
  double s = 0.0;
  for (int64_t k = j; k < D; k += kBallLanes) {
    const double t = __dsub_rn(static_cast<double>(a[k]), static_cast<double>(b[k]));
    s = __dadd_rn(s, __dmul_rn(t, t));
  }
  return s;
}

// Four pairs per warp, one per group of 8 lanes.
__global__ void __launch_bounds__(256) exact_kernel(const PairParams p, const long long* __restrict__ cand,
                                                    int64_t count) {
  const int lane = threadIdx.x % 32, g = lane / kBallLanes, j = lane % kBallLanes;
  const int64_t warps_per_block = blockDim.x / 32;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * warps_per_block * 4;
  // Warp-uniform trip count: the shuffles need every lane of the warp, so the
  // groups past `count` run along with a zero sum.
  for (int64_t base = (static_cast<int64_t>(blockIdx.x) * warps_per_block + threadIdx.x / 32) * 4; base < count;
       base += stride) {
    const int64_t c = base + g;
    const bool valid = c < count;
    const int64_t pair = valid ? static_cast<int64_t>(cand[c]) : 0;
    const int64_t b = pair / p.N, i = pair % p.N;
    double s = valid ? lane_sum_rn(p.xq + b * p.D, p.xm + i * p.D, p.D, j) : 0.0;
    // Lane 0 of the group ends with ((s0+s1)+(s2+s3))+((s4+s5)+(s6+s7)),
    // i.e. ball_lane_total (fp addition is commutative, so every lane agrees).
    s = __dadd_rn(s, __shfl_xor_sync(kFull, s, 1));
    s = __dadd_rn(s, __shfl_xor_sync(kFull, s, 2));
    s = __dadd_rn(s, __shfl_xor_sync(kFull, s, 4));
    if (!valid || j != 0) continue;
    const double d = ball_finish(s, 2);  // IEEE sqrt, correctly rounded
    if (d < p.reach_q[b] + p.reach_m[i]) p.out[pair] = d;
  }
}

int blocks_for(int64_t work, int64_t per_block) {
  const int64_t blocks = (work + per_block - 1) / per_block;
  return static_cast<int>(blocks < 1 ? 1 : (blocks < kMaxBlocks ? blocks : kMaxBlocks));
}

}  // namespace

cudaError_t launch_pair_collect(const PairParams& p, const double* qn, const double* mn, long long* cand,
                                unsigned long long* count, int64_t cap, cudaStream_t stream) {
  cudaError_t err = cudaMemsetAsync(count, 0, sizeof(unsigned long long), stream);
  if (err != cudaSuccess || p.B == 0 || p.N == 0) return err;
  const int64_t tiles_n = (p.N + kTile - 1) / kTile, tiles = ((p.B + kTile - 1) / kTile) * tiles_n;
  collect_kernel<<<blocks_for(tiles, 1), dim3(kSide, kSide), 0, stream>>>(p, qn, mn, cand, count, cap, tiles_n,
                                                                           tiles);
  return cudaGetLastError();
}

cudaError_t launch_pair_exact(const PairParams& p, const long long* cand, int64_t count, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  exact_kernel<<<blocks_for(count, (kThreads / 32) * 4), kThreads, 0, stream>>>(p, cand, count);
  return cudaGetLastError();
}

}  // namespace smoothcert
