"""Second-order (SoS) and dipole certificates at population level and from counts:
reference values computed from Theorems 1 and 3 of Levine et al. (Tight Second-Order
Certificates; the paper prints no numeric tables), closed forms, numerical corners,
monotonicity, and soundness against the tight worst-case classifiers."""
import math

import numpy as np
import pytest
from scipy import special

from smoothcert.stats import clopper_pearson_lower, gaussian_radius
from smoothcert.stats import dipole as dp
from smoothcert.stats import second_order as so

PS = np.array([.55, .60, .70, .80, .90, .99])
# computed from Theorem 1, sigma = 1: first order, G_max, SoS at G = 0, .25, .5, .75 G_max, a'(.5 G_max)
TABLE = np.array([
    [.125661, .395805, .480824, .310548, .214211, .159113, .098202],
    [.253347, .386343, .680544, .507555, .388498, .307779, .088495],
    [.524401, .347693, .981804, .821937, .696219, .598018, .067987],
    [.841621, .279962, 1.268034, 1.127460, 1.011838, .916470, .046301],
    [1.281552, .175498, 1.643591, 1.526512, 1.429172, 1.347379, .023638],
    [2.326348, .026652, 2.575829, 2.495351, 2.428915, 2.372874, .002428]])


def test_reference_table():
    gm = so.g_max(PS, 1.0)
    np.testing.assert_allclose(gm, TABLE[:, 1], atol=1e-6)
    np.testing.assert_allclose(so.sos_radius(PS, gm, 1.0), TABLE[:, 0], atol=1e-6)
    for j, f in enumerate([0, .25, .5, .75]):
        np.testing.assert_allclose(so.sos_radius(PS, f * gm, 1.0), TABLE[:, 2 + j], atol=1e-6)
    np.testing.assert_allclose(so.a_prime(PS, .5 * gm, 1.0), TABLE[:, 6], atol=1e-6)


def test_radii_scale_with_sigma():
    gm = so.g_max(PS, 1.0)
    for s in [0.12, 0.5, 3.0, 1e6]:
        np.testing.assert_allclose(so.sos_radius(PS, .5 * gm / s, s), s * TABLE[:, 4], rtol=2e-6)
        np.testing.assert_allclose(dp.dipole_radius(.6, .1, s), s * .755554, rtol=2e-6)


def test_fig_1a_bounds():
    rho = np.array([0, .5, 1, 1.5, 2])
    np.testing.assert_allclose(special.ndtri(so.sos_bound(rho, .8, 0.0, 1.0)),
                               [.8416, .6599, .2523, -.2254, -.7201], atol=1e-4)
    np.testing.assert_allclose(special.ndtri(so.sos_bound(rho, .8, so.g_max(.8, 1.0), 1.0)),
                               [.8416, .3416, -.1584, -.6584, -1.1584], atol=1e-4)


@pytest.mark.parametrize("cs, cn, want", [(.6, 0, .680544), (.6, .1, .755554), (.6, .2, .841621),
                                          (.8, 0, 1.268034), (.8, .1, 1.281552), (.4, .3, .524401),
                                          (0, .8, .841621), (.99, 0, 2.575829)])
def test_dipole_reference_values(cs, cn, want):
    r = dp.dipole_radius(cs, cn, 1.0)
    assert abs(r - want) < 1e-6 and r <= want + 5e-7


@pytest.mark.parametrize("p, frac, want", [(.6, 0, .4955), (.6, .5, .3627), (.8, 0, 1.0674), (.8, .5, .9618),
                                           (.99, 0, 2.3251)])
