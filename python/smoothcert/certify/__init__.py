"""The certification layer: one module per smoothing family on the shared engine.

* :mod:`.family` -- the interface every family implements and the registry;
* :mod:`.engine` -- input checks, forward-batch packing and vote counting;
* :mod:`.gaussian` -- Cohen et al.'s Gaussian L2 smoothing (:class:`Smooth`);
* :mod:`.uniform` -- uniform-noise L1 smoothing (:class:`UniformSmooth`);
* :mod:`.split` -- splitting noise, randomized (SSN) and deterministic (DSSN);
* :mod:`.anisotropic` -- per-element sigma (Tecot et al.; ``--sigma-file``), certifying ellipsoids;
* :mod:`.second_order` and :mod:`.dipole` -- second-order and dipole certificates of Gaussian
  smoothing (Levine et al.; ``--certificate sos|dipole``);
* :mod:`.ddrs` -- data-dependent sigma (``--sigma-mode ddrs``) with the memory-based
  certificate of :mod:`.memory`;
* :mod:`.samplewise` -- sample-wise sigma over a grid (``--sigma-mode samplewise``) certified
  with the transductive robust regions of :mod:`.regions` (greedy scan or LP);
* :mod:`.sequential` -- sequential sample sizes for any family whose certificate is one
  binomial count (``--sequential decide|estimate``), anytime-valid;

Importing this package registers every family.
"""
from .anisotropic import AnisotropicResult, AnisotropicSmooth
from .ddrs import DataDependentSmooth, DdrsResult
from .dipole import DipoleResult, DipoleSmooth
from .family import (CERTIFICATES, FAMILIES, SIGMA_MODES, Budget, SmoothingFamily, register_certificate,
                     register_family, register_sigma_mode)
from .gaussian import Smooth
from .memory import Memory, MemoryResult
from .results import CertifyResult, PredictResult
from .samplewise import SampleWiseSmooth
from .second_order import SecondOrderResult, SecondOrderSmooth
from . import sequential
from .sequential import Decide, Estimate, Sequential, SequentialFamily, SequentialResult
from .split import DssnResult, SplitSmooth, SsnSmooth, dssn_offsets, dssn_training_offsets
from .uniform import UniformSmooth

__all__ = ["CERTIFICATES", "SampleWiseSmooth", "register_certificate", "DipoleResult", "DipoleSmooth", "SecondOrderResult",
           "SecondOrderSmooth", "AnisotropicResult", "AnisotropicSmooth", "DataDependentSmooth", "DdrsResult", "Memory", "MemoryResult", "FAMILIES", "SIGMA_MODES", "Budget", "SmoothingFamily", "register_family", "register_sigma_mode",
           "Smooth", "CertifyResult", "PredictResult", "DssnResult", "SplitSmooth",
           "SsnSmooth", "UniformSmooth", "dssn_offsets", "dssn_training_offsets", "sequential", "Sequential",
           "Decide", "Estimate", "SequentialFamily", "SequentialResult"]
