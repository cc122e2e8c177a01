// AVX-512 build of the row filler (no FMA contraction: same bits as the others).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC target("avx512f,avx512dq,avx512vl,avx512bw")
#define SC_ROWS_NAME fill_noise_rows_avx512
#define SC_ROWS_ISA 512
#include "noise_rows.h"
#endif
