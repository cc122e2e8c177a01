// CUDA binding of smoothcert::dssn_batch (host compiler; the checks are the
// CPU binding's prepare_dssn_batch, the kernel is in dssn_batch_kernel.cu).
#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include "../dtype_code_host.h"

#include "../dssn_batch_args.h"
#include "dssn_batch_kernel.h"

namespace smoothcert {
namespace {

at::Tensor dssn_batch_cuda(const at::Tensor& x, const at::Tensor& v, const at::Tensor& offsets, int64_t levels,
                           int64_t q, const std::optional<at::Tensor>& mean, const std::optional<at::Tensor>& std,
                           std::optional<at::ScalarType> out_dtype, bool channels_last) {
  at::Tensor x_c, v_c, off_c, mean_c, std_c, out;
  const DssnParams p = prepare_dssn_batch(x, v, offsets, levels, q, mean, std, out_dtype, channels_last, x_c,
                                          v_c, off_c, mean_c, std_c, out);
  if (out.numel() == 0) return out;
  const c10::cuda::CUDAGuard guard(out.device());
  const cudaError_t err = launch_dssn_batch(p, out.data_ptr(), float_dtype_code(out.scalar_type(), "dssn_batch"),
                                            c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err == cudaSuccess, "dssn_batch: CUDA kernel launch failed: ", cudaGetErrorString(err));
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(smoothcert, CUDA, m) { m.impl("dssn_batch", &dssn_batch_cuda); }

}  // namespace smoothcert
