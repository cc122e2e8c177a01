"""smoothcert: fast, sound randomized-smoothing certification for PyTorch.

Layers (each a subpackage): :mod:`.ops` (the fused C++/CUDA operators, their fake
kernels, autograd and pure-PyTorch twins), :mod:`.stats` (binomial bounds and
radius formulas per norm), :mod:`.certify` (one module per smoothing family on a
shared engine), :mod:`.train`, :mod:`.data`, :mod:`.models`, :mod:`.analysis`
and :mod:`.cli`.
"""
import torch  # noqa: F401  (loads libtorch before the extension)

from . import _C  # noqa: F401  (registers the operators)
from .ops import _autograd, _fake  # noqa: F401  (fake kernels and the backward of sample_noise)
from .certify import (CertifyResult, Decide, DssnResult, Estimate, PredictResult, Sequential, Smooth, SplitSmooth,
                      UniformSmooth)
from .models import NormalizeLayer
from .ops import count_votes_, dssn_batch, sample_noise

from ._version import __version__
__all__ = ["Smooth", "Sequential", "Decide", "Estimate", "CertifyResult", "PredictResult", "SplitSmooth", "UniformSmooth", "DssnResult",
           "NormalizeLayer", "sample_noise", "dssn_batch", "count_votes_", "__version__"]
