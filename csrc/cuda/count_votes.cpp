// CUDA binding of smoothcert::count_votes_. Compiled by the host compiler;
// same argument checks as the CPU binding (check_count_votes), kernel in the
// torch-free count_votes_kernel.cu. Guard and stream come from c10::cuda (what
// at::cuda re-exports) to keep ATen/cuda/CUDAContext.h's cuBLAS headers out.
#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include "../count_votes_args.h"
#include "../dtype_code_host.h"
#include "count_votes_kernel.h"

namespace smoothcert {
namespace {

void count_votes_cuda(const at::Tensor& logits, int64_t samples, const at::Tensor& counts,
                      const std::optional<at::Tensor>& nonfinite) {
  check_count_votes(logits, samples, counts, nonfinite);
  const int64_t R = logits.size(0), K = logits.size(1);
  if (R == 0 || K == 0) return;
  const int code = float_dtype_code(logits.scalar_type(), "count_votes_");
  // After the checks, which put logits and counts on one device.
  const c10::cuda::CUDAGuard guard(counts.device());
  const at::Tensor lc = logits.contiguous();
  const cudaError_t err = launch_count_votes(lc.const_data_ptr(), code, R, K, samples,
                                             counts.data_ptr<int64_t>(),
                                             nonfinite.has_value() ? nonfinite->data_ptr<int64_t>() : nullptr,
                                             c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err == cudaSuccess, "count_votes_: CUDA kernel launch failed: ",
              cudaGetErrorString(err));
}

}  // namespace

// The CUDA half of the dispatcher entry whose schema is in ops.cpp; counts is
// updated in place on the current stream, without a host synchronisation.
TORCH_LIBRARY_IMPL(smoothcert, CUDA, m) { m.impl("count_votes_", &count_votes_cuda); }

}  // namespace smoothcert
