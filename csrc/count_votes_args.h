// Argument checks for count_votes_, shared by the CPU and CUDA bindings.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <optional>

namespace smoothcert {

inline void check_count_votes(const at::Tensor& logits, int64_t samples, const at::Tensor& counts,
                              const std::optional<at::Tensor>& nonfinite) {
  TORCH_CHECK(logits.dim() == 2, "count_votes_: logits must be 2-D [B * samples, K], got ",
              logits.dim(), "-D with shape ", logits.sizes());
  TORCH_CHECK(at::isFloatingType(logits.scalar_type()), "count_votes_: logits must be floating point, got ",
              logits.scalar_type());
  TORCH_CHECK(counts.dim() == 2, "count_votes_: counts must be 2-D [B, K], got ", counts.sizes());
  TORCH_CHECK(counts.scalar_type() == at::kLong, "count_votes_: counts must be int64, got ", counts.scalar_type());
  TORCH_CHECK(counts.is_contiguous(), "count_votes_: counts must be contiguous");
  TORCH_CHECK(samples >= 1, "count_votes_: samples must be >= 1, got ", samples);
  TORCH_CHECK(logits.size(0) == counts.size(0) * samples,
              "count_votes_: logits has ", logits.size(0), " rows but counts has ", counts.size(0),
              " inputs x ", samples, " samples");
  TORCH_CHECK(logits.size(1) == counts.size(1), "count_votes_: the classifier returned ", logits.size(1),
              " classes but counts has ", counts.size(1), " (num_classes)");
  TORCH_CHECK(logits.device() == counts.device(), "count_votes_: logits on ", logits.device(),
              " but counts on ", counts.device());
  if (nonfinite.has_value()) {
    const at::Tensor& nf = *nonfinite;
    TORCH_CHECK(nf.dim() == 1 && nf.size(0) == counts.size(0), "count_votes_: nonfinite must be [B] = [",
                counts.size(0), "], got ", nf.sizes());
    TORCH_CHECK(nf.scalar_type() == at::kLong, "count_votes_: nonfinite must be int64, got ", nf.scalar_type());
    TORCH_CHECK(nf.is_contiguous(), "count_votes_: nonfinite must be contiguous");
    TORCH_CHECK(nf.device() == counts.device(), "count_votes_: nonfinite on ", nf.device(),
                " but counts on ", counts.device());
  }
}

}  // namespace smoothcert
