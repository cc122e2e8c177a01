// Baseline build of the row filler, for CPUs without AVX2 and non-x86 hosts.
#define SC_ROWS_NAME fill_noise_rows_base
#define SC_ROWS_ISA 0
#include "noise_rows.h"
