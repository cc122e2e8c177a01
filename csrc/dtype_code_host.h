// at::ScalarType -> DtypeCode for the CUDA bindings (host side only; the
// torch-free launchers see just the int).
#pragma once
#include <c10/core/ScalarType.h>
#include <c10/util/Exception.h>

#include "cuda/dtype_code.h"

namespace smoothcert {

inline int float_dtype_code(at::ScalarType t, const char* op) {
  switch (t) {
    case at::kFloat: return kF32;
    case at::kHalf: return kF16;
    case at::kBFloat16: return kBF16;
    case at::kDouble: return kF64;
    default: TORCH_CHECK(false, op, ": unsupported dtype ", t);
  }
}

}  // namespace smoothcert
