"""The L1 certification API (Levine & Feizi 2021, §4.1 and Corollary 1; tie-breaks and the offset
vector's seed follow the authors' released code, choices of this library where the paper is silent):
DSSN certificate arithmetic (ties, floor, K / q never rounded up), the L rule and the offset
vector, determinism, bad input, the Monte-Carlo warning, the ``certify --noise`` CLI and
training with L1 noise. Soundness itself is in test_l1_soundness.py."""
import json
import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
import torch

from smoothcert import cli, data, models, ops, stats
from smoothcert import train as training
from smoothcert.stats import l1 as stats_l1
from smoothcert.certify import CertifyResult, DssnResult
from smoothcert.drivers.dataset import PREFIX
from smoothcert.certify import SplitSmooth, UniformSmooth
from smoothcert.ops import dssn_offsets, dssn_training_offsets
from smoothcert.stats.l1 import dssn_levels

HEADER = PREFIX + list(CertifyResult.COLUMNS)
DSSN_HEADER = PREFIX + list(DssnResult.COLUMNS)


class QuantLinear(torch.nn.Module):
    """Logits ``W^T round(scale * z)`` in int64: exact, so every row's logits depend on
    that row alone (any batch size, any packing of inputs)."""

    def __init__(self, d: int, num_classes: int, seed: int = 0, scale: float = 1020.0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("W", torch.randint(-5, 6, (d, num_classes), generator=g))
        self.register_buffer("b", torch.randint(-300, 301, (num_classes,), generator=g))
        self.scale = scale
        self.eval()

    def forward(self, z):
        Z = torch.round(z.reshape(z.shape[0], -1).double() * self.scale).long()
        return ((Z[:, :, None] * self.W[None]).sum(1) + self.b).double()


def grid_inputs(B, shape, q=255, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, q + 1, (B, *shape), generator=g).float() / q


# ----------------------------------------------------------------------------- certificate arithmetic


@pytest.mark.parametrize("counts,A,B,K", [
    ([3, 5, 5, 0], 1, 2, 0),   # tie for the top: lowest index wins, B after A -> no -1 term
    ([5, 5, 0], 0, 1, 0),
    ([1, 6, 6], 1, 2, 0),
    ([7, 0, 4], 0, 2, 1),      # floor(3 / 2)
    ([4, 6], 1, 0, 0),         # B < A: floor((6 - 4 - 1) / 2)
    ([4, 7], 1, 0, 1),         # floor((7 - 4 - 1) / 2)
    ([6, 4], 0, 1, 1),         # B > A: floor(2 / 2)
    ([5, 10, 5], 1, 0, 2),     # runner-up tie: lowest index (0 < A) -> -1 term
    ([0, 0, 9], 2, 0, 4),      # floor((9 - 0 - 1) / 2)
    ([0, 9, 0, 0], 1, 0, 4),
    ([2, 9, 0], 1, 0, 3),
    ([9], 0, -1, 4),           # one class: B = -1, count_b = 0
])
def test_dssn_certificate_hand_cases(counts, A, B, K):
    for q in (255, 7):
        cert = stats_l1.dssn_certificate(np.array([counts]), q)
        assert int(cert["prediction"][0]) == A and int(cert["runner_up"][0]) == B
        assert int(cert["grid_radius"][0]) == K
        assert int(cert["count_a"][0]) == counts[A]
        assert int(cert["count_b"][0]) == (counts[B] if B >= 0 else 0)
        assert Fraction(float(cert["radius"][0])) <= Fraction(K, q)
        assert float(cert["radius"][0]) == pytest.approx(K / q, rel=1e-15)
        assert cert["grid_radius"].dtype == np.int64 and cert["radius"].dtype == np.float64


def _brute_K(row):
    """Largest j with A kept when j votes move from A to each other class (the vote-moving argument
    behind the DSSN certificate)."""
    a = max(range(len(row)), key=lambda c: (row[c], -c))
    j = 0
    while j + 1 <= row[a] and all(row[a] - (j + 1) > row[c] + (j + 1) or
                                  (row[a] - (j + 1) == row[c] + (j + 1) and a < c)
                                  for c in range(len(row)) if c != a):
        j += 1
    return a, j


def test_dssn_certificate_matches_brute_force():
    rng = np.random.RandomState(0)
    for C in (2, 3, 5):
        counts = rng.randint(0, 7, size=(400, C))  # small values: many ties
        cert = stats_l1.dssn_certificate(counts, 10)
        for row, a, k in zip(counts.tolist(), cert["prediction"], cert["grid_radius"]):
            assert (int(a), int(k)) == _brute_K(row), row


def test_dssn_radius_never_above_the_rational():
    rounded_up = 0
    for q in (3, 7, 10, 255, 1000):
        K = np.arange(0, 3000)
        cert = stats_l1.dssn_certificate(np.stack([2 * K, np.zeros_like(K)], 1), q)
        np.testing.assert_array_equal(cert["grid_radius"], K)
        for k, r in zip(K.tolist(), cert["radius"].tolist()):
            exact = Fraction(k, q)
            assert Fraction(r) <= exact
            assert Fraction(math.nextafter(r, math.inf)) > exact  # the largest such double
            rounded_up += Fraction(k / q) > exact
    assert rounded_up > 0  # k / q does round up for some: the stepping down is exercised


@pytest.mark.parametrize("bad", [np.array([1, 2]), np.array([[1, -1]]), np.array([[1.0, 2.0]]),
                                 np.zeros((2, 0), dtype=np.int64)])
def test_dssn_certificate_bad_counts(bad):
    with pytest.raises(ValueError):
        stats_l1.dssn_certificate(bad, 255)


# ----------------------------------------------------------------------------- L rule and v


SPEC_TABLE = {0.15: 132, 0.25: 220, 0.5: 441, 0.75: 662, 1.0: 883, 1.25: 1104, 1.5: 1325, 1.75: 1545,
              2.0: 1766, 2.25: 1987, 2.5: 2208, 2.75: 2429, 3.0: 2650, 3.25: 2870, 3.5: 3091}


def test_dssn_levels_spec_table():
    for sigma, L in SPEC_TABLE.items():
        assert dssn_levels(sigma, 255) == L, sigma
        assert SplitSmooth(lambda z: z, 2, sigma).levels == L
    assert dssn_levels(0.5) == 441  # q defaults to 255
    assert dssn_levels(1.0, 16) == int(2 * math.sqrt(3) * 16) == 55
    assert dssn_levels(1.001 / (2 * math.sqrt(3) * 8), 8) == 1  # the smallest sigma with one offset
    sm = SplitSmooth(lambda z: z, 2, 0.25, q=16)
    assert sm.levels == 13 and sm.lam == 13 / 32  # lambda rounded down to L / (2q)


@pytest.mark.parametrize("sigma,q,msg", [(0.0, 255, "sigma"), (-0.5, 255, "sigma"), (float("nan"), 255, "sigma"),
                                         (float("inf"), 255, "sigma"), (0.5, 0, "q"), (0.5, -3, "q"),
                                         (0.5, 2.5, "q"), (1e-4, 255, "sigma >="), (0.03, 8, "sigma >=")])
def test_dssn_levels_errors(sigma, q, msg):
    with pytest.raises(ValueError, match=msg):
        dssn_levels(sigma, q)


def test_dssn_offsets_are_numpy_randint():
    for L, d, seed in [(441, 64, 0), (3091, 3072, 0), (132, 100, 1), (7, 5, 2 ** 32 - 1), (1, 4, 3)]:
        v = dssn_offsets(L, d, seed)
        assert v.dtype == torch.int32 and v.shape == (d,)
        np.testing.assert_array_equal(v.numpy(), np.random.RandomState(seed).randint(L, size=d))
    assert not torch.equal(dssn_offsets(441, 64, 0), dssn_offsets(441, 64, 1))
    for args in [(0, 4, 0), (5, 0, 0), (5, 4, -1), (5, 4, 2 ** 32)]:
        with pytest.raises(ValueError):
            dssn_offsets(*args)


def test_dssn_training_offsets():
    L = 5
    ids = torch.tensor([3, 9, 4])
    o = dssn_training_offsets(ids, 4000, L, seed=1, sample_start=100)
    assert o.shape == (3, 4000) and int(o.min()) >= 0 and int(o.max()) < L
    # a pure function of (seed, id, sample): other batch composition / chunking, same draws
    o2 = dssn_training_offsets(torch.tensor([4, 3]), 10, L, seed=1, sample_start=150)
    assert torch.equal(o2[0], o[2, 50:60]) and torch.equal(o2[1], o[0, 50:60])
    assert not torch.equal(dssn_training_offsets(ids, 4000, L, seed=2, sample_start=100), o)
    assert not torch.equal(o[0], o[1])
    freq = torch.bincount(o.view(-1), minlength=L).double() / o.numel()  # uniform on 0..L-1
    assert (freq - 1 / L).abs().max() < 5 * math.sqrt(0.2 * 0.8 / o.numel())


# ----------------------------------------------------------------------------- determinism


def test_dssn_counts_independent_of_batching_and_order():
    X = grid_inputs(5, (1, 4, 4), seed=1)
    f = QuantLinear(16, 3, seed=2)
    sm = SplitSmooth(f, 3, 0.1)  # L = 88
    ref = sm.certify_batch(X, batch_size=10_000)
    assert ref.levels == 88 and len(set(ref.prediction.tolist())) >= 2  # not a constant classifier
    for bs in (1, 7, 100):
        r = sm.certify_batch(X, batch_size=bs)
        assert torch.equal(r.counts, ref.counts) and torch.equal(r.radius, ref.radius), bs
    perm = torch.tensor([3, 0, 4, 2, 1])
    r = sm.certify_batch(X[perm], batch_size=100, indices=perm)
    assert torch.equal(r.counts, ref.counts[perm])
    for i in (0, 3):
        assert sm.certify(X[i], batch_size=13) == (int(ref.prediction[i]), float(ref.radius[i]))
        assert sm.predict(X[i], batch_size=13) == int(ref.prediction[i])
    assert torch.equal(sm.predict_batch(X), ref.prediction)
    # the counts are the votes over all L offsets with v of the seed (another seed, other counts)
    other = SplitSmooth(f, 3, 0.1, offset_seed=1).certify_batch(X, batch_size=10_000)
    assert not torch.equal(other.counts, ref.counts) and other.offset_seed == 1
    v = dssn_offsets(88, 16, 0)
    votes = f(ops.dssn_batch(X, v, torch.arange(88), 88, 255)).argmax(1).view(5, 88)
    assert torch.equal(torch.nn.functional.one_hot(votes, 3).sum(1), ref.counts)


@pytest.mark.parametrize("make", [
    lambda f: UniformSmooth(f, 3, 0.3, seed=4),
    lambda f: SplitSmooth(f, 3, 0.3, seed=4, deterministic=False),
], ids=["uniform", "ssn"])
def test_montecarlo_l1_depends_only_on_seed_and_index(make):
    X = torch.rand(4, 6, generator=torch.Generator().manual_seed(0))
    f = QuantLinear(6, 3, seed=5, scale=64.0)
    sm = make(f)
    ids = torch.tensor([10, 3, 7, 0])
    ref = sm.certify_batch(X, 16, 300, 0.001, 1000, indices=ids)
    assert ref.norm == "l1"
    r = make(f).certify_batch(X, 16, 300, 0.001, 37, indices=ids)  # other batch size: same result
    assert torch.equal(r.counts, ref.counts) and torch.equal(r.selection_counts, ref.selection_counts)
    assert torch.equal(r.radius, ref.radius)
    for k in (0, 2):  # alone with its index == inside the batch
        assert make(f).certify(X[k], 16, 300, 0.001, 100, index=int(ids[k])) == (
            int(ref.prediction[k]), float(ref.radius[k]))
    r = make(f).certify_batch(X[[2, 0]], 16, 300, 0.001, 1000, indices=ids[[2, 0]])
    assert torch.equal(r.counts, ref.counts[[2, 0]])
    # and it does depend on them
    assert not torch.equal(make(f).certify_batch(X, 16, 300, 0.001, 1000, indices=ids + 1).counts, ref.counts)
    other = type(sm)(f, 3, 0.3, seed=5, **({} if isinstance(sm, UniformSmooth) else {"deterministic": False}))
    assert not torch.equal(other.certify_batch(X, 16, 300, 0.001, 1000, indices=ids).counts, ref.counts)


# ----------------------------------------------------------------------------- bad input


def _f3(z):
    z = z.reshape(z.shape[0], -1).double()
    return torch.stack([0.5 - z[:, 0], z[:, 0] - 0.5, z[:, 1] - 0.9], 1)


def test_dssn_refuses_off_grid_and_quantize_rounds():
    sm = SplitSmooth(_f3, 3, 0.5)
    X = grid_inputs(3, (4,), seed=3)
    off = X.clone()
    off[1, 2] += 0.3 / 255
    with pytest.raises(ValueError, match=r"not on the grid \{0, 1/255, \.\.\., 1\}.*flat index 6"):
        sm.certify_batch(off)
    with pytest.raises(ValueError, match="grid"):
        sm.certify(off[1])
    with pytest.raises(ValueError, match="grid"):
        sm.certify_batch(X * 1.5)  # above 1
    with pytest.raises(ValueError, match="grid"):
        SplitSmooth(_f3, 3, 0.5, q=16).certify_batch(X)  # 1/255 steps are not on the 1/16 grid
    smq = SplitSmooth(_f3, 3, 0.5, quantize=True)
    np.testing.assert_equal(smq.certify_batch(off).counts.numpy(), sm.certify_batch(X).counts.numpy())
    off2 = torch.tensor([[0.0013, 0.5, 0.2, 0.7]])
    rounded = torch.round(off2.double() * 255).float() / 255
    assert not torch.equal(off2, rounded)
    assert torch.equal(smq.certify_batch(off2).counts, sm.certify_batch(rounded).counts)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        smq.certify_batch(off2 - 0.01)
    # float32 grid values i/255 within rounding are accepted
    assert SplitSmooth(_f3, 3, 0.5).certify_batch(torch.arange(256.0).view(64, 4) / 255).counts.shape == (64, 3)


def test_dssn_integer_inputs():
    sm = SplitSmooth(_f3, 3, 0.5)
    P = torch.tensor([[3, 200, 17, 255], [0, 128, 255, 1]])
    ref = sm.certify_batch(P.float() / 255)
    assert torch.equal(sm.certify_batch(P.to(torch.uint8)).counts, ref.counts)
    assert torch.equal(sm.certify_batch(P.to(torch.int64)).counts, ref.counts)
    sm16 = SplitSmooth(_f3, 3, 0.5, q=16)
    P16 = torch.tensor([[3, 15, 16, 0]])
    assert torch.equal(sm16.certify_batch(P16.to(torch.uint8)).counts, sm16.certify_batch(P16.float() / 16).counts)
    with pytest.raises(ValueError, match="outside"):
        sm16.certify_batch(torch.tensor([[3, 17, 0, 0]], dtype=torch.uint8))


def test_dssn_quantize_integer_pixels_same_as_without():
    P = torch.tensor([[12, 3, 0, 16]])
    for dtype in (torch.uint8, torch.int64):
        a = SplitSmooth(_f3, 3, 0.25, q=16).certify_batch(P.to(dtype)).counts
        b = SplitSmooth(_f3, 3, 0.25, q=16, quantize=True).certify_batch(P.to(dtype)).counts
        assert torch.equal(a, b), dtype


def test_bad_arguments():
    X = grid_inputs(2, (4,))
    with pytest.raises(ValueError, match="NaN"):
        SplitSmooth(_f3, 3, 0.5).certify_batch(torch.tensor([[float("nan"), 0, 0, 0]]))
    with pytest.raises(ValueError, match="NaN"):
        SplitSmooth(_f3, 3, 0.5, quantize=True).certify_batch(torch.tensor([[float("nan"), 0, 0, 0]]))
    for sigma in (0.0, -1.0, float("nan"), float("inf")):
        for det in (True, False):
            with pytest.raises(ValueError, match="sigma"):
                SplitSmooth(_f3, 3, sigma, deterministic=det)
        with pytest.raises(ValueError, match="sigma"):
            UniformSmooth(_f3, 3, sigma)
    for q in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="q"):
            SplitSmooth(_f3, 3, 0.5, q=q)
    with pytest.raises(ValueError, match="scalar sigma"):
        SplitSmooth(_f3, 3, torch.tensor(0.5))
    with pytest.raises(ValueError, match="abstain"):
        SplitSmooth(_f3, 3, 0.5, abstain=True)
    sm = SplitSmooth(_f3, 3, 0.5)
    for kw in (dict(n0=10), dict(n=100), dict(alpha=0.01), dict(n0=64, n=100, alpha=0.001)):
        with pytest.raises(ValueError, match="DSSN is exact"):
            sm.certify(X[0], **kw)
        with pytest.raises(ValueError, match="DSSN is exact"):
            sm.certify_batch(X, **kw)
    with pytest.raises(ValueError, match="DSSN is exact"):
        sm.predict(X[0], n=100)
    with pytest.raises(ValueError, match="batch_size"):
        sm.certify_batch(X, batch_size=0)
    with pytest.raises(ValueError, match=r"shape \[882, 3\]"):
        SplitSmooth(lambda z: torch.zeros(z.shape[0], 2), 3, 0.5).certify_batch(X)
    with pytest.raises(ValueError, match=r"shape"):
        SplitSmooth(lambda z: torch.zeros(z.shape[0] - 1, 3), 3, 0.5).certify_batch(X)

    def nan_on_second(z):
        out = _f3(z)
        out[z.shape[0] // 2] = float("nan")
        return out
    with pytest.raises(ValueError, match="NaN/inf logits"):
        SplitSmooth(nan_on_second, 3, 0.5).certify_batch(X, batch_size=10_000)
    with pytest.raises(ValueError, match="NaN/inf logits"):
        UniformSmooth(nan_on_second, 3, 0.5).certify_batch(X, 8, 50, 0.001, 1000)
    with pytest.raises(ValueError, match="NaN"):
        UniformSmooth(_f3, 3, 0.5).certify_batch(torch.tensor([[float("nan"), 0, 0, 0]]), 8, 50, 0.001, 100)


def test_montecarlo_warns_when_n_can_never_certify():
    X = torch.rand(2, 4, generator=torch.Generator().manual_seed(0))
    m = stats.min_samples_to_certify(0.001)
    assert m == 10
    for sm in (UniformSmooth(_f3, 3, 0.5), SplitSmooth(_f3, 3, 0.5, deterministic=False)):
        with pytest.warns(UserWarning, match="can never certify"):
            res = sm.certify_batch(X, 8, m - 1, 0.001, 100)
        assert (res.radius == 0).all()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sm.certify_batch(X, 8, m, 0.001, 100)


# ----------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def dssn_checkpoint(tmp_path_factory):
    """A small MLP trained for one epoch with DSSN noise on digits (values i/16: q = 16)."""
    path = str(tmp_path_factory.mktemp("ckpt") / "dssn.pt")
    args = ["train", "--arch", "mlp", "--dataset", "digits", "--sigma", "0.25", "--noise", "dssn", "--q", "16",
            "--offset-seed", "3", "--epochs", "1", "--batch", "64", "--lr", "0.05", "--max-train", "64",
            "--out", path, "--no-progress"]
    with torch.random.fork_rng():
        assert cli.main(args) == 0
    return path


def _certify(ckpt, out, noise, extra=()):
    return ["certify", "--model", ckpt, "--dataset", "digits", "--sigma", "0.25", "--noise", noise,
            "--n0", "16", "--n", "200", "--batch", "400", "--skip", "3", "--max", "30", "--out", out,
            "--no-progress", *extra]


def _read(path):
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f]


