"""Counter words that separate independent noise draws.

Every draw of the fused sampler is keyed by (seed, stream, input index, sample
index, element); two streams never share a Philox counter, so draws on
different streams are independent whatever the seed. Certification keeps
selection and estimation apart (Cohen et al.'s protocol needs them
independent); sigma optimisation has streams of its own, so an optimised sigma
never depends on the noise that certifies with it.
"""

SELECTION_STREAM = 0
ESTIMATION_STREAM = 1
PREDICT_STREAM = 2
TRAINING_STREAM = 3
DSSN_OFFSET_STREAM = 4  # DSSN training's per-example split offsets
SIGMA_OPT_STREAM = 5  # data-dependent sigma optimisation at certification time
TRAIN_SIGMA_OPT_STREAM = 6  # ... and during DS2 training
FIT_SIGMA_STREAM = 7  # fitting one per-element sigma on training data (smoothcert fit-sigma)
DIPOLE_STREAM = 8  # the antithetic pairs of dipole smoothing, independent of the first-order estimation
SAMPLEWISE_STREAM = 9  # sample-wise sigma selection over the grid at certification time (Wang et al., Eq. 7)
TRAIN_SAMPLEWISE_STREAM = 10  # ... and on the training set before fine-tuning (Eq. 5)

ID_LIMIT = 1 << 32  # input indices are one 32-bit counter word
