// Qualifiers shared by host and device code. The kernel math lives in headers
// that compile both under nvcc and under the host compiler, so that the CPU
// kernels, the CUDA kernels and the nvcc-only compile check use one source.
#pragma once

#if defined(__CUDACC__)
#define SC_HD __host__ __device__ __forceinline__
#else
#define SC_HD inline __attribute__((always_inline))
#endif

// Full unrolling of short fixed loops, so the CPU compiler can vectorise the
// loop around them.
#if defined(__CUDACC__)
#define SC_UNROLL _Pragma("unroll")
#elif defined(__GNUC__) && !defined(__clang__)
#define SC_UNROLL _Pragma("GCC unroll 16")
#else
#define SC_UNROLL
#endif
