// CUDA binding of smoothcert::sample_noise_backward (host compiler; the
// checks and allocation are the CPU binding's, the kernel is in
// sample_noise_backward_kernel.cu).
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <tuple>

#include "../common/noise_backward.h"
#include "../sample_noise_backward_args.h"
#include "sample_noise_backward_kernel.h"

namespace smoothcert {
namespace {

std::tuple<at::Tensor, at::Tensor> sample_noise_backward_cuda(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& ids, const at::Tensor& sigma,
    int64_t samples, int64_t sample_start, int64_t seed, int64_t stream, int64_t kind, bool antithetic,
    std::optional<double> clamp_min, std::optional<double> clamp_max) {
  at::Tensor x_c, ids_c, sigma_c, grad_x, grad_sigma;
  const SampleNoiseParams p = prepare_sample_noise_backward(grad, x, ids, sigma, samples, sample_start, seed,
                                                            stream, kind, antithetic, clamp_min, clamp_max, x_c,
                                                            ids_c, sigma_c, grad_x, grad_sigma);
  if (grad_x.numel() == 0) return {grad_x, grad_sigma};
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t chunks = backward_chunks(samples);
  at::Tensor partial;
  if (chunks > 1) partial = at::empty({2 * chunks * p.B * p.D}, grad_x.options());
  const cudaError_t err = launch_sample_noise_backward(
      p, grad.data_ptr<float>(), grad_x.data_ptr<double>(), grad_sigma.data_ptr<double>(),
      chunks > 1 ? partial.data_ptr<double>() : nullptr, c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err == cudaSuccess, "sample_noise_backward: CUDA kernel launch failed: ", cudaGetErrorString(err));
  return {grad_x, grad_sigma};
}

}  // namespace

TORCH_LIBRARY_IMPL(smoothcert, CUDA, m) { m.impl("sample_noise_backward", &sample_noise_backward_cuda); }

}  // namespace smoothcert
