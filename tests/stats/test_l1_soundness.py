"""Soundness of the L1 certificates (Levine & Feizi 2021, ICML).

* DSSN (§4.1): on a small quantised domain (d = 2, 3; q = 8 and q = 5) the smoothed
  classifier is computed exactly by enumerating all L split offsets with the
  paper's formulas (Corollary 1: Eq. 14, and Eqs. 47-48 of App. A for the general case;
  written here in integers, independently of the library), compared with the kernel's
  twin and with ``SplitSmooth``, and every grid point within the certified L1 distance
  K / q (inclusive) is checked to get the same smoothed prediction. Both branches
  (L < q and L >= q), several offset seeds and several random base classifiers with
  many decision boundaries.
* The counting argument behind it (Corollary 1's proof, §4.1 and App. A): a step of one
  grid unit in one coordinate changes the noisy coordinate for at most one offset
  (exactly one when L >= q).
* Independent SSN (randomized SSN with independent split values, §5 and Fig. 8):
  Monte-Carlo estimates match the closed-form / quadrature smoothed probability, the
  radius is the paper's formula minus the sampler slack, and the true smoothed
  classifier keeps its prediction within the radius.
* Uniform noise (Theorem 1, §3): radius against scipy's Clopper-Pearson bound, no-abstain /
  abstain conventions, and a statistical check against the closed form.
* Proposition 1 (§4.2.2): correlated uniform noise breaks the Lipschitz bound; the
  library's independent noise respects it.
"""
import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats as sps

from smoothcert import ops
from smoothcert.ops import reference
from smoothcert.stats import l1 as stats_l1
from smoothcert.certify import SplitSmooth, UniformSmooth
from smoothcert.ops import dssn_offsets
from smoothcert.stats.l1 import dssn_levels

SQRT3 = math.sqrt(3.0)


def sigma_for_levels(L: int, q: int) -> float:
    """A sigma with ``int(2 sqrt(3) sigma q) == L`` (mid-way between two integers)."""
    return (L + 0.5) / (2 * SQRT3 * q)


# ----------------------------------------------------------------------------- DSSN, exact


