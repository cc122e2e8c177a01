// CPU kernel of smoothcert::dssn_batch: clean images and a range of split
// offsets straight into the classifier's batch (no RNG, no intermediate
// tensors; a design of this library, not the paper's).
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

// One plain (NCHW) row: elements [e0, e1) share the channel's mean and std.
// Same operations as dssn_value, with the loop invariants hoisted so that the
// loop vectorises.
template <typename T, bool Norm>
void plain_span(const DssnParams& p, const int32_t* __restrict X, const int32_t* __restrict v, int32_t off,
                int64_t e0, int64_t e1, float mean, float stdv, T* __restrict row) {
  const int32_t L = p.L, q = p.q;
  const float Lf = static_cast<float>(L), q4 = static_cast<float>(4 * q);
#pragma omp simd
  for (int64_t e = e0; e < e1; ++e) {
    int32_t k = v[e] + off;
    k = k >= L ? k - L : k;
    const int32_t n = X[e] - k;
    const int32_t m = static_cast<int32_t>(static_cast<float>(n + L - 1) / Lf);
    const int32_t U = 2 * (m * L + k) + 1;
    const int32_t up = U < 2 * q ? U : 2 * q;
    const int32_t lo = U - 2 * L > 0 ? U - 2 * L : 0;
    float val = static_cast<float>(up + lo) / q4;
    if (Norm) val = (val - mean) / stdv;
    row[e] = static_cast<T>(val);
  }
}

template <typename T>
void plain_row(const DssnParams& p, const int32_t* X, int64_t off, T* row) {
  const auto o = static_cast<int32_t>(off);
  if (p.mean == nullptr) {
    plain_span<T, false>(p, X, p.v, o, 0, p.D, 0.0f, 1.0f, row);
    return;
  }
  for (int64_t c = 0; c < p.C; ++c)
    plain_span<T, true>(p, X, p.v, o, c * p.HW, (c + 1) * p.HW, p.mean[c], p.std[c], row);
}

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
      if (!p.channels_last) {
        plain_row(p, X.data(), off, out + r * p.D);
      } else {
        for (int64_t e = 0; e < p.D; ++e)
          out[dssn_out_offset(p, r, e)] = static_cast<T>(dssn_value(p, X[e], p.v[e], off, e));
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
