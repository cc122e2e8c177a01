"""ART's ``PyTorchRandomizedSmoothing`` interface on smoothcert's engine.

:class:`RandomizedSmoothing` takes the constructor arguments of the Adversarial
Robustness Toolbox's ``art.estimators.certification.randomized_smoothing.PyTorchRandomizedSmoothing``
(ART 1.20) and returns what its ``certify`` and ``predict`` return (numpy arrays
of the same shapes, dtypes and abstain encoding), computed by :class:`smoothcert.Smooth`:
Cohen, Rosenfeld and Kolter (ICML 2019), CERTIFY with ``n0 = sample_size`` selection
samples and ``n`` independent estimation samples, PREDICT with ``sample_size`` samples.

Both add the Gaussian noise in raw input space, before ``preprocessing`` (mean, std),
so ``scale`` and the radii are in the units of ``x``. The differences (docs/compat.md):
noise is smoothcert's counter-based Philox stream keyed by ``seed`` and the input index
instead of numpy's global generator; radii are stepped one ulp down (never rounded up);
input shapes, dtypes and arguments are checked with one-line errors; preprocessing and
postprocessing defences and ``fit`` are not provided.
"""
from __future__ import annotations

import warnings
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .. import ops
from ..certify.gaussian import Smooth
from ..ops.checks import check_int, check_seed

__all__ = ["RandomizedSmoothing", "ABSTAIN"]

ABSTAIN = -1
"""Class that :meth:`RandomizedSmoothing.certify` returns on abstain (radius 0.0), as ART does."""


