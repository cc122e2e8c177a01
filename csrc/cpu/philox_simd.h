// Philox-4x32-10 over kBlock consecutive quads of one row, for the CPU row
// filler (noise_rows.h). Same words as philox4x32_10 in common/philox.h, lane
// for lane: the SIMD versions only change how the 32x32->64 products are
// formed. Compilers widen every lane to 64 bits and use a 64-bit multiply
// (slow vpmullq on AVX-512, none at all on AVX2); here the even and odd lanes
// go through vpmuludq, which multiplies the low 32-bit halves of 64-bit lanes.
//
// SC_ROWS_ISA (set by the including file) picks the version: 512 (AVX-512F,
// 16 lanes), 256 (AVX2, 8 lanes) or 0 (portable loop).
#pragma once
#include <stdint.h>

#include "../common/philox.h"

#if SC_ROWS_ISA != 0
#include <immintrin.h>
#endif

namespace smoothcert {
namespace {

#ifndef SC_KBLOCK
#define SC_KBLOCK 16
#endif
constexpr int64_t kBlock = SC_KBLOCK;

#if SC_ROWS_ISA == 512
using VecU32 = __m512i;
constexpr int kLanes = 16;
SC_HD VecU32 vset1(uint32_t v) { return _mm512_set1_epi32(static_cast<int>(v)); }
SC_HD VecU32 vxor(VecU32 a, VecU32 b) { return _mm512_xor_si512(a, b); }
SC_HD VecU32 vload(const uint32_t* p) { return _mm512_loadu_si512(p); }
SC_HD void vstore(uint32_t* p, VecU32 v) { _mm512_storeu_si512(p, v); }
SC_HD void vmulhilo(VecU32 a, VecU32 m, VecU32* lo, VecU32* hi) {
  const __m512i even = _mm512_mul_epu32(a, m);
  const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);
  *lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
  *hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
}
#elif SC_ROWS_ISA == 256
using VecU32 = __m256i;
constexpr int kLanes = 8;
SC_HD VecU32 vset1(uint32_t v) { return _mm256_set1_epi32(static_cast<int>(v)); }
SC_HD VecU32 vxor(VecU32 a, VecU32 b) { return _mm256_xor_si256(a, b); }
SC_HD VecU32 vload(const uint32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
SC_HD void vstore(uint32_t* p, VecU32 v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
SC_HD void vmulhilo(VecU32 a, VecU32 m, VecU32* lo, VecU32* hi) {
  const __m256i even = _mm256_mul_epu32(a, m);
  const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);
  *lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
  *hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}
#endif

// Words of kRows * kBlock lanes of one (seed, stream, input): lane
// r * kBlock + j is quad q0 + j of sample samples[r]. The rows' Philox chains
// are interleaved round by round, so the core has independent work while one
// chain waits on its multiplies.
template <int kRows>
SC_HD void philox_block(uint64_t seed, uint32_t stream, uint32_t input, const uint32_t* samples,
                        uint32_t q0, uint32_t* __restrict w0, uint32_t* __restrict w1,
                        uint32_t* __restrict w2, uint32_t* __restrict w3) {
#if SC_ROWS_ISA == 0
  for (int r = 0; r < kRows; ++r) {
#pragma omp simd
    for (int j = 0; j < kBlock; ++j) {
      const U32x4 w = noise_words(seed, stream, input, samples[r], q0 + static_cast<uint32_t>(j));
      w0[r * kBlock + j] = w.v[0];
      w1[r * kBlock + j] = w.v[1];
      w2[r * kBlock + j] = w.v[2];
      w3[r * kBlock + j] = w.v[3];
    }
  }
#else
  using namespace philox_detail;
  static_assert(kBlock % kLanes == 0, "a block is a whole number of vectors");
  constexpr int kVecs = kRows * kBlock / kLanes;
  constexpr int kPerRow = kBlock / kLanes;
  const VecU32 m0 = vset1(kM0), m1 = vset1(kM1);
  alignas(64) uint32_t quads[kBlock];
  for (int j = 0; j < kBlock; ++j) quads[j] = q0 + static_cast<uint32_t>(j);
  VecU32 c0[kVecs], c1[kVecs], c2[kVecs], c3[kVecs];
  SC_UNROLL
  for (int v = 0; v < kVecs; ++v) {
    c0[v] = vload(quads + (v % kPerRow) * kLanes);
    c1[v] = vset1(samples[v / kPerRow]);
    c2[v] = vset1(input);
    c3[v] = vset1(stream);
  }
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  SC_UNROLL
  for (int round = 0; round < 10; ++round) {
    const VecU32 key0 = vset1(k0), key1 = vset1(k1);
    SC_UNROLL
    for (int v = 0; v < kVecs; ++v) {
      VecU32 lo0, hi0, lo1, hi1;
      vmulhilo(c0[v], m0, &lo0, &hi0);
      vmulhilo(c2[v], m1, &lo1, &hi1);
      c0[v] = vxor(vxor(hi1, c1[v]), key0);
      c1[v] = lo1;
      c2[v] = vxor(vxor(hi0, c3[v]), key1);
      c3[v] = lo0;
    }
    k0 += kW0;
    k1 += kW1;
  }
  SC_UNROLL
  for (int v = 0; v < kVecs; ++v) {
    vstore(w0 + v * kLanes, c0[v]);
    vstore(w1 + v * kLanes, c1[v]);
    vstore(w2 + v * kLanes, c2[v]);
    vstore(w3 + v * kLanes, c3[v]);
  }
#endif
}

}  // namespace
}  // namespace smoothcert
