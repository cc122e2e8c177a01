// CUDA binding of smoothcert::sample_noise. Compiled by the host compiler:
// the argument checks and output allocation are the CPU binding's
// (prepare_sample_noise), so both backends accept exactly the same inputs;
// the kernel itself lives in the torch-free sample_noise_kernel.cu.
//
// c10::cuda's guard and stream are what at::cuda re-exports; using them
// directly keeps the cuBLAS/cuSPARSE headers that ATen/cuda/CUDAContext.h
// pulls in out of this build.
#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include "../dtype_code_host.h"

#include "../sample_noise_args.h"
#include "sample_noise_kernel.h"

namespace smoothcert {
namespace {

at::Tensor sample_noise_cuda(const at::Tensor& x, const at::Tensor& ids, const at::Tensor& sigma,
                             int64_t samples, int64_t sample_start, int64_t seed, int64_t stream,
                             int64_t kind, bool antithetic, std::optional<double> clamp_min,
                             std::optional<double> clamp_max,
                             std::optional<at::ScalarType> out_dtype, bool channels_last) {
  at::Tensor x_c, ids_c, sigma_c, out;
  const SampleNoiseParams p =
      prepare_sample_noise(x, ids, sigma, samples, sample_start, seed, stream, kind, antithetic,
                           clamp_min, clamp_max, out_dtype, channels_last, x_c, ids_c, sigma_c, out);
  if (out.numel() == 0) return out;
  // After the checks, which guarantee that every input is on out's device.
  const c10::cuda::CUDAGuard guard(out.device());
  const cudaError_t err = launch_sample_noise(p, out.data_ptr(), float_dtype_code(out.scalar_type(), "sample_noise"),
                                              c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err == cudaSuccess, "sample_noise: CUDA kernel launch failed: ",
              cudaGetErrorString(err));
  return out;
}

void sample_noise_into_cuda(const at::Tensor& x, const at::Tensor& ids, const at::Tensor& sigma,
                            int64_t samples, int64_t sample_start, int64_t seed, int64_t stream,
                            int64_t kind, bool antithetic, std::optional<double> clamp_min,
                            std::optional<double> clamp_max, bool channels_last, const at::Tensor& out) {
  at::Tensor x_c, ids_c, sigma_c;
  const SampleNoiseParams p =
      prepare_sample_noise_into(x, ids, sigma, samples, sample_start, seed, stream, kind, antithetic,
                                clamp_min, clamp_max, channels_last, out, x_c, ids_c, sigma_c);
  if (out.numel() == 0) return;
  const c10::cuda::CUDAGuard guard(out.device());
  const cudaError_t err = launch_sample_noise(p, out.data_ptr(),
                                              float_dtype_code(out.scalar_type(), "sample_noise_into"),
                                              c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err == cudaSuccess, "sample_noise_into: CUDA kernel launch failed: ", cudaGetErrorString(err));
}

}  // namespace

// The CUDA half of the dispatcher entries whose schemas are in ops.cpp.
TORCH_LIBRARY_IMPL(smoothcert, CUDA, m) {
  m.impl("sample_noise", &sample_noise_cuda);
  m.impl("sample_noise_into", &sample_noise_into_cuda);
}

}  // namespace smoothcert