def test_empirical_fig_4a(p, frac, want):
    """d = 49, N = 1e8, eta = .001, estimates equal to their expectations."""
    N = 10 ** 8
    G = frac * so.g_max(p, 1.0)
    b = so.sos_certify(int(p * N), N, G * G * (N // 2), N // 2, 49, 0.001, 1.0)
    assert abs(float(b["radius"]) - want) < 1e-4
    assert bool(b["vacuous"]) == (p == .99)  # collapses to first order at p = .99


def test_all_correct_counts():
    for N, base, dip in [(10 ** 5, .95286, .94694), (10 ** 6, 1.08669, 1.08144)]:
        assert abs(gaussian_radius(clopper_pearson_lower(N, N, .001), .25) - base) < 1e-5
        b = dp.dipole_certify(N // 2, 0, 0, N // 2, .001, .25)
        assert abs(float(b["radius"]) - dip) < 1e-5


def test_theorem_2_margin_table():
    """t / sigma^4 at sigma = .25, eta_g = 5e-4 (Theorem 2's margin, Eq. 7, evaluated; not a table of the paper)."""
    want = {2: [1.116, .353, .112, .0353], 10: [2.495, .789, .250, .0789], 49: [5.524, 1.747, .552, .1747],
            3072: [43.74, 13.83, 4.374, 1.383], 150528: [306.2, 96.81, 30.62, 9.681]}
    for d, row in want.items():
        got = [so.grad_sq_margin(N // 2, d, 5e-4) / .25 ** 2 for N in [10 ** 5, 10 ** 6, 10 ** 7, 10 ** 8]]
        np.testing.assert_allclose(got, row, rtol=4.5e-3)  # the table has 3-4 significant figures
    # the large-deviation regime: 2 ln(1/eta) > d n
    assert so.grad_sq_margin(1, 1, 1e-3) == pytest.approx(4 * math.sqrt(2) * math.log(1e3))


def test_closed_forms():
    gm = so.g_max(PS, .5)
    first = gaussian_radius(PS, .5)
    np.testing.assert_array_equal(so.sos_radius(PS, gm, .5), first)  # G = G_max: half-space
    np.testing.assert_array_equal(so.sos_radius(PS, 10 * gm, .5), first)  # clipped
    r0 = so.sos_radius(PS, 0.0, 1.0)  # G = 0: Phi(k - t) - Phi(-k - t) = 1/2
    k = special.ndtri((1 + PS) / 2)
    np.testing.assert_allclose(special.ndtr(k - r0) - special.ndtr(-k - r0), .5, atol=1e-10)
    np.testing.assert_allclose(dp.dipole_radius(PS, 0.0, 1.0), r0, atol=1e-9)  # C_N = 0 is SoS at G = 0
    cs = np.array([0, .2, .4, .6])  # C_S + 2 C_N = 1 is the first order at p = C_S + C_N
    np.testing.assert_allclose(dp.dipole_radius(cs, (1 - cs) / 2, 1.0), special.ndtri((1 + cs) / 2), atol=1e-9)


def test_numerical_corners():
    for p in [.5 + 1e-12, .5 + 1e-7]:
        for g in [0.0, .3]:
            r = so.sos_radius(p, g, 1.0)
            assert 0 <= r < 1e-3 or g == 0.0
            assert r >= gaussian_radius(p, 1.0)
    for q in [7.6e-8, 1e-12, 1e-15]:
        p = 1.0 - q
        q = 1.0 - p  # exact
        r0, rg = so.sos_radius(p, 0.0, 1.0), so.sos_radius(p, .5 * so.g_max(p, 1.0), 1.0)
        assert np.isfinite(r0) and -special.ndtri(q / 2) >= r0 >= rg >= -special.ndtri(q) - 1e-15
        assert np.isfinite(dp.dipole_radius(p, 0.0, 1.0))
    assert so.sos_radius(.5, 0.0, 1.0) == 0.0 and so.sos_radius(.3, 0.0, 1.0) == 0.0
    assert dp.dipole_radius(.3, .2, 1.0) == 0.0 and dp.dipole_radius(.2, .1, 1.0) == 0.0
    assert so.a_prime(.8, 0.0, 1.0) <= .1 and so.a_prime(.8, so.g_max(.8, 1.0), 1.0) == 0.0


def test_properties_on_random_inputs():
    rng = np.random.default_rng(0)
    p = rng.uniform(.501, .9999, 400)
    f = rng.uniform(0, 1, 400)
    s = rng.choice([.12, .25, .5, 1.0], 400)
    gm = so.g_max(p, s)
    r = so.sos_radius(p, f * gm, s)
    first = gaussian_radius(p, s)
    assert np.all(r >= first) and np.all(r <= s * special.ndtri((1 + p) / 2))
    assert np.all(so.sos_radius(p, np.minimum(f + .05, 1) * gm, s) <= r)  # decreasing in G
    assert np.all(so.sos_radius(np.minimum(p + 1e-3, .99999), f * gm, s) >= r - 1e-12)  # increasing in p (G fixed)
    cs = rng.uniform(0, 1, 400)
    cn = rng.uniform(0, 1, 400) * (1 - cs) / 2
    rd = dp.dipole_radius(cs, cn, s)
    ok = cs + cn > .5
    assert np.all(rd[ok] >= gaussian_radius(cs[ok] + cn[ok], s[ok]))
    assert np.all(dp.dipole_radius(cs, cn * .9, s) <= rd) and np.all(dp.dipole_radius(cs * .99, cn, s) <= rd)
    rho = rng.uniform(0, 2, 400)
    assert np.all(np.diff(so.sos_bound(np.array([0, .1, .5, 1, 2])[:, None], .8, .1, 1.0), axis=0) < 0)
    assert np.all(dp.dipole_bound(rho, cs, cn, s) <= dp.dipole_bound(rho * .5, cs, cn, s))


def test_never_above_the_exact_radius_of_the_worst_case():
    """The slab f* (Theorem 1's worst case, §3 and Fig. 3b) attains Theorem 1's bound: its smoothed probability at the
    certified radius along the attack is >= 1/2, i.e. the radius is not above the exact one."""
    rng = np.random.default_rng(1)
    p = rng.uniform(.51, .999, 300)
    G = rng.uniform(0, 1, 300) * so.g_max(p, 1.0)
    r = so.sos_radius(p, G, 1.0)
    # the exact a' by a tight bracket (brentq), not the conservative one
    from scipy.optimize import brentq
    for pi, gi, ri in zip(p, G, r):
        h = lambda a: so._phi_ndtri(a) - so._phi_ndtri(1 - pi - a) + gi  # noqa: E731
        a = 0.0 if h(1e-300) >= 0 else brentq(h, 1e-300, (1 - pi) / 2, xtol=1e-300, rtol=1e-15)
        u, v = (special.ndtri(a) if a > 0 else -np.inf), special.ndtri(a + pi)
        assert special.ndtr(v - ri) - special.ndtr(u - ri) >= .5 - 1e-9
    # dipole: the worst case is (-inf, Phi^-1(C_N)] U [-k, k]
    cs = rng.uniform(0, 1, 300)
    cn = rng.uniform(0, 1, 300) * (1 - cs) / 2
    rd = dp.dipole_radius(cs, cn, 1.0)
    k = special.ndtri((1 + cs) / 2)
    with np.errstate(divide="ignore"):
        val = special.ndtr(special.ndtri(cn) - rd) + special.ndtr(k - rd) - special.ndtr(-k - rd)
    assert np.all(val[rd > 0] >= .5 - 1e-9)


def test_certify_from_counts_uses_alpha_halves_and_an_upper_gradient_bound():
    b = so.sos_certify(900_000, 10 ** 6, 0.0, 500_000, 2, .01, 1.0)
    assert float(b["pa_lower"]) == pytest.approx(clopper_pearson_lower(900_000, 10 ** 6, .005))
    assert float(b["grad_sq_margin"]) == pytest.approx(4 * math.sqrt(2 * math.log(200) / 500_000))
    assert not b["vacuous"] and float(b["grad_upper"]) ** 2 >= float(b["grad_sq_margin"])  # added, not subtracted
    small = so.sos_certify(900, 1000, 0.0, 500, 2, .01, 1.0)  # margin beyond G_max: the first-order radius
    assert small["vacuous"] and float(small["radius"]) == gaussian_radius(float(small["pa_lower"]), 1.0)
    neg = so.sos_certify(900, 1000, -1e9, 500, 2, .01, 1.0)  # a negative estimate clips at 0
    assert float(neg["grad_upper"]) == 0.0 and float(neg["radius"]) <= so.sos_radius(float(neg["pa_lower"]), 0, 1)
    d = dp.dipole_certify(400, 50, 80, 500, .01, 1.0)
    assert float(d["cs_lower"]) == pytest.approx(clopper_pearson_lower(400, 500, .005))
    assert float(d["cn_lower"]) == pytest.approx(clopper_pearson_lower(50, 500, .005))
    sym = dp.dipole_certify(400, 50, 80, 500, .01, 1.0, symmetric=True)
    assert float(sym["cn_lower"]) == pytest.approx(clopper_pearson_lower(80, 500, .005) / 2)


@pytest.mark.parametrize("call, msg", [
    (lambda: so.sos_radius(1.2, 0.0, 1.0), "p must lie"),
    (lambda: so.sos_radius(.8, -1.0, 1.0), "G must be >= 0"),
    (lambda: so.sos_radius(.8, float("nan"), 1.0), "G must be >= 0"),
    (lambda: so.sos_radius(.8, 0.0, 0.0), "sigma must be finite and > 0"),
    (lambda: so.sos_radius(.8, 0.0, float("inf")), "sigma must be finite and > 0"),
    (lambda: dp.dipole_radius(.8, -.1, 1.0), "C_N must lie"),
    (lambda: dp.dipole_certify(10, 5, 3, 12, .01, 1.0), "inconsistent"),
    (lambda: so.grad_sq_margin(0, 10, .01), "n_pairs"),
])
def test_bad_inputs(call, msg):
    with pytest.raises(ValueError, match=msg):
        call()


def test_upper_bound_and_multiclass_certificate():
    # 1 - f has the same gradient norm: U(rho) for p_c is 1 - L(rho) of 1 - p_c
    assert so.sos_upper_bound(.3, .2, .1, 1.0) == pytest.approx(1 - so.sos_bound(.3, .8, .1, 1.0))
    assert so.sos_upper_bound(0.0, .2, .1, 1.0) == pytest.approx(.2)
    # with every other class's mass in one runner-up (p_b = 1 - p_a) the multi-class radius is
    # the binary one; spreading it over classes can only help
    p, G = .8, .1
    binary = so.sos_radius(p, G, 1.0)
    one = so.sos_multiclass_radius(p, G, [1 - p], [G], 1.0)
    assert abs(one - binary) < 1e-9
    spread = so.sos_multiclass_radius(p, G, [.05] * 4, [G] * 4, 1.0)
    assert spread > binary
    # a class with a large gradient but small mass still counts: the max runs over all classes
    assert so.sos_multiclass_radius(p, G, [.1, .05], [0.0, so.g_max(.05, 1.0)], 1.0) <= \
        so.sos_multiclass_radius(p, G, [.1], [0.0], 1.0)
    assert so.sos_multiclass_radius(.5, 0.0, [.5], [0.0], 1.0) == 0.0
