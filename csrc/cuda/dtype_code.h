// Floating dtypes as plain ints, so that the torch-free CUDA launchers can be
// told the tensor dtype without seeing at::ScalarType.
#pragma once

namespace smoothcert {

enum DtypeCode : int { kF32 = 0, kF16 = 1, kBF16 = 2, kF64 = 3 };

}  // namespace smoothcert
