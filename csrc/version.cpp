// cuda_version() lets tests catch a silently CPU-only build on a GPU machine.
#include <torch/library.h>

namespace smoothcert {
namespace {
int64_t cuda_version() {
#if defined(SMOOTHCERT_WITH_CUDA)
  return SMOOTHCERT_CUDA_VERSION;
#else
  return -1;
#endif
}
}  // namespace

TORCH_LIBRARY_IMPL(smoothcert, CompositeExplicitAutograd, m) { m.impl("cuda_version", &cuda_version); }

}  // namespace smoothcert