def test_cli_dssn(dssn_checkpoint, tmp_path, capsys):
    info = models.checkpoint_info(dssn_checkpoint)
    assert info["meta"]["noise"] == {"kind": "dssn", "q": 16, "offset_seed": 3, "levels": 13}
    out = str(tmp_path / "dssn.tsv")
    assert cli.main(_certify(dssn_checkpoint, out, "dssn")) == 0  # q and offset seed from the checkpoint
    rows = _read(out)
    assert rows[0] == DSSN_HEADER == ["idx", "label", "predict", "radius", "correct", "time", "count_a", "count_b",
                                      "runner_up", "levels", "q", "grid_radius", "sigma", "certificate", "norm"]
    assert [int(r[0]) for r in rows[1:]] == list(range(0, 30, 3))
    h = {name: i for i, name in enumerate(DSSN_HEADER)}
    split = data.load_dataset("digits", "test")
    model, _ = models.load_checkpoint(dssn_checkpoint)
    direct = SplitSmooth(model, 10, 0.25, q=16, offset_seed=3).certify_batch(split.x[0:30:3], batch_size=400)
    for k, r in enumerate(rows[1:]):
        assert r[h["certificate"]] == "deterministic" and r[h["norm"]] == "l1"
        assert int(r[h["levels"]]) == 13 and int(r[h["q"]]) == 16 and float(r[h["sigma"]]) == 0.25
        K = int(r[h["grid_radius"]])
        assert float(r[h["radius"]]) == stats_l1.dssn_certificate(np.array([[2 * K, 0]]), 16)["radius"][0]
        assert Fraction(float(r[h["radius"]])) <= Fraction(K, 16)
        assert int(r[h["count_a"]]) + int(r[h["count_b"]]) <= 13
        assert K == (int(r[h["count_a"]]) - int(r[h["count_b"]]) - (int(r[h["runner_up"]]) < int(r[h["predict"]]))) // 2
        assert int(r[h["label"]]) == int(split.y[int(r[0])])
        assert int(r[h["correct"]]) == (r[h["predict"]] == r[h["label"]])
        # the same as the API on the same model
        assert int(r[h["predict"]]) == int(direct.prediction[k]) and K == int(direct.grid_radius[k])
    with open(out + ".json") as f:
        config = json.load(f)["config"]
    assert config["noise"] == "dssn" and config["q"] == 16 and config["offset_seed"] == 3 and config["levels"] == 13
    # rerun: resumes, nothing duplicated; an interrupted file is completed
    before = _read(out)
    assert cli.main(_certify(dssn_checkpoint, out, "dssn")) == 0
    assert _read(out) == before
    with open(out) as f:
        lines = f.readlines()
    with open(out, "w") as f:
        f.writelines(lines[:4])
        f.write(lines[4][:5])
    assert cli.main(_certify(dssn_checkpoint, out, "dssn")) == 0
    t = h["time"]
    assert [r[:t] + r[t + 1:] for r in _read(out)] == [r[:t] + r[t + 1:] for r in before]
    # another offset seed on the same file: refused
    capsys.readouterr()
    assert cli.main(_certify(dssn_checkpoint, out, "dssn", ["--offset-seed", "0"])) == 2
    assert "different configuration" in capsys.readouterr().err
    # digits (i/16) are off the default 1/255 grid: refused, or rounded with --quantize
    out255 = str(tmp_path / "q255.tsv")
    assert cli.main(_certify(dssn_checkpoint, out255, "dssn", ["--q", "255"])) == 2
    assert "not on the grid" in capsys.readouterr().err
    outq = str(tmp_path / "q255q.tsv")
    assert cli.main(_certify(dssn_checkpoint, outq, "dssn", ["--q", "255", "--quantize"])) == 0
    rq = _read(outq)
    assert all(int(r[h["q"]]) == 255 and int(r[h["levels"]]) == 220 for r in rq[1:])


