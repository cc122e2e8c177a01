#!/usr/bin/env bash
# Compiles every csrc/cuda/*.cu with bare nvcc (device code for sm_90), with no
# torch include path at all: the kernels must stay torch-free, and this check
# works on a machine without a GPU or a CUDA build of torch.
#
# The -D__CUDA_NO_* flags are the ones torch's cpp_extension adds to every
# nvcc call, so code relying on implicit __half/__nv_bfloat16 conversions fails
# here rather than in the first GPU build.
#
# Env: NVCC (default nvcc), NVCC_CHECK_ARCH (default sm_90),
#      SMOOTHCERT_SKIP_NVCC_CHECK=1 to pass when nvcc is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

nvcc_bin="${NVCC:-nvcc}"
arch="${NVCC_CHECK_ARCH:-sm_90}"

if ! command -v "$nvcc_bin" >/dev/null 2>&1; then
  if [[ "${SMOOTHCERT_SKIP_NVCC_CHECK:-0}" == "1" ]]; then
    echo "nvcc_check: skipped, '$nvcc_bin' not found (SMOOTHCERT_SKIP_NVCC_CHECK=1)"
    exit 0
  fi
  echo "nvcc_check: '$nvcc_bin' not found; install the CUDA toolkit, put nvcc on PATH (or set NVCC)," \
       "or set SMOOTHCERT_SKIP_NVCC_CHECK=1 to skip this check" >&2
  exit 1
fi

shopt -s nullglob
sources=(csrc/cuda/*.cu)
headers=(csrc/cuda/*.cuh csrc/cuda/*.h)
if (( ${#sources[@]} == 0 )); then
  echo "nvcc_check: no csrc/cuda/*.cu found (run from a smoothcert checkout)" >&2
  exit 1
fi

# Also catches torch includes that the compile would not see (inside #if
# branches that are off under nvcc).
if bad=$(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"](torch|ATen|c10)/' \
             "${sources[@]}" "${headers[@]}"); then
  echo "nvcc_check: torch/ATen/c10 headers in torch-free CUDA files:" >&2
  echo "$bad" >&2
  exit 1
fi

out_dir=$(mktemp -d /tmp/nvcc_check.XXXXXX)
trap 'rm -rf "$out_dir"' EXIT
flags=(-std=c++17 "-arch=$arch" --fmad=false -O3
       -D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__
       -D__CUDA_NO_BFLOAT16_CONVERSIONS__ -D__CUDA_NO_HALF2_OPERATORS__)
for src in "${sources[@]}"; do
  obj="$out_dir/$(basename "$src" .cu).o"
  if ! "$nvcc_bin" "${flags[@]}" -c -o "$obj" "$src"; then
    echo "nvcc_check: FAILED $src" >&2
    exit 1
  fi
  echo "nvcc_check: ok $src"
done
echo "nvcc_check: ${#sources[@]} CUDA sources compiled for $arch"

# The CUDA bindings (csrc/cuda/*.cpp) are host code against torch's CUDA
# headers, which a CPU wheel ships except for one generated file; a syntax-only
# pass with the CUDA toolkit's headers and a stand-in for that file catches
# their errors before the first GPU build. Skipped when torch is not importable.
cuda_inc=""
for d in "${CUDA_HOME:-}" "$(dirname "$(dirname "$(readlink -f "$(command -v "$nvcc_bin")")")")" \
         /usr/local/cuda /usr/local/cuda-*; do
  if [[ -n "$d" && -f "$d/include/cuda_runtime.h" ]]; then cuda_inc="$d/include"; break; fi
done
if torch_inc=$(python3 -c "import torch.utils.cpp_extension as c; print(' '.join('-I' + p for p in c.include_paths()))" 2>/dev/null) \
    && [[ -n "$cuda_inc" ]]; then
  mkdir -p "$out_dir/stub/c10/cuda/impl"
  echo '#define C10_CUDA_BUILD_SHARED_LIBS' > "$out_dir/stub/c10/cuda/impl/cuda_cmake_macros.h"
  bindings=(csrc/cuda/*.cpp)
  for src in "${bindings[@]}"; do
    # shellcheck disable=SC2086
    if ! g++ -std=c++17 -fsyntax-only -w -I"$out_dir/stub" $torch_inc -I"$cuda_inc" -Icsrc "$src"; then
      echo "nvcc_check: FAILED host binding $src" >&2
      exit 1
    fi
    echo "nvcc_check: ok $src (host syntax)"
  done
else
  echo "nvcc_check: host bindings not checked (torch not importable or no CUDA include directory found)"
fi
