"""The Monte-Carlo engine: one public layer that draws and counts samples for every family.

* :class:`Sampler` (``sampler.py``) -- model, noise kind, seed, stream, clamp, dtype, memory
  format and batch size; :meth:`Sampler.draw` draws samples ``[start, start + m)`` of any set
  of inputs, runs the classifier on packed forward batches and returns their votes;
* noise kinds (``noise.py``) -- Gaussian, uniform, splitting, antithetic and paired Gaussian,
  DSSN's enumerated offsets; :func:`register_noise` adds one;
* reducers (``reducers.py``) -- statistics besides votes: dipole pair counts, second-order
  pair dot sums;
* scheduling (``schedule.py``) -- :func:`run_jobs` runs inputs whose draws are decided as
  their votes arrive (sequential sample sizes) in full forward batches, refilling the slots of
  finished inputs;
* packing (``packing.py``) -- how inputs x samples become forward batches;
* checks (``checks.py``) -- what every entry point checks once before the first forward.

Families (:mod:`smoothcert.certify`), sigma selection (:mod:`smoothcert.sigma`) and training
(:mod:`smoothcert.train`) draw through :meth:`Sampler.draw`; nothing else writes the loop.
"""
from .checks import (check_alpha, check_finite_inputs, check_inputs, check_int, check_model_device,
                     check_scalar_sigma, check_seed, check_shape, input_ids, one_input, warn_range)
from .noise import (NOISES, AntitheticGaussian, DssnOffsets, Gaussian, GaussianPairs, NoiseKind, Splitting, Uniform,
                    noise_kind, register_noise)
from .packing import chunks, even_batch, groups, num_groups, sub_table
from .reducers import PairDotSums, PairHits
from .sampler import Sampler, check_nonfinite
from .schedule import Job, Occupancy, run_jobs

__all__ = ["Sampler", "Job", "Occupancy", "run_jobs", "NoiseKind", "NOISES", "register_noise", "noise_kind", "Gaussian", "Uniform", "Splitting",
           "AntitheticGaussian", "GaussianPairs", "DssnOffsets", "PairHits", "PairDotSums", "chunks", "groups",
           "num_groups", "sub_table", "even_batch", "check_nonfinite", "check_alpha", "check_finite_inputs",
           "check_inputs", "check_int", "check_model_device", "check_scalar_sigma", "check_seed", "check_shape",
           "input_ids", "one_input", "warn_range"]
