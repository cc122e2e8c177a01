// CPU kernel of smoothcert::dssn_batch: clean images and a range of split
// offsets straight into the classifier's batch (no RNG, no intermediate
// tensors; seed-001 §7).
//
// Work split: ranges of output rows (one row = one offset of one input) per
// task of at::parallel_for. A task converts each of its inputs' pixels to
// integers once, then writes the input's rows with a loop over elements that
// the compiler vectorises (integer ops, one float division and a ceiling).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../dssn_batch_args.h"

namespace smoothcert {
namespace {

template <typename T>
void run_dssn(const DssnParams& p, T* out) {
  const int64_t rows = p.B * p.nb;
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(p.D, 1));
  at::parallel_for(0, rows, grain, [&](int64_t r0, int64_t r1) {
    std::vector<int32_t> X(static_cast<size_t>(p.D));
    int64_t loaded = -1;
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / p.nb;
      const int64_t j = r - b * p.nb;
      if (b != loaded) {
        for (int64_t e = 0; e < p.D; ++e) X[e] = dssn_pixel(p, b, e);
        loaded = b;
      }
      const int64_t off = p.offsets[b * p.off_b_stride + j];
      const int32_t* __restrict xi = X.data();
      const int32_t* __restrict v = p.v;
      if (!p.channels_last) {
        T* __restrict row = out + r * p.D;
#pragma omp simd
        for (int64_t e = 0; e < p.D; ++e) row[e] = static_cast<T>(dssn_value(p, xi[e], v[e], off, e));
      } else {
        for (int64_t e = 0; e < p.D; ++e)
          out[dssn_out_offset(p, r, e)] = static_cast<T>(dssn_value(p, xi[e], v[e], off, e));
      }
    }
  });
}

at::Tensor dssn_batch_cpu(const at::Tensor& x, const at::Tensor& v, const at::Tensor& offsets, int64_t levels,
                          int64_t q, const std::optional<at::Tensor>& mean, const std::optional<at::Tensor>& std,
                          std::optional<at::ScalarType> out_dtype, bool channels_last) {
  at::Tensor x_c, v_c, off_c, mean_c, std_c, out;
  const DssnParams p = prepare_dssn_batch(x, v, offsets, levels, q, mean, std, out_dtype, channels_last, x_c,
                                          v_c, off_c, mean_c, std_c, out);
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out.scalar_type(), "dssn_batch_cpu",
                                  [&] { run_dssn<scalar_t>(p, out.data_ptr<scalar_t>()); });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(smoothcert, CPU, m) { m.impl("dssn_batch", &dssn_batch_cpu); }

}  // namespace smoothcert