@pytest.mark.parametrize("noise", ["uniform", "ssn"])
def test_cli_montecarlo_l1(dssn_checkpoint, tmp_path, noise):
    out = str(tmp_path / f"{noise}.tsv")
    assert cli.main(_certify(dssn_checkpoint, out, noise)) == 0
    rows = _read(out)
    assert rows[0] == HEADER and rows[0][-2:] == ["certificate", "norm"]
    h = {name: i for i, name in enumerate(HEADER)}
    lam = math.sqrt(3) * 0.25
    slack = 0.0 if noise == "uniform" else float(stats_l1.ssn_slack(64, 0.25))
    assert len(rows) == 11
    for r in rows[1:]:
        assert r[h["norm"]] == "l1" and r[h["certificate"]] == "fixed-sigma"
        assert int(r[h["n"]]) == 200 and int(r[h["predict"]]) != -1  # no abstain by default
        pl = float(r[h["pa_lower"]])
        raw = 2.0 * lam * ((pl - 0.5) - slack)
        assert float(r[h["radius"]]) == (math.nextafter(raw, 0.0) if raw > 0 else 0.0)
    with open(out + ".json") as f:
        config = json.load(f)["config"]
    assert config["noise"] == noise and config["n"] == 200
    before = _read(out)
    assert cli.main(_certify(dssn_checkpoint, out, noise)) == 0  # resume: no duplicates
    assert _read(out) == before
    outa = str(tmp_path / f"{noise}_abstain.tsv")
    assert cli.main(_certify(dssn_checkpoint, outa, noise, ["--abstain", "--n", "12"])) == 0
    ra = _read(outa)
    assert all((int(r[h["predict"]]) == -1) == (float(r[h["radius"]]) == 0.0) for r in ra[1:])


