"""smoothcert: fast, sound randomized-smoothing certification for PyTorch."""
import torch  # noqa: F401  (loads libtorch before the extension)

from . import _C  # noqa: F401  (registers the operators)
from . import _fake  # noqa: F401
from . import _autograd  # noqa: F401  (backward of sample_noise)
from .ops import count_votes_, dssn_batch, sample_noise
from .smooth import CertifyResult, PredictResult, Smooth
from .split import DssnResult, SplitSmooth, UniformSmooth
from .models import NormalizeLayer

from ._version import __version__
__all__ = ["Smooth", "CertifyResult", "PredictResult", "SplitSmooth", "UniformSmooth", "DssnResult",
           "NormalizeLayer", "sample_noise", "dssn_batch", "count_votes_", "__version__"]
