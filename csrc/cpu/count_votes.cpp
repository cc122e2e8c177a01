// CPU kernel of smoothcert::count_votes_. Argmax (and the finiteness test) of
// every row in parallel (the R*K part), then a serial pass adds the R winners
// to the counts: integer adds in row order, so the result is exact and
// deterministic.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include <vector>

#include "../common/votes.h"
#include "../count_votes_args.h"

namespace smoothcert {
namespace {

void count_votes_cpu(const at::Tensor& logits, int64_t samples, const at::Tensor& counts,
                     const std::optional<at::Tensor>& nonfinite) {
  check_count_votes(logits, samples, counts, nonfinite);
  const int64_t R = logits.size(0), K = logits.size(1);
  if (R == 0 || K == 0) return;
  const at::Tensor lc = logits.contiguous();
  // winner[r] = argmax, or -(argmax + 1) when the row holds a non-finite logit.
  std::vector<int32_t> winner(R);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, lc.scalar_type(), "count_votes_cpu", [&] {
    const scalar_t* l = lc.data_ptr<scalar_t>();
    at::parallel_for(0, R, std::max<int64_t>(1, 16384 / K), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        bool bad;
        const auto w = static_cast<int32_t>(row_argmax(l + r * K, K, &bad));
        winner[r] = bad ? -(w + 1) : w;
      }
    });
  });
  int64_t* c = counts.data_ptr<int64_t>();
  int64_t* nf = nonfinite.has_value() ? nonfinite->data_ptr<int64_t>() : nullptr;
  // Input by input: no per-row division.
  for (int64_t b = 0, r = 0; r < R; ++b) {
    int64_t* cb = c + b * K;
    for (const int64_t end = r + samples; r < end; ++r) {
      const int32_t w = winner[r];
      if (w >= 0) {
        cb[w] += 1;
      } else {
        cb[-w - 1] += 1;
        if (nf != nullptr) nf[b] += 1;
      }
    }
  }
}

}  // namespace

TORCH_LIBRARY_IMPL(smoothcert, CPU, m) { m.impl("count_votes_", &count_votes_cpu); }

}  // namespace smoothcert