# ----------------------------------------------------------------------------- training


def _tiny_digits(n=96):
    s = data.load_dataset("digits", "train")
    return data.Split(s.x[:n], s.y[:n], s.num_classes, "digits/train[:96]")


def test_train_dssn_one_epoch():
    log = []
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = models.build_model("mlp", "digits")
    cfg = training.TrainConfig(noise="dssn", epochs=1, batch_size=48, lr=0.05, q=16, offset_seed=2)
    training.train(model, _tiny_digits(), "gaussian", 0.25, config=cfg, progress=False, log=log)
    assert len(log) == 1 and math.isfinite(log[0]["loss"])
    assert not model.training
    # off-grid training data for DSSN: refused
    with pytest.raises(ValueError, match="grid"):
        training.train(models.build_model("mlp", "digits"), _tiny_digits(),
                       "gaussian", 0.25, config=training.TrainConfig(noise="dssn", epochs=1, q=255), progress=False)


def test_make_noise_dssn_uses_the_certification_offsets():
    cfg = training.TrainConfig(noise="dssn", q=16, offset_seed=2, seed=5)
    split = _tiny_digits()
    ids = torch.tensor([7, 1, 30, 2])
    x = split.x[ids]
    noise = training.make_noise(cfg, ids, 0.25, 4096)
    a, b = noise(x, 3), noise(x, 3)
    assert a.shape == (12, 1, 8, 8) and torch.equal(a, b)  # two calls in one step agree
    assert not torch.equal(training.make_noise(cfg, ids, 0.25, 2 * 4096)(x, 3), a)  # another epoch
    L = dssn_levels(0.25, 16)
    # every noisy copy is one of the L noisy inputs that certification enumerates (same v)
    enum = ops.dssn_batch(x, dssn_offsets(L, 64, 2), torch.arange(L), L, 16).view(4, L, -1)
    offs = dssn_training_offsets(ids, 3, L, seed=5, sample_start=4096)
    for i in range(4):
        for j in range(3):
            assert torch.equal(a.view(4, 3, -1)[i, j], enum[i, int(offs[i, j])])
    # with another offset seed the copies are not the certification's
    other = training.make_noise(training.TrainConfig(noise="dssn", q=16, offset_seed=3, seed=5), ids, 0.25, 4096)
    assert not torch.equal(other(x, 3), a)


@pytest.mark.parametrize("noise", ["uniform", "ssn", "dssn"])
@pytest.mark.parametrize("method", ["macer", "smoothadv"])
def test_gaussian_only_methods_refuse_l1_noise(method, noise):
    params = {"macer": dict(k=2), "smoothadv": dict(m=1, steps=1, epsilon=0.1, warmup=1)}[method]
    cfg = training.TrainConfig(noise=noise, epochs=1, q=16)
    with pytest.raises(ValueError, match="gaussian"):
        training.train(models.build_model("mlp", "digits"), _tiny_digits(), training.make_method(method, **params),
                       0.25, config=cfg, progress=False)


@pytest.mark.parametrize("noise", ["uniform", "ssn"])
def test_train_l1_montecarlo_noise_runs(noise):
    log = []
    cfg = training.TrainConfig(noise=noise, epochs=1, batch_size=48, lr=0.05)
    training.train(models.build_model("mlp", "digits"), _tiny_digits(48), "stability", 0.25, config=cfg,
                   progress=False, log=log)
    assert len(log) == 1 and math.isfinite(log[0]["loss"])
