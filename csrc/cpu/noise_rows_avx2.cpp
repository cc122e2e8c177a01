// AVX2 build of the row filler (no FMA, to keep the bits of the baseline).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC target("avx2")
#define SC_ROWS_NAME fill_noise_rows_avx2
#define SC_ROWS_ISA 256
#include "noise_rows.h"
#endif
