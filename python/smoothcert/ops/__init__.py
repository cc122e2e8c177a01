"""The operator layer: typed wrappers of ``torch.ops.smoothcert.*`` (one module per op),
their fake kernels (``_fake``), autograd formulas (``_autograd``) and pure-PyTorch
twins (``reference``), plus the value checks and noise-stream constants they share.

Argument checks a user can trigger are raised as ``ValueError`` with the offending
value; the kernels repeat the structural checks in C++.
"""
from .ball_margin import ball_margin
from .checks import check_finite, check_grid, check_ids, check_sigma, check_unit_interval
from .count_votes import count_votes_
from .cuda_version import cuda_version
from .pair_distances import pair_distances, pair_edges
from .dssn_batch import dssn_batch, dssn_offsets, dssn_training_offsets
from .sample_noise import NOISE_KINDS, sample_noise, sample_noise_into_, sample_noise_table, sigma_table
from .sample_noise_pairs import sample_noise_pairs, sample_noise_pairs_table
from .streams import (DSSN_OFFSET_STREAM, ESTIMATION_STREAM, DIPOLE_STREAM, FIT_SIGMA_STREAM, ID_LIMIT, PREDICT_STREAM, SELECTION_STREAM,
                      SAMPLEWISE_STREAM, SIGMA_OPT_STREAM, TRAIN_SAMPLEWISE_STREAM,
                      TRAIN_SIGMA_OPT_STREAM, TRAINING_STREAM)

__all__ = ["ball_margin", "check_finite", "check_grid", "check_ids", "check_sigma", "check_unit_interval", "count_votes_",
           "cuda_version", "dssn_batch", "dssn_offsets", "dssn_training_offsets", "pair_distances", "pair_edges", "NOISE_KINDS", "sample_noise", "sample_noise_into_", "sample_noise_table", "sample_noise_pairs", "sample_noise_pairs_table", "sigma_table",
           "SELECTION_STREAM", "ESTIMATION_STREAM", "PREDICT_STREAM", "TRAINING_STREAM", "DSSN_OFFSET_STREAM",
           "SIGMA_OPT_STREAM", "TRAIN_SIGMA_OPT_STREAM", "FIT_SIGMA_STREAM", "DIPOLE_STREAM", "SAMPLEWISE_STREAM",
           "TRAIN_SAMPLEWISE_STREAM", "ID_LIMIT"]