def spec_noise_units(X: np.ndarray, v: np.ndarray, L: int, q: int) -> np.ndarray:
    """Noisy inputs of every grid input for every offset b, in units of 1/(4q).

    Written from Levine & Feizi's Corollary 1 (general case, App. A) and §4.1 (Eqs. 17-18) with
    exact integers: split value
    ``s_i = ((v_i + b) mod L + 1/2) / q`` (``S = 2k + 1`` in units of 1/(2q)),
    period ``2 lambda' = L / q`` (``P = 2L``), ``m = ceil((x - s) / (2 lambda'))``,
    ``upper = min(2 lambda' m + s, 1)``, ``lower = max(2 lambda' (m - 1) + s, 0)``,
    ``x~ = (upper + lower) / 2``.

    Args:
        X: ``[N, d]`` integer pixels in 0..q.  v: ``[d]`` offsets in [0, L).

    Returns:
        ``[N, L, d]`` int64 ``4q x~``.
    """
    X2 = 2 * X.astype(np.int64)[:, None, :]                       # x in units of 1/(2q)
    b = np.arange(L, dtype=np.int64)[None, :, None]
    k = (v.astype(np.int64)[None, None, :] + b) % L
    S = 2 * k + 1                                                   # s in units of 1/(2q)
    P = 2 * L                                                       # 2 lambda' in units of 1/(2q)
    m = -((S - X2) // P)                                            # ceil((X2 - S) / P)
    upper = np.minimum(P * m + S, 2 * q)
    lower = np.maximum(P * (m - 1) + S, 0)
    out = upper + lower
    if L >= q:  # the lambda >= 1/2 form (Corollary 1, Eq. 14): x~ = (min(s, 1) + [x > s]) / 2
        first = np.minimum(S, 2 * q) + 2 * q * (X2 > S)
        np.testing.assert_array_equal(out, np.broadcast_to(first, out.shape))
    return out


class LookupClassifier(torch.nn.Module):
    """A base classifier that is a fixed table over the lattice {0, 1/(4q), ..., 1}^d,
    where every DSSN noisy input lies: exact and row-wise, whatever the batch.

    Kinds: ``"random"`` (i.i.d. uniform class per lattice cell: a decision boundary
    almost everywhere), ``"linear"`` (argmax of a random affine map with 15 %
    of the cells flipped at random) and ``"mlp"`` (argmax of a random 2-layer tanh MLP).
    """

    def __init__(self, d: int, q: int, kind: str, seed: int, num_classes: int = 3):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.d, self.q, self.r, self.num_classes = d, q, 4 * q + 1, num_classes
        cells = self.r ** d
        grid = torch.from_numpy(np.indices((self.r,) * d).reshape(d, -1).T.astype(np.float64)) / (4 * q)
        if kind == "random":
            table = torch.randint(0, num_classes, (cells,), generator=g)
        elif kind == "linear":
            W = 4 * torch.randn(d, num_classes, generator=g, dtype=torch.float64)
            table = (grid @ W + torch.randn(num_classes, generator=g, dtype=torch.float64)).argmax(1)
            flip = torch.rand(cells, generator=g) < 0.15
            table[flip] = torch.randint(0, num_classes, (int(flip.sum()),), generator=g)
        elif kind == "mlp":
            W1 = 6 * torch.randn(d, 16, generator=g, dtype=torch.float64)
            b1 = 3 * torch.randn(16, generator=g, dtype=torch.float64)
            W2 = torch.randn(16, num_classes, generator=g, dtype=torch.float64)
            table = (torch.tanh(grid @ W1 + b1) @ W2).argmax(1)
        else:
            raise ValueError(kind)
        self.register_buffer("table", table)
        self.eval()

    def classes_of_units(self, Z: torch.Tensor) -> torch.Tensor:
        """Classes of noisy inputs given as integers ``4q x~`` ``[N, d]``."""
        flat = torch.zeros(Z.shape[0], dtype=torch.long)
        for j in range(self.d):
            flat = flat * self.r + Z[:, j]
        return self.table[flat]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        t = z.reshape(z.shape[0], -1).double() * (4 * self.q)
        Z = torch.round(t).long()
        assert bool(((t - Z).abs() < 1e-4).all()), "input off the 1/(4q) lattice"
        assert bool(((Z >= 0) & (Z <= 4 * self.q)).all()), "input outside [0, 1]"
        return torch.nn.functional.one_hot(self.classes_of_units(Z), self.num_classes).double()


def brute_force_grid_radius(counts: np.ndarray) -> np.ndarray:
    """Largest j such that moving j votes from A to any c != A (j to each) keeps A
    (ties to the lowest index); from the vote-moving argument behind the certificate (each changed
    noisy input moves at most one vote), not from its closed form."""
    counts = np.asarray(counts, dtype=np.int64)
    N, C = counts.shape
    a = np.argmax(counts, axis=1)
    n_a = counts[np.arange(N), a]
    K = np.zeros(N, dtype=np.int64)
    alive = np.ones(N, dtype=bool)
    for j in range(1, int(counts.sum(1).max()) + 1):
        ok = alive & (n_a >= j)
        for c in range(C):
            keep = (n_a - j > counts[:, c] + j) | ((n_a - j == counts[:, c] + j) & (a < c)) | (a == c)
            ok &= keep
        K[ok] = j
        alive = ok
    return K


def _exhaustive_dssn_check(d: int, q: int, L: int, kind: str, clf_seed: int, offset_seed: int):
    """Runs the exhaustive check; returns (K, pred, D) for further assertions."""
    sigma = sigma_for_levels(L, q)
    assert dssn_levels(sigma, q) == L
    pts = np.array(list(itertools.product(range(q + 1), repeat=d)), dtype=np.int64)  # every grid point
    X = torch.tensor(pts / q, dtype=torch.float32)
    f = LookupClassifier(d, q, kind, clf_seed)
    v = dssn_offsets(L, d, offset_seed)
    np.testing.assert_array_equal(v.numpy(), np.random.RandomState(offset_seed).randint(L, size=d))

    # exact smoothed votes from the paper's formula (spec_noise_units), all L offsets
    Z = spec_noise_units(pts, v.numpy(), L, q)                              # [N, L, d]
    # the twin of the kernel gives the same noisy inputs (nearest float32 to Z / (4q); on a subset for speed)
    sub = np.arange(len(pts)) if len(pts) <= 100 else np.random.RandomState(L).choice(len(pts), 100, replace=False)
    twin = reference.dssn_batch(X[sub], v, torch.arange(L), L, q)           # [len(sub) * L, d]
    assert torch.equal(twin, torch.from_numpy(Z[sub].reshape(-1, d)).float() / (4 * q))
    cls = f.classes_of_units(torch.from_numpy(Z.reshape(-1, d))).view(len(pts), L)
    counts = torch.nn.functional.one_hot(cls, 3).sum(1).numpy()             # [N, 3]
    assert (counts.sum(1) == L).all()

    # the library: same votes, same prediction, certificate from the votes
    res = SplitSmooth(f, 3, sigma, q=q, seed=offset_seed).certify_batch(X, batch_size=4096)
    assert res.levels == L and res.q == q
    np.testing.assert_array_equal(res.counts.numpy(), counts)
    pred = np.argmax(counts, axis=1)                                        # ties -> lowest index
    np.testing.assert_array_equal(res.prediction.numpy(), pred)
    K = res.grid_radius.numpy()
    np.testing.assert_array_equal(K, brute_force_grid_radius(counts))
    assert (res.radius.numpy() <= K / q).all() and np.allclose(res.radius.numpy(), K / q, rtol=1e-15, atol=0)

    # soundness: every grid point within L1 distance K / q (inclusive) has the same prediction
    D = np.abs(pts[:, None, :] - pts[None, :, :]).sum(-1)                  # integer L1 distances (grid steps)
    violations = (D <= K[:, None]) & (pred[None, :] != pred[:, None])
    assert not violations.any(), (
        f"{int(violations.sum())} certified grid points change prediction, e.g. x={pts[np.argwhere(violations)[0][0]]}")
    return K, pred, D


DSSN_CASES = ([(d, 8, L) for d in (2, 3) for L in (3, 5, 8, 11, 20)]     # L < q, L = q, L > q
              + [(2, 5, L) for L in (1, 2, 4, 5, 9)])                     # odd q, L = 1, L = q


@pytest.mark.parametrize("kind,offset_seed", [("random", 0), ("linear", 0), ("mlp", 0), ("random", 7),
                                              ("mlp", 2 ** 32 - 1)])
@pytest.mark.parametrize("d,q,L", DSSN_CASES)
def test_dssn_exhaustive_soundness(d, q, L, kind, offset_seed):
    """Every grid x, every grid x' with ||x' - x||_1 <= K/q: same smoothed prediction."""
    clf_seed = 1000 * d + 10 * L + q + {"random": 0, "linear": 1, "mlp": 2}[kind]
    K, pred, D = _exhaustive_dssn_check(d, q, L, kind, clf_seed, offset_seed)
    if L >= 3:
        assert (K > 0).any(), "vacuous: no point certified beyond radius 0"
    if d == 3 and kind == "random":
        # the certificate is attained: at some x with K > 0 a grid point at distance
        # K + 1 changes the prediction (so the radius (K + 1) / q would be unsound)
        flips_at_k1 = ((D == K[:, None] + 1) & (pred[None, :] != pred[:, None])).any(1)
        assert (flips_at_k1 & (K > 0)).any(), "the radius K/q is attained nowhere"


@pytest.mark.parametrize("q,Ls", [(8, list(range(1, 21))), (255, [50, 132, 220, 254, 255, 256, 441])])
def test_dssn_offsets_changing_a_coordinate(q, Ls):
    """Corollary 1's proof: for grid X, X' the number of offsets b for which the noisy coordinate
    differs is <= |X - X'|, and equal to it when L >= q (the kernel, d = 1, v = 0).
    Every X against every X' for q = 8; every X against 40 X' for q = 255."""
    X = torch.arange(q + 1, dtype=torch.float32).view(-1, 1) / q
    cols = torch.arange(q + 1) if q < 50 else torch.cat([torch.arange(0, q + 1, 7), torch.tensor([1, 2, 127, 128, q])])
    diff = torch.arange(q + 1).view(-1, 1) - cols.view(1, -1)
    for L in Ls:
        out = ops.dssn_batch(X, torch.zeros(1, dtype=torch.int32), torch.arange(L), L, q).view(q + 1, L)
        changed = (out[:, None, :] != out[cols][None, :, :]).sum(-1)       # [q+1, len(cols)]
        assert (changed <= diff.abs()).all(), L
        if L >= q:
            assert torch.equal(changed, diff.abs()), L
        else:
            assert (changed < diff.abs()).any(), L  # lambda < 1/2: some steps change no offset
        # the kernel's values are exactly the paper's formula (nearest float32 to a multiple of 1/(4q))
        spec = spec_noise_units(np.arange(q + 1).reshape(-1, 1), np.zeros(1, dtype=np.int64), L, q)[..., 0]
        assert torch.equal(out, torch.from_numpy(spec).float() / (4 * q))


# ----------------------------------------------------------------------------- SSN, Monte Carlo


class Threshold(torch.nn.Module):
    """``f(z) = 1[z_1 > t]`` (first element of the flattened input); ties to class 0."""

    def __init__(self, t: float = 0.5):
        super().__init__()
        self.t = t
        self.eval()

    def forward(self, z):
        z1 = z.reshape(z.shape[0], -1)[:, 0].double()
        return torch.stack([self.t - z1, z1 - self.t], 1)


def ssn_value(x, s, lam):
    """Theorem 2, general case (§4.3), in float64: midpoint of the piece of [0, 1] holding x
    between cuts s + 2 lambda n."""
    two = 2 * lam
    m = np.ceil((x - s) / two)
    return 0.5 * (np.minimum(two * m + s, 1.0) + np.maximum(two * (m - 1) + s, 0.0))


def ssn_p1(x: float, lam: float, N: int = 200_000) -> float:
    """P(x~ > 1/2) for s ~ U(0, 2 lambda): midpoint quadrature in s (error ~ 1/N)."""
    s = (np.arange(N) + 0.5) / N * (2 * lam)
    return float((ssn_value(x, s, lam) > 0.5).mean())


def ssn_slack(d: int, sigma: float) -> float:
    """The sampler's discretisation slack subtracted from pA_lower (docs/soundness.md):
    ``stats_l1.ssn_slack``. It must cover at least one 2^-23 lattice point per element, and stay small."""
    slack = float(stats_l1.ssn_slack(d, sigma))
    assert d * 2.0 ** -23 <= slack <= d * 2.0 ** -16
    return slack


def test_ssn_quadrature_oracle_matches_closed_form():
    """The oracle itself: for lambda >= 1/2 (Theorem 2, Eq. 7) P(x~_1 > 1/2) = P(s < x) = x / (2 lambda)."""
    for lam in (0.5, 0.65, 1.3):
        for x in (0.0, 0.1, 0.37, 0.9, 1.0):
            assert ssn_p1(x, lam) == pytest.approx(x / (2 * lam), abs=1e-4)


@pytest.mark.parametrize("sigma", [0.375, 0.1875])  # lambda = 0.65 (>= 1/2) and 0.32 (< 1/2); exact in float32
def test_ssn_montecarlo_certificate(sigma):
    lam = SQRT3 * sigma
    x1 = [0.05, 0.2, 0.35, 0.8, 0.95]
    B, n, n0, alpha = len(x1), 20_000, 64, 0.001
    X = torch.rand(B, 2, 2, generator=torch.Generator().manual_seed(5))
    X[:, 0, 0] = torch.tensor(x1)
    d = 4
    res = SplitSmooth(Threshold(), 2, sigma, deterministic=False, seed=11).certify_batch(
        X, n0=n0, n=n, alpha=alpha, batch_size=20_000)
    assert res.norm == "l1" and res.n == n and res.n0 == n0

    def p_of(cls, x):
        p1 = ssn_p1(x, lam)
        return p1 if cls == 1 else 1.0 - p1

    slack = ssn_slack(d, sigma)
    certified = 0
    for b in range(B):
        x = float(X[b, 0, 0])
        p1 = ssn_p1(x, lam)
        if lam >= 0.5:
            assert p1 == pytest.approx(x / (2 * lam), abs=1e-4)
        pred = int(res.prediction[b])
        assert pred == int(res.selection_counts[b].argmax())  # no abstain: the selection winner
        if abs(p1 - 0.5) > 0.2:
            assert pred == int(p1 > 0.5)
        # (a) the estimate of pA matches the true smoothed probability (binomial error)
        pa = p_of(pred, x)
        k = int(res.count_a[b])
        assert k == int(res.counts[b, pred])
        assert abs(k / n - pa) <= 5 * math.sqrt(pa * (1 - pa) / n) + 2 / n, (x, k / n, pa)
        # (c) radius = 2 lambda (pA_lower - 1/2 - d 2^-21), stepped down; 0 when not positive
        pl = float(sps.beta.ppf(alpha, k, n - k + 1)) if k < n else alpha ** (1.0 / n)
        assert float(res.pa_lower[b]) == pytest.approx(pl, rel=1e-12, abs=0)
        r = 2.0 * (sigma * SQRT3) * ((pl - 0.5) - slack)
        expected = math.nextafter(r, 0.0) if r > 0 else 0.0
        assert float(res.radius[b]) == expected
        assert float(res.radius[b]) == max(0.0, float(stats_l1.l1_radius(pl, sigma, slack=slack)))
        # (b) the true smoothed classifier keeps the prediction within the radius: only x_1
        # matters, so the whole L1 ball is covered by x_1' in [x_1 - R, x_1 + R]
        R = float(res.radius[b])
        if R > 0:
            certified += 1
            for t in np.linspace(-R, R, 41):
                if 0.0 <= x + t <= 1.0:
                    assert p_of(pred, x + t) > 0.5, (x, R, t)
            if lam >= 0.5 and pred == 0:
                # the bound is tight here: p0(x') = 1 - x'/(2 lambda) crosses 1/2 at x' = lambda
                assert x + R < lam
                assert R > 0.9 * (lam - x)
    assert certified >= 3


def test_ssn_sampler_law():
    """Independent SSN samples (the kernel) have Theorem 2's law (Eq. 7) for lambda >= 1/2 and agree
    with the twin; every element gets its own split value."""
    sigma, x = 0.375, 0.3
    lam = SQRT3 * sigma
    X = torch.full((1, 50_000), x)
    z = ops.sample_noise(X, sigma, 2, noise="ssn", seed=3).view(-1).double().numpy()
    twin = reference.sample_noise(X, sigma, 2, noise="ssn", seed=3).view(-1).double().numpy()
    np.testing.assert_allclose(z, twin, rtol=0, atol=1e-6)
    N = z.size
    sd = lambda p: 5 * math.sqrt(p * (1 - p) / N) + 1e-6  # noqa: E731
    p_half = (2 * lam - 1) / (2 * lam)
    assert abs((z == 0.5).mean() - p_half) <= sd(p_half)
    for y in (0.2, 0.3, 0.45, 0.55, 0.6, 0.64):  # CDF: [x, 2y] / 2lam below 1/2, + jump + [0, min(2y-1, x)] above
        F = max(0.0, 2 * y - x) / (2 * lam) if y < 0.5 else (1 - x) / (2 * lam) + p_half + min(2 * y - 1, x) / (2 * lam)
        assert abs((z <= y).mean() - F) <= sd(F), y
    assert ((z < 0.5) & (z < x / 2)).sum() == 0 and (z <= (1 + x) / 2 + 1e-7).all()


# ----------------------------------------------------------------------------- uniform baseline


def test_uniform_certificate_formula_and_conventions():
    sigma, t, n0, n, alpha = 0.25, 0.5, 32, 2000, 0.001
    lam = SQRT3 * sigma
    xs = torch.cat([torch.linspace(0.02, 0.98, 17), torch.tensor([0.49, 0.505])])
    X = torch.stack([xs, torch.full_like(xs, 0.5)], 1)
    res = UniformSmooth(Threshold(t), 2, sigma, seed=1).certify_batch(X, n0, n, alpha, 512)
    res_ab = UniformSmooth(Threshold(t), 2, sigma, seed=1, abstain=True).certify_batch(X, n0, n, alpha, 512)
    assert res.norm == "l1"
    seen_uncertified = seen_certified = 0
    for b in range(len(xs)):
        sel = int(res.selection_counts[b].argmax())
        assert int(res.prediction[b]) == sel              # no abstain by default
        k = int(res.count_a[b])
        assert k == int(res.counts[b, sel])
        pl = float(sps.beta.ppf(alpha, k, n - k + 1)) if 0 < k < n else (0.0 if k == 0 else alpha ** (1 / n))
        assert float(res.pa_lower[b]) == pytest.approx(pl, rel=1e-12, abs=1e-300)
        r = 2 * SQRT3 * sigma * (pl - 0.5)
        if pl <= 0.5:
            seen_uncertified += 1
            assert float(res.radius[b]) == 0.0
            assert int(res_ab.prediction[b]) == UniformSmooth.ABSTAIN and float(res_ab.radius[b]) == 0.0
        else:
            seen_certified += 1
            assert float(res.radius[b]) == math.nextafter(r, 0.0)
            assert int(res_ab.prediction[b]) == sel and float(res_ab.radius[b]) == float(res.radius[b])
        # the statistical check: p1 = P(x + U(-lam, lam) > t) in closed form
        p1 = min(1.0, max(0.0, (float(xs[b]) + lam - t) / (2 * lam)))
        pa = p1 if sel == 1 else 1 - p1
        assert abs(k / n - pa) <= 5 * math.sqrt(pa * (1 - pa) / n) + 2 / n, (float(xs[b]), k / n, pa)
        # soundness: the true p keeps the selected class within the radius (tight: R <= |x - t|)
        R = float(res.radius[b])
        if R > 0:
            assert R < abs(float(xs[b]) - t)
            assert (float(xs[b]) > t) == (sel == 1)
    assert seen_uncertified >= 3 and seen_certified >= 10


def test_uniform_radius_from_scipy_for_many_counts():
    """The radius map on counts over a range of pA (including k = 0 and k = n)."""
    from smoothcert import stats

    n, alpha, sigma = 500, 0.01, 0.3
    k = np.arange(0, n + 1, 7).tolist() + [n]
    pl = np.asarray(stats.clopper_pearson_lower(np.array(k), n, alpha))
    ref = np.array([sps.beta.ppf(alpha, kk, n - kk + 1) if 0 < kk < n else (0.0 if kk == 0 else alpha ** (1 / n))
                    for kk in k])
    np.testing.assert_allclose(pl, ref, rtol=1e-12, atol=0)
    r = stats_l1.l1_radius(pl, sigma)
    raw = 2 * SQRT3 * sigma * (pl - 0.5)
    np.testing.assert_array_equal(r[raw > 0], np.nextafter(raw[raw > 0], 0.0))
    assert (r[raw > 0] < raw[raw > 0]).all()
    np.testing.assert_array_equal(r[raw <= 0], raw[raw <= 0])  # not certified stays <= 0


# ----------------------------------------------------------------------------- Proposition 1


def test_proposition1_correlated_uniform_noise_breaks_lipschitz():
    """Proposition 1 (§4.2.2): eps_2 = eps_1 ~ U(-1/2, 1/2), f = 1[z_1 - z_2 > 0.4]: p(0.8, 0.2) = 1 but
    p(0.6, 0.4) = 0 at L1 distance 0.4 < 2 lambda = 1. The library's independent noise
    gives 0.68 and 0.32 (triangular eps_1 - eps_2): |dp| = 0.36 <= 0.4 / (2 lambda)."""
    sigma = 0.5 / SQRT3
    X = torch.tensor([[0.8, 0.2], [0.6, 0.4]])
    n = 40_000
    z = ops.sample_noise(X, sigma, n, noise="uniform", seed=2).view(2, n, 2).double()
    eps1 = z[..., 0] - X[:, None, 0].double()
    assert float(eps1.abs().max()) <= 0.5 and float(eps1.abs().max()) > 0.499
    # correlated: z_2 = x_2 + eps_1
    corr = (z[..., 0] - (X[:, None, 1].double() + eps1)) > 0.4
    p_corr = corr.double().mean(1)
    assert float(p_corr[0]) == 1.0 and float(p_corr[1]) == 0.0
    dist = float((X[0] - X[1]).abs().sum())
    assert abs(float(p_corr[0] - p_corr[1])) > dist / (2 * SQRT3 * sigma)   # the Lipschitz bound fails
    # independent (the sampler as used by UniformSmooth)
    p_ind = ((z[..., 0] - z[..., 1]) > 0.4).double().mean(1)
    tol = 5 * math.sqrt(0.25 / n)
    assert abs(float(p_ind[0]) - 0.68) < tol and abs(float(p_ind[1]) - 0.32) < tol
    assert abs(float(p_ind[0] - p_ind[1])) <= dist / (2 * SQRT3 * sigma) + 2 * tol
