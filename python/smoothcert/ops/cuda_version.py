"""Which backends the compiled operator library has."""
import torch


def cuda_version() -> int:
    """CUDA version the extension was built with (e.g. 13000), or -1 for CPU-only."""
    return torch.ops.smoothcert.cuda_version.default()
