// CUDA kernels of smoothcert::ball_margin (phases in ball_margin_kernel.h).
//
// Screening and collection share one tiled float32 dot-product kernel: a
// block of 16 x 16 threads computes a 64-query x 64-row tile (4 x 4 per
// thread) through shared-memory slices of 16 elements, and its epilogue
// either lowers the per-query thresholds (atomicMin on keys) or appends the
// pairs that could attain them. The threshold of a query is the smallest
// upper bound over all stored rows, so every pair whose interval holds the
// exact minimum is collected (common/ball_math.h). Exact distances take 8
// lanes per pair, lane j summing k = j (mod 8), combined by xor shuffles in
// the canonical tree: the same bits as the CPU kernel and the twin.
#include <cuda_runtime.h>
#include <stdint.h>

#include "../common/ball_math.h"
#include "ball_margin_kernel.h"
#include "launch_common.cuh"

namespace smoothcert {
namespace {

using cuda_common::kMaxBlocks;
using cuda_common::kThreads;

constexpr int kTile = 64, kSlice = 16, kSub = 4;
constexpr unsigned long long kNone = ~0ull;
constexpr unsigned kFull = 0xffffffffu;

__device__ __forceinline__ unsigned long long key_of(double v) {
  const auto u = static_cast<unsigned long long>(__double_as_longlong(v));
  return (u >> 63) ? ~u : (u | 0x8000000000000000ull);
}

__device__ __forceinline__ double value_of(unsigned long long k) {
  const unsigned long long u = (k >> 63) ? (k & 0x7fffffffffffffffull) : ~k;
  return __longlong_as_double(static_cast<long long>(u));
}

// NaN and +inf never beat the CPU kernel's empty minimum (+inf, -1) in
// ball_better, so they never enter a minimum here: a NaN key would win
// atomicMin (sign bit set) or equal kNone.
__device__ __forceinline__ bool offered(double v) { return v < INFINITY; }

__global__ void fill_kernel(unsigned long long* keys, int64_t words) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < words;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    keys[i] = kNone;
}

// One warp per row.
__global__ void norms_kernel(const float* __restrict__ x, int64_t rows, int64_t D, double* __restrict__ out) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32; r < rows;
       r += warps) {
    double s = 0.0;
    for (int64_t k = lane; k < D; k += 32) {
      const double v = static_cast<double>(x[r * D + k]);
      s += v * v;
    }
    for (int o = 16; o > 0; o /= 2) s += __shfl_xor_sync(kFull, s, o);
    if (lane == 0) out[r] = s;
  }
}

enum class Mode { kScreen, kCollect };

// Grid-stride over the tiles (query tile t / tiles_n, memory tile t % tiles_n),
// so no grid dimension limits B or N (gridDim.y <= 65535 would cap B near
// 4.2M). The trip count depends on blockIdx.x only, so every thread of a block
// runs the same tiles and reaches the same __syncthreads(). One flat index
// rather than a stride in y with m0 fixed: nvcc then keeps the memory-side
// addresses live across tiles, 98 registers instead of 80 (2 blocks per SM, not 3).
template <Mode M>
__global__ void __launch_bounds__(256) tile_kernel(const BallParams p, const double* __restrict__ qn,
                                                   const double* __restrict__ mn, unsigned long long* u_near,
                                                   unsigned long long* u_margin, long long* cand,
                                                   unsigned long long* count, int64_t cap) {
  __shared__ float qs[kSlice][kTile + 1];
  __shared__ float ms[kSlice][kTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * 16 + tx;
  const int64_t tiles_n = (p.N + kTile - 1) / kTile, tiles = ((p.B + kTile - 1) / kTile) * tiles_n;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int64_t q0 = (tile / tiles_n) * kTile, m0 = (tile % tiles_n) * kTile;
    float acc[kSub][kSub];
    for (int a = 0; a < kSub; ++a)
      for (int c = 0; c < kSub; ++c) acc[a][c] = 0.0f;
    for (int64_t k0 = 0; k0 < p.D; k0 += kSlice) {
      for (int l = 0; l < (kTile * kSlice) / 256; ++l) {
        const int idx = tid + l * 256, row = idx / kSlice, col = idx % kSlice;
        const int64_t k = k0 + col;
        const int64_t qb = q0 + row, mi = m0 + row;
        qs[col][row] = (qb < p.B && k < p.D) ? p.xq[qb * p.D + k] : 0.0f;
        ms[col][row] = (mi < p.N && k < p.D) ? p.xm[mi * p.D + k] : 0.0f;
      }
      __syncthreads();
      for (int kk = 0; kk < kSlice; ++kk) {
        float a[kSub], c[kSub];
        for (int s = 0; s < kSub; ++s) {
          a[s] = qs[kk][ty * kSub + s];
          c[s] = ms[kk][tx * kSub + s];
        }
        for (int s = 0; s < kSub; ++s)
          for (int t = 0; t < kSub; ++t) acc[s][t] = __fmaf_rn(a[s], c[t], acc[s][t]);
      }
      __syncthreads();  // the next slice (or tile) overwrites qs / ms
    }
    for (int s = 0; s < kSub; ++s) {
      const int64_t b = q0 + ty * kSub + s;
      if (b >= p.B) continue;
      const int64_t cb = p.query_class[b];
      double un = 0.0, um = 0.0;
      unsigned long long kn = kNone, km = kNone;
      if (M == Mode::kCollect) {
        un = value_of(u_near[b]);
        um = u_margin[b] == kNone ? -INFINITY : value_of(u_margin[b]);
      }
      for (int t = 0; t < kSub; ++t) {
        const int64_t i = m0 + tx * kSub + t;
        if (i >= p.N) continue;
        double lo, hi;
        ball_screen_bounds(acc[s][t], qn[b], mn[i], p.D, &lo, &hi);
        const bool eligible = p.mem_class[i] != cb;
        const double r = p.radius[i];
        if (M == Mode::kScreen) {
          // hi is never NaN, hi - r is for a NaN radius (or inf - inf): the CPU
          // kernel's std::min then keeps its threshold, and a NaN key would win.
          kn = min(kn, key_of(hi));
          if (eligible && !isnan(hi - r)) km = min(km, key_of(hi - r));
        } else {
          const int flags = (lo <= un ? 1 : 0) | (eligible && lo - r <= um ? 2 : 0);
          if (flags) {
            const unsigned long long slot = atomicAdd(count, 1ull);
            if (slot < static_cast<unsigned long long>(cap)) cand[slot] = (b * p.N + i) * 4 + flags;
          }
        }
      }
      if (M == Mode::kScreen) {
        // The 16 threads of one ty (half a warp) share query b: one atomic each.
        const unsigned half = 0xffffu << (16 * (ty & 1));
        for (int o = 8; o > 0; o /= 2) {
          kn = min(kn, __shfl_xor_sync(half, kn, o));
          km = min(km, __shfl_xor_sync(half, km, o));
        }
        if (tx == 0) {
          atomicMin(u_near + b, kn);
          if (km != kNone) atomicMin(u_margin + b, km);
        }
      }
    }
  }
}