class _Standardise(torch.nn.Module):
    """``(x - mean) / std`` with ``mean`` and ``std`` broadcast over one input.

    Shape:
        x: ``[N, *input_shape]`` -> ``[N, *input_shape]``.
    """

    def __init__(self, mean: np.ndarray, std: np.ndarray):
        super().__init__()
        self.register_buffer("mean", torch.from_numpy(mean).unsqueeze(0))
        self.register_buffer("std", torch.from_numpy(std).unsqueeze(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _float_array(name: str, value) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or an array of numbers, got {value!r}") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return arr


def _on_sample(name: str, arr: np.ndarray, input_shape: Tuple[int, ...]) -> np.ndarray:
    """``arr`` reshaped to broadcast over one input of ``input_shape``. A vector of one
    value per channel lies on the last axis when its length matches it (channels last),
    else on the first (channels first), as ART broadcasts it."""
    if arr.ndim == 1 and arr.shape[0] > 1 and arr.shape[0] != input_shape[-1]:
        if arr.shape[0] != input_shape[0]:
            raise ValueError(f"{name} has {arr.shape[0]} values, but input_shape {input_shape} has "
                             f"{input_shape[0]} channels first and {input_shape[-1]} last")
        arr = arr.reshape((-1,) + (1,) * (len(input_shape) - 1))
    try:
        ok = np.broadcast_shapes(arr.shape, input_shape) == input_shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{name} of shape {arr.shape} does not broadcast to input_shape {input_shape}")
    return np.ascontiguousarray(arr)


def _preprocessing_layer(preprocessing, input_shape: Tuple[int, ...]) -> Optional[_Standardise]:
    """The standardisation ``(x - mean) / std`` as a layer, or None for the identity."""
    if preprocessing is None:
        return None
    if not (isinstance(preprocessing, (tuple, list)) and len(preprocessing) == 2):
        raise ValueError("preprocessing must be None or a (mean, std) pair of numbers or arrays (other "
                         "preprocessors are not supported: put them inside the model), got "
                         f"{type(preprocessing).__name__}")
    mean = _float_array("preprocessing mean", preprocessing[0])
    std = _float_array("preprocessing std", preprocessing[1])
    if mean.shape != std.shape:
        raise ValueError(f"preprocessing mean and std must have the same shape, got {mean.shape} and {std.shape}")
    if np.any(std <= 0):
        raise ValueError(f"preprocessing std must be > 0, got {preprocessing[1]!r}")
    if np.all(mean == 0) and np.all(std == 1):
        return None
    return _Standardise(_on_sample("preprocessing mean", mean, input_shape),
                        _on_sample("preprocessing std", std, input_shape))


def _device(device_type: str) -> torch.device:
    """ART's rule (the current GPU unless ``cpu`` is asked or none is visible), falling
    back to the CPU when smoothcert was built without CUDA."""
    if device_type not in ("gpu", "cpu"):
        raise ValueError(f"device_type must be 'gpu' or 'cpu', got {device_type!r}")
    if device_type == "gpu" and torch.cuda.is_available():
        if ops.cuda_version() >= 0:
            return torch.device("cuda", torch.cuda.current_device())
        warnings.warn("device_type='gpu': a GPU is visible but smoothcert was built without CUDA; "
                      "certifying on the CPU", stacklevel=3)
    return torch.device("cpu")


def _clip_values(clip_values) -> Optional[np.ndarray]:
    """``[2, ...]`` float32 ``(min, max)``, as ART stores it."""
    if clip_values is None:
        return None
    if not (isinstance(clip_values, (tuple, list, np.ndarray)) and len(clip_values) == 2):
        raise ValueError(f"clip_values must be a (min, max) pair, got {clip_values!r}")
    lo, hi = _float_array("clip_values min", clip_values[0]), _float_array("clip_values max", clip_values[1])
    if lo.shape != hi.shape:
        raise ValueError(f"clip_values min and max must have the same shape, got {lo.shape} and {hi.shape}")
    if np.any(lo >= hi):
        raise ValueError(f"clip_values must have min < max, got {clip_values!r}")
    return np.stack([lo, hi])


class RandomizedSmoothing:
    """Gaussian randomized smoothing with the interface of ART 1.20's ``PyTorchRandomizedSmoothing``.

    Args:
        model: ``torch.nn.Module`` mapping ``[N, *input_shape]`` float32 inputs (after
            ``preprocessing``) to ``[N, nb_classes]`` logits. It is moved to the device.
        loss, optimizer: kept for ART's signature (``fit`` is not provided).
        input_shape: shape of one input, e.g. ``(1, 28, 28)`` or ``(28, 28, 1)``.
        nb_classes: number of classes K.
        channels_first: layout of ``input_shape``; the model receives ``x`` as given,
            as in ART (it is not transposed).
        clip_values: ``(min, max)`` range of the features; stored, not applied to the
            noisy samples (ART does not apply it there either).
        preprocessing_defences, postprocessing_defences: must be None.
        preprocessing: ``(mean, std)``; the model sees ``(x + noise - mean) / std``.
        device_type: ``"gpu"`` (the current GPU when one is visible) or ``"cpu"``.
        sample_size: samples of PREDICT and of CERTIFY's selection step (Cohen's n0).
        scale: noise standard deviation sigma, in units of ``x``.
        alpha: Cohen's failure probability: one-sided for the Clopper-Pearson bound of
            CERTIFY, the level of PREDICT's two-sided binomial test.
        seed: smoothcert's noise key (keyword only). Each call keys input ``i`` of its
            batch by a running index (the first call's inputs 0..N-1, the next call's
            N..), so repeated calls draw fresh noise and a fresh object with the same
            seed repeats the same results; pass ``indices=`` to key them yourself.

    Attributes:
        last_result: the :class:`smoothcert.CertifyResult` or :class:`smoothcert.PredictResult`
            of the latest call (votes, pA_lower, timings), or None.
    """

    def __init__(self, model: torch.nn.Module, loss: Any, input_shape: Sequence[int], nb_classes: int,
                 optimizer: Any = None, channels_first: bool = True, clip_values=None,
                 preprocessing_defences=None, postprocessing_defences=None, preprocessing=(0.0, 1.0),
                 device_type: str = "gpu", sample_size: int = 32, scale: float = 0.1, alpha: float = 0.001,
                 *, seed: int = 0):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if preprocessing_defences is not None or postprocessing_defences is not None:
            raise ValueError("preprocessing_defences and postprocessing_defences are not supported; apply a "
                             "defence inside the model (it then sees the noisy samples, as in ART)")
        shape = tuple(input_shape) if isinstance(input_shape, (tuple, list, torch.Size)) else ()
        if not shape or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1
                                for d in shape):
            raise ValueError(f"input_shape must be a non-empty tuple of positive integers, got {input_shape!r}")
        shape = tuple(int(d) for d in shape)
        self._input_shape = shape
        self.nb_classes = check_int("nb_classes", nb_classes, 1)
        self.loss = loss
        self.optimizer = optimizer
        self.channels_first = bool(channels_first)
        self.clip_values = _clip_values(clip_values)
        self.preprocessing = preprocessing
        self.device_type = device_type
        self._device = _device(device_type)
        self._model = model
        norm = _preprocessing_layer(preprocessing, shape)
        self._classifier = (model if norm is None else torch.nn.Sequential(norm, model)).to(self._device)
        self.sample_size = sample_size
        self.scale = scale
        self.alpha = alpha
        self.seed = check_seed(seed)
        self._engine()  # validates sample_size, scale and alpha now
        self._next_index = 0
        self.last_result = None

    # ----------------------------------------------------------------- ART's properties

    @property
    def model(self) -> torch.nn.Module:
        """The model as given (without the preprocessing layer)."""
        return self._model

    @property
    def input_shape(self) -> Tuple[int, ...]:
        return self._input_shape

    @property
    def device(self) -> torch.device:
        return self._device

    # ----------------------------------------------------------------- ART's methods

    def certify(self, x, n: int, batch_size: int = 32, *,
                indices: Optional[Union[torch.Tensor, np.ndarray, int]] = None) -> Tuple[np.ndarray, np.ndarray]:
        """Cohen et al.'s CERTIFY of every input (Alg. 1 of the paper).

        Args:
            x: ``[N, *input_shape]`` inputs (numpy array or tensor, any real dtype).
            n: estimation samples per input (selection uses ``sample_size`` others).
            batch_size: classifier batch size (inputs x samples are packed into it).
            indices: ``[N]`` noise keys, or an int ``i0`` for ``i0 .. i0+N-1``
                (default: the running index, see the class).

        Returns:
            ``(prediction, radius)``: ``[N]`` int64 classes, :data:`ABSTAIN` (-1) on
            abstain, and ``[N]`` float64 certified L2 radii (0.0 on abstain).
        """
        smooth = self._engine()
        n = check_int("n", n, 1)
        batch_size = check_int("batch_size", batch_size, 1)
        X = self._inputs(x)
        if X.shape[0] == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        ids = self._indices(indices, X.shape[0])
        self._classifier.eval()
        res = smooth.certify_batch(X, int(self.sample_size), n, float(self.alpha), batch_size, indices=ids)
        self.last_result = res
        pred = res.prediction.cpu().numpy().astype(np.int64)
        return np.where(pred == Smooth.ABSTAIN, ABSTAIN, pred), res.radius.cpu().numpy().astype(np.float64)

    def predict(self, x, batch_size: int = 128, verbose: bool = False, **kwargs) -> np.ndarray:
        """Cohen et al.'s PREDICT of every input with ``sample_size`` samples.

        Args:
            x: ``[N, *input_shape]`` inputs.
            batch_size: classifier batch size.
            verbose: show a progress bar.
            is_abstain: (keyword) True (default): abstain when the two-sided binomial
                test of top-1 against top-2 has p-value > alpha; False: always the top class.
            indices: (keyword) noise keys, as in :meth:`certify`.
            training_mode: (keyword) accepted and ignored, as by ART (always eval mode).

        Returns:
            ``[N, nb_classes]`` float64: a one-hot row per input, all zeros on abstain.
        """
        is_abstain = kwargs.pop("is_abstain", None)
        indices = kwargs.pop("indices", None)
        kwargs.pop("training_mode", None)
        if kwargs:
            raise ValueError(f"predict() got unsupported keyword arguments: {', '.join(sorted(kwargs))}")
        if is_abstain is None:
            is_abstain = True
        if not isinstance(is_abstain, bool):
            raise ValueError(f"is_abstain must be a bool, got {is_abstain!r}")
        smooth = self._engine()
        batch_size = check_int("batch_size", batch_size, 1)
        X = self._inputs(x)
        out = np.zeros((X.shape[0], self.nb_classes), dtype=np.float64)
        if X.shape[0] == 0:
            return out
        ids = self._indices(indices, X.shape[0])
        self._classifier.eval()
        smooth.progress = bool(verbose)
        res = smooth.predict_batch(X, int(self.sample_size), float(self.alpha), batch_size, indices=ids)
        self.last_result = res
        counts = res.counts.cpu().numpy()
        top = res.prediction.cpu().numpy() if is_abstain else np.argmax(counts, axis=1)
        rows = np.flatnonzero(top != Smooth.ABSTAIN)
        out[rows, top[rows]] = 1.0
        return out

    def fit(self, *args, **kwargs):
        raise NotImplementedError("RandomizedSmoothing does not train; train with "
                                  "smoothcert.train.train_gaussian (Gaussian augmentation at sigma = scale) "
                                  "or with ART, then wrap the trained model")

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(model={type(self._model).__name__}, input_shape={self._input_shape}, "
                f"nb_classes={self.nb_classes}, channels_first={self.channels_first}, "
                f"preprocessing={self.preprocessing!r}, device={self._device}, sample_size={self.sample_size}, "
                f"scale={self.scale}, alpha={self.alpha}, seed={self.seed})")

    # ----------------------------------------------------------------- internals

    def _engine(self) -> Smooth:
        """A :class:`Smooth` with the current (user-settable) scale and checks of the others."""
        check_int("sample_size", self.sample_size, 1)
        a = self.alpha
        if isinstance(a, bool) or not isinstance(a, (int, float, np.floating)) or not 0.0 < float(a) < 1.0:
            raise ValueError(f"alpha must lie in (0, 1), got {a!r}")
        s = self.scale
        if isinstance(s, bool) or not isinstance(s, (int, float, np.floating)) or not (np.isfinite(s) and s > 0):
            raise ValueError(f"scale must be finite and > 0, got {s!r}")
        return Smooth(self._classifier, self.nb_classes, float(s), seed=self.seed)

    def _inputs(self, x) -> torch.Tensor:
        """``x`` as a float32 ``[N, *input_shape]`` tensor on the device."""
        if isinstance(x, torch.Tensor):
            X = x.detach()
            if X.dtype == torch.bool or X.is_complex():
                raise ValueError(f"x must hold real numbers, got dtype {X.dtype}")
        else:
            arr = np.asarray(x)
            if arr.dtype.kind not in "fiu":
                raise ValueError(f"x must be a real numeric array, got dtype {arr.dtype}")
            X = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
        if tuple(X.shape[1:]) != self._input_shape or X.dim() != len(self._input_shape) + 1:
            layout = ""
            if len(self._input_shape) >= 3:
                layout = " (channels first)" if self.channels_first else " (channels last)"
            raise ValueError(f"x has shape {tuple(X.shape)}; this estimator expects (N, *input_shape) = "
                             f"(N, {', '.join(map(str, self._input_shape))}){layout}")
        return X.to(device=self._device, dtype=torch.float32)

    def _indices(self, indices, N: int):
        """The noise keys of a call of N inputs; the running index advances only when used."""
        if indices is not None:
            return indices
        start = self._next_index
        self._next_index += N
        return start
