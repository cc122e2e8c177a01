// CUDA binding of smoothcert::sample_noise_pairs (checks and allocation shared
// with the CPU binding; the kernel is in sample_noise_pairs_kernel.cu).
#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <tuple>

#include "../dtype_code_host.h"
#include "../sample_noise_pairs_args.h"
#include "sample_noise_pairs_kernel.h"

namespace smoothcert {
namespace {

std::tuple<at::Tensor, at::Tensor> sample_noise_pairs_cuda(
    const at::Tensor& x, const at::Tensor& ids, const at::Tensor& sigma, int64_t samples, int64_t sample_start,
    int64_t seed, int64_t stream, int64_t kind, std::optional<double> clamp_min, std::optional<double> clamp_max,
    std::optional<at::ScalarType> out_dtype, bool channels_last) {
  at::Tensor x_c, ids_c, sigma_c, out, dots;
  const SampleNoiseParams p =
      prepare_sample_noise_pairs(x, ids, sigma, samples, sample_start, seed, stream, kind, clamp_min, clamp_max,
                                 out_dtype, channels_last, x_c, ids_c, sigma_c, out, dots);
  if (dots.numel() == 0) return {out, dots};
  const c10::cuda::CUDAGuard guard(out.device());
  const cudaError_t err =
      launch_sample_noise_pairs(p, out.data_ptr(), float_dtype_code(out.scalar_type(), "sample_noise_pairs"),
                                dots.data_ptr<double>(), c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err == cudaSuccess, "sample_noise_pairs: CUDA kernel launch failed: ", cudaGetErrorString(err));
  return {out, dots};
}

}  // namespace

TORCH_LIBRARY_IMPL(smoothcert, CUDA, m) { m.impl("sample_noise_pairs", &sample_noise_pairs_cuda); }

}  // namespace smoothcert