// The candidate of lane group g: pair (b, i) and its flags; all pairs when cand is null.
__device__ __forceinline__ bool candidate(const BallParams& p, const long long* cand, int64_t c, int64_t count,
                                          int64_t* b, int64_t* i, int* flags) {
  if (c >= count) {
    *b = 0;
    *i = 0;
    *flags = 0;
    return false;
  }
  int64_t pair;
  if (cand != nullptr) {
    pair = cand[c] / 4;
    *flags = static_cast<int>(cand[c] % 4);
  } else {
    pair = c;
    *flags = 1;
  }
  *b = pair / p.N;
  *i = pair % p.N;
  if (cand == nullptr && p.mem_class[*i] != p.query_class[*b]) *flags |= 2;
  return true;
}

// Exact distance of pair (b, i) by the 8 lanes of a group (all 32 lanes of the
// warp call this together); every lane of the group returns the total.
__device__ __forceinline__ double group_distance(const BallParams& p, int64_t b, int64_t i, int j) {
  double s = ball_lane_sum(p.xq + b * p.D, p.xm + i * p.D, p.D, p.p, j);
  s = s + __shfl_xor_sync(kFull, s, 1);
  s = s + __shfl_xor_sync(kFull, s, 2);
  s = s + __shfl_xor_sync(kFull, s, 4);
  return ball_finish(s, p.p);
}

template <bool Argmin>
__global__ void exact_kernel(const BallParams p, const long long* __restrict__ cand, int64_t count,
                             double* vals, const double* __restrict__ vals_in, unsigned long long* best_near,
                             unsigned long long* best_margin, unsigned long long* idx_near,
                             unsigned long long* idx_margin) {
  const int lane = threadIdx.x % 32, g = lane / kBallLanes, j = lane % kBallLanes;
  const int64_t groups = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32) * 4;
  // Warp-uniform trip count: the shuffles need every lane of the warp.
  for (int64_t base = (static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32) * 4;
       base < count; base += groups) {
    int64_t b, i;
    int flags;
    const bool valid = candidate(p, cand, base + g, count, &b, &i, &flags);
    double d;
    if (Argmin && vals_in != nullptr) {
      d = valid ? vals_in[base + g] : 0.0;
    } else {
      d = group_distance(p, b, i, j);
    }
    if (!valid || j != 0) continue;
    const double m = d - p.radius[i];
    if (!Argmin) {
      if (vals != nullptr) vals[base + g] = d;
      if ((flags & 1) && offered(d)) atomicMin(best_near + b, key_of(d));
      if ((flags & 2) && offered(m)) atomicMin(best_margin + b, key_of(m));
    } else {
      if ((flags & 1) && offered(d) && key_of(d) == best_near[b])
        atomicMin(idx_near + b, static_cast<unsigned long long>(i));
      if ((flags & 2) && offered(m) && key_of(m) == best_margin[b])
        atomicMin(idx_margin + b, static_cast<unsigned long long>(i));
    }
  }
}

