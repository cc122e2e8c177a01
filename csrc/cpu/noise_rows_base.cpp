// Baseline build of the row filler, for CPUs without AVX2 and non-x86 hosts.
#define SC_ROWS_NAME fill_noise_rows_base
#include "noise_rows.h"
