"""Inputs a Python user brings to the API: NumPy and DLPack arrays (zero-copy), seeds,
alpha and indices of other numeric types, NaN logits in count_votes_, and shape and
range slips caught before the first forward with a message that names them."""
import warnings

import numpy as np
import pytest
import torch

from smoothcert import Smooth, ops
from smoothcert.models import build_model, load_checkpoint, save_checkpoint
from smoothcert.utils.arrays import as_tensor, input_spec
from helpers import LinearClassifier, gen


def linear(d=12, seed=0):
    return LinearClassifier(torch.randn(d, generator=gen(seed), dtype=torch.float64), 0.1)


class DLPackOnly:
    """An array from another library: exports DLPack, is not a torch.Tensor."""

    def __init__(self, t):
        self._t = t

    def __dlpack__(self, *args, **kwargs):
        return self._t.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._t.__dlpack_device__()


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "digits.pt"
    save_checkpoint(str(path), build_model("mlp", "digits"), arch="mlp", dataset="digits")
    model, _ = load_checkpoint(str(path))
    return model


def same(a, b):
    for name in ("prediction", "radius", "count_a", "pa_lower", "counts", "selection_counts"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


# --------------------------------------------------------------------------- arrays


def test_numpy_and_dlpack_inputs_certify_like_tensors():
    clf = linear()
    X = torch.rand(3, 12, generator=gen(1))
    smooth = Smooth(clf, 2, 0.5, seed=4)
    want = smooth.certify_batch(X, 16, 200, 0.01, 64)
    same(smooth.certify_batch(X.numpy(), 16, 200, 0.01, 64), want)
    same(smooth.certify_batch(DLPackOnly(X), 16, 200, 0.01, 64), want)
    same(smooth.certify_batch(X.double().numpy(), 16, 200, 0.01, 64), want)  # float64 -> float32, exact here
    assert smooth.certify(X[1].numpy(), 16, 200, 0.01, 64, index=1) == (int(want.prediction[1]),
                                                                         float(want.radius[1]))
    pred = smooth.predict_batch(X.numpy(), 100, 0.01, 64).prediction
    assert torch.equal(pred, smooth.predict_batch(X, 100, 0.01, 64).prediction)


def test_as_tensor_is_zero_copy():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert as_tensor(a).data_ptr() == a.ctypes.data
    t = torch.arange(6.0)
    assert as_tensor(DLPackOnly(t)).data_ptr() == t.data_ptr()
    strided = a[:, ::2]
    assert as_tensor(strided).data_ptr() == a.ctypes.data and as_tensor(strided).tolist() == strided.tolist()


def test_read_only_and_reversed_arrays_are_accepted_without_warnings():
    a = np.random.default_rng(0).random((2, 12)).astype(np.float32)
    ro = a.copy()
    ro.setflags(write=False)
    smooth = Smooth(linear(), 2, 0.5)
    want = smooth.certify_batch(a[::-1].copy(), 8, 100, 0.01, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = smooth.certify_batch(a[::-1], 8, 100, 0.01, 64)
        smooth.certify_batch(ro, 8, 100, 0.01, 64)
    same(got, want)


@pytest.mark.parametrize("bad,match", [([[0.1] * 12], "must be a torch.Tensor, a NumPy array"),
                                       (np.array([["a"] * 12]), "not numeric"),
                                       ("x", "must be a torch.Tensor")])
def test_non_arrays_are_refused(bad, match):
    with pytest.raises(TypeError, match=match):
        Smooth(linear(), 2, 0.5).certify_batch(bad, 8, 100, 0.01, 64)


def test_uint8_inputs_get_the_255_hint():
    with pytest.raises(ValueError, match="divide by 255"):
        Smooth(linear(), 2, 0.5).certify_batch(np.zeros((1, 12), dtype=np.uint8), 8, 100, 0.01, 64)


def test_ops_take_numpy_arrays():
    x = np.random.default_rng(1).random((2, 5)).astype(np.float32)
    ids = np.array([3, 9])
    want = ops.sample_noise(torch.from_numpy(x), 0.3, 4, ids=torch.from_numpy(ids), seed=2)
    assert torch.equal(ops.sample_noise(x, np.float32(0.3), 4, ids=ids, seed=2), want)
    assert torch.equal(ops.sample_noise(x, np.full(5, 0.3, dtype=np.float32), 4, ids=ids, seed=2), want)
    with pytest.raises(ValueError, match="ids must be integers"):
        ops.sample_noise(x, 0.3, 4, ids=ids.astype(np.float64), seed=2)
    counts = np.zeros((2, 3), dtype=np.int64)
    ops.count_votes_(np.array([[0.0, 1.0, 0.0]] * 4 + [[2.0, 1.0, 0.0]] * 4, dtype=np.float32), 4, counts)
    assert counts.tolist() == [[0, 4, 0], [4, 0, 0]]  # updated in place through shared memory
    q = np.random.default_rng(2).random((3, 4)).astype(np.float32)
    m = torch.from_numpy(q[:2] + 1)
    got = ops.ball_margin(q, m.numpy(), np.array([0.1, 0.2]), np.array([0, 1]), np.array([0, 0, 1]))
    ref = ops.ball_margin(torch.from_numpy(q), m, torch.tensor([0.1, 0.2], dtype=torch.float64),
                          torch.tensor([0, 1]), torch.tensor([0, 0, 1]))
    assert all(torch.equal(a, b) for a, b in zip(got, ref))


# ------------------------------------------------------------------- seeds, alpha, indices


def test_seed_outside_64_bits_is_refused():
    for bad in (2 ** 64, 2 ** 70, -1):
        with pytest.raises(ValueError, match=r"seed must"):
            Smooth(linear(), 2, 0.5, seed=bad)
        with pytest.raises(ValueError, match=r"seed must"):
            ops.sample_noise_table(torch.zeros(1, 3), torch.zeros(1, dtype=torch.long), torch.ones(1, 1), 2,
                                   sample_start=0, seed=bad, stream=0)
    x = torch.zeros(1, 3)
    top = ops.sample_noise(x, 1.0, 2, seed=2 ** 64 - 1)
    assert not torch.equal(top, ops.sample_noise(x, 1.0, 2, seed=0))
    assert Smooth(linear(), 2, 0.5, seed=np.uint64(2 ** 64 - 1)).seed == 2 ** 64 - 1


def test_alpha_of_numpy_types():
    smooth = Smooth(linear(), 2, 0.5)
    X = torch.rand(2, 12, generator=gen(3))
    want = smooth.certify_batch(X, 8, 200, float(np.float32(0.01)), 64)
    same(smooth.certify_batch(X, 8, 200, np.float32(0.01), 64), want)
    assert smooth.certify_batch(X, 8, 200, np.float64(0.01), 64).alpha == 0.01
    for bad in (True, "0.01", None):
        with pytest.raises(ValueError, match="alpha must be a number"):
            smooth.certify_batch(X, 8, 200, bad, 64)


@pytest.mark.parametrize("indices", [torch.tensor([0.0, 1.0]), np.array([2.5, 3.0]), [1.0, 2.0],
                                     torch.tensor([True, False])])
def test_float_or_bool_indices_are_refused(indices):
    with pytest.raises(ValueError, match="indices must be integers"):
        Smooth(linear(), 2, 0.5).certify_batch(torch.rand(2, 12), 8, 100, 0.01, 64, indices=indices)


def test_float_scalar_index_is_refused():
    with pytest.raises((ValueError, TypeError), match="indices|index"):
        Smooth(linear(), 2, 0.5).certify_batch(torch.rand(2, 12), 8, 100, 0.01, 64, indices=3.0)
    with pytest.raises(ValueError, match="index must be an integer"):
        Smooth(linear(), 2, 0.5).certify(torch.rand(12), 8, 100, 0.01, 64, index=3.0)


def test_integer_indices_of_any_container_agree():
    smooth = Smooth(linear(), 2, 0.5, seed=1)
    X = torch.rand(2, 12, generator=gen(5))
    want = smooth.certify_batch(X, 8, 100, 0.01, 64, indices=torch.tensor([7, 3]))
    for ids in (np.array([7, 3], dtype=np.int32), [7, 3], (np.int64(7), np.int64(3))):
        same(smooth.certify_batch(X, 8, 100, 0.01, 64, indices=ids), want)


# ------------------------------------------------------------------------- count_votes_


def test_count_votes_refuses_nan_logits_by_default():
    logits = torch.tensor([[float("nan"), 0.0, 1.0], [0.0, 2.0, 1.0]])
    counts = torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="1 of 2 logits rows hold NaN/inf"):
        ops.count_votes_(logits, 1, counts)
    assert not counts.any()  # refused before counting anything
    nonfinite = torch.zeros(2, dtype=torch.long)
    ops.count_votes_(logits, 1, counts, nonfinite)
    assert nonfinite.tolist() == [1, 0]
    assert ops.count_votes_(logits, 1, torch.zeros(2, 3, dtype=torch.long), validate=False)[0].tolist() == [1, 0, 0]


# ------------------------------------------------------------------- shapes and ranges


def test_checkpoint_models_record_their_inputs(digits_model):
    assert input_spec(digits_model) == {"shape": (1, 8, 8), "range": (0.0, 1.0)}


def test_certify_with_a_batch_dimension_names_the_slip(digits_model):
    smooth = Smooth(digits_model, 10, 0.25)
    with pytest.raises(ValueError, match=r"inputs have shape \[1, 1, 1, 8, 8\].*expects \[B, 1, 8, 8\].*"
                                         r"one input without a batch dimension"):
        smooth.certify(torch.rand(1, 1, 8, 8), 8, 100, 0.01, 64)


def test_certify_batch_of_one_unbatched_input_names_the_slip(digits_model):
    with pytest.raises(ValueError, match=r"this is one input"):
        Smooth(digits_model, 10, 0.25).certify_batch(torch.rand(1, 8, 8), 8, 100, 0.01, 64)


def test_channels_last_inputs_name_the_permute(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "c.pt"
    save_checkpoint(str(path), build_model("lenet", "cifar10"), arch="lenet", dataset="cifar10")
    model, _ = load_checkpoint(str(path))
    with pytest.raises(ValueError, match=r"channels-last.*permute\(0, 3, 1, 2\)"):
        Smooth(model, 10, 0.25).certify_batch(torch.rand(2, 32, 32, 3), 8, 100, 0.01, 64)


def test_model_without_a_spec_reports_the_noisy_batch_shape():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.LazyLinear(3)).eval()
    net(torch.rand(1, 1, 8, 8))
    with pytest.raises(RuntimeError, match=r"noisy batch of shape \[4, 1, 1, 8, 8\].*certify\(\) takes one input"):
        Smooth(net, 3, 0.25).certify(torch.rand(1, 1, 8, 8), 4, 8, 0.01, 64)


def test_pixels_not_divided_by_255_warn(digits_model):
    smooth = Smooth(digits_model, 10, 0.25)
    x = torch.randint(0, 256, (2, 1, 8, 8), generator=gen(0)).float()
    with pytest.warns(UserWarning, match=r"inputs span \[.*\] but the model expects values in \[0, 1\].*255"):
        smooth.certify_batch(x, 8, 100, 0.01, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        smooth.certify_batch(x / 255, 8, 100, 0.01, 64)