__global__ void finalize_kernel(int64_t B, const unsigned long long* best_near, const unsigned long long* best_margin,
                                const unsigned long long* idx_near, const unsigned long long* idx_margin,
                                double* margin, int64_t* margin_idx, double* nearest, int64_t* nearest_idx) {
  for (int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; b < B;
       b += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    nearest[b] = best_near[b] == kNone ? INFINITY : value_of(best_near[b]);
    nearest_idx[b] = idx_near[b] == kNone ? -1 : static_cast<int64_t>(idx_near[b]);
    margin[b] = best_margin[b] == kNone ? INFINITY : value_of(best_margin[b]);
    margin_idx[b] = idx_margin[b] == kNone ? -1 : static_cast<int64_t>(idx_margin[b]);
  }
}

int blocks_for(int64_t work, int per_block) {
  const int64_t blocks = (work + per_block - 1) / per_block;
  return static_cast<int>(blocks < 1 ? 1 : (blocks < kMaxBlocks ? blocks : kMaxBlocks));
}

// One block per tile up to kMaxBlocks; tile_kernel strides over the rest.
dim3 tile_grid(const BallParams& p) {
  return dim3(blocks_for(((p.B + kTile - 1) / kTile) * ((p.N + kTile - 1) / kTile), 1));
}

}  // namespace

cudaError_t ball_fill_none(unsigned long long* keys, int64_t words, cudaStream_t stream) {
  fill_kernel<<<blocks_for(words, kThreads), kThreads, 0, stream>>>(keys, words);
  return cudaGetLastError();
}

cudaError_t launch_ball_norms(const float* x, int64_t rows, int64_t D, double* out, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  norms_kernel<<<blocks_for(rows, kThreads / 32), kThreads, 0, stream>>>(x, rows, D, out);
  return cudaGetLastError();
}

cudaError_t launch_ball_screen(const BallParams& p, const double* qn, const double* mn,
                               unsigned long long* u_near, unsigned long long* u_margin, cudaStream_t stream) {
  tile_kernel<Mode::kScreen><<<tile_grid(p), dim3(16, 16), 0, stream>>>(p, qn, mn, u_near, u_margin, nullptr,
                                                                         nullptr, 0);
  return cudaGetLastError();
}

cudaError_t launch_ball_collect(const BallParams& p, const double* qn, const double* mn,
                                const unsigned long long* u_near, const unsigned long long* u_margin,
                                long long* cand, unsigned long long* count, int64_t cap, cudaStream_t stream) {
  cudaError_t err = cudaMemsetAsync(count, 0, sizeof(unsigned long long), stream);
  if (err != cudaSuccess) return err;
  tile_kernel<Mode::kCollect><<<tile_grid(p), dim3(16, 16), 0, stream>>>(
      p, qn, mn, const_cast<unsigned long long*>(u_near), const_cast<unsigned long long*>(u_margin), cand, count,
      cap);
  return cudaGetLastError();
}

cudaError_t ball_read_count(const unsigned long long* count, int64_t* host, cudaStream_t stream) {
  unsigned long long h = 0;
  cudaError_t err = cudaMemcpyAsync(&h, count, sizeof(h), cudaMemcpyDeviceToHost, stream);
  if (err == cudaSuccess) err = cudaStreamSynchronize(stream);
  *host = static_cast<int64_t>(h);
  return err;
}

cudaError_t launch_ball_exact(const BallParams& p, const long long* cand, int64_t count, double* vals,
                              unsigned long long* best_near, unsigned long long* best_margin, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  exact_kernel<false><<<blocks_for(count, (kThreads / 32) * 4), kThreads, 0, stream>>>(
      p, cand, count, vals, nullptr, best_near, best_margin, nullptr, nullptr);
  return cudaGetLastError();
}

cudaError_t launch_ball_argmin(const BallParams& p, const long long* cand, int64_t count, const double* vals,
                               const unsigned long long* best_near, const unsigned long long* best_margin,
                               unsigned long long* idx_near, unsigned long long* idx_margin, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  exact_kernel<true><<<blocks_for(count, (kThreads / 32) * 4), kThreads, 0, stream>>>(
      p, cand, count, nullptr, vals, const_cast<unsigned long long*>(best_near),
      const_cast<unsigned long long*>(best_margin), idx_near, idx_margin);
  return cudaGetLastError();
}

cudaError_t launch_ball_finalize(int64_t B, const unsigned long long* best_near,
                                 const unsigned long long* best_margin, const unsigned long long* idx_near,
                                 const unsigned long long* idx_margin, double* margin, int64_t* margin_idx,
                                 double* nearest, int64_t* nearest_idx, cudaStream_t stream) {
  if (B == 0) return cudaSuccess;
  finalize_kernel<<<blocks_for(B, kThreads), kThreads, 0, stream>>>(B, best_near, best_margin, idx_near,
                                                                    idx_margin, margin, margin_idx, nearest,
                                                                    nearest_idx);
  return cudaGetLastError();
}

}  // namespace smoothcert
