"""The memory-based certificate: the closed forms of cases A and B, duplicates and
abstentions, the disjointness invariant after any sequence of queries, order
semantics (one batch == one at a time), and save/load/resume."""
import math
import random

import pytest
import torch

from smoothcert.certify import Memory
from smoothcert.ops import reference
from helpers import gen


def pts(*xs, d=3):
    out = torch.zeros(len(xs), d)
    out[:, 0] = torch.tensor(xs, dtype=torch.float32)
    return out


def q(mem, X, classes, radii, ids=None):
    ids = torch.arange(len(classes)) + 100 * len(mem) if ids is None else torch.as_tensor(ids)
    return mem.query(X, torch.tensor(classes), torch.tensor(radii, dtype=torch.float64), ids)


def test_unchanged_when_balls_are_apart():
    mem = Memory((3,))
    r = q(mem, pts(0.0, 10.0), [0, 1], [2.0, 3.0])
    assert r.case == ["none", "none"] and r.radius.tolist() == [2.0, 3.0] and len(mem) == 2


def test_case_b_shrinks_to_the_gap_minus_tau():
    mem = Memory((3,), tol=1e-6)
    q(mem, pts(0.0), [0], [2.0])
    r = q(mem, pts(5.0), [1], [4.0], ids=[7])  # gap to ball 0: 5 - 2 = 3 < 4
    assert r.case == ["B"] and int(r.partner[0]) == 0
    assert 3.0 - 2e-6 < float(r.radius[0]) < 3.0 - 1e-6 + 1e-12
    mem.check_invariant()


def test_case_a_takes_the_stored_class_and_the_inner_radius():
    mem = Memory((3,))
    q(mem, pts(0.0), [0], [2.0], ids=[5])
    r = q(mem, pts(0.5), [1], [3.0])  # inside ball 0: min(3, 2 - 0.5) = 1.5
    assert r.case == ["A"] and int(r.prediction[0]) == 0 and int(r.partner[0]) == 5
    assert 1.5 - 2e-6 < float(r.radius[0]) < 1.5
    small = q(mem, pts(-0.5), [1], [0.25])  # min(R, ...) keeps the smaller own radius
    assert small.case == ["A"] and float(small.radius[0]) < 0.25 and int(small.prediction[0]) == 0
    listing = Memory((3,), case_a="listing")
    q(listing, pts(0.0), [0], [2.0])
    r = q(listing, pts(-0.5), [1], [0.25])  # the listing's R_i - D ignores the own radius
    assert 1.5 - 2e-6 < float(r.radius[0]) < 1.5
    mem.check_invariant(), listing.check_invariant()


def test_abstentions_are_captured_inside_balls_and_never_stored_otherwise():
    mem = Memory((3,))
    q(mem, pts(0.0), [2], [1.0])
    r = q(mem, pts(0.5, 50.0), [-1, -1], [0.0, 0.0])
    assert r.case == ["A", "abstain"] and r.prediction.tolist() == [2, -1] and r.radius.tolist()[1] == 0.0
    assert len(mem) == 2  # the captured one (radius ~0.5) is stored, the other not


def test_duplicates_return_the_stored_answer_and_are_not_stored():
    mem = Memory((3,))
    q(mem, pts(1.0), [3], [0.75], ids=[11])
    r = q(mem, pts(1.0, 1.0), [4, -1], [5.0, 0.0])
    assert r.case == ["duplicate", "duplicate"] and r.prediction.tolist() == [3, 3]
    assert r.radius.tolist() == [0.75, 0.75] and r.partner.tolist() == [11, 11] and len(mem) == 1


def test_points_exactly_on_a_boundary_are_resolved_conservatively():
    # D == R_i exactly (open ball: outside), yet within tau: treated as case A with radius 0.
    mem = Memory((3,))
    q(mem, pts(0.0), [0], [2.0])
    r = q(mem, pts(2.0), [1], [1.0])
    assert r.case == ["A"] and float(r.radius[0]) == 0.0
    # Touching from outside with the own radius: D = R + R_i exactly -> case B, radius R - tau.
    r = q(mem, pts(-5.0), [1], [3.0])
    assert r.case == ["B"] and float(r.radius[0]) < 3.0
    mem.check_invariant()


def random_run(seed, d=2, n=60, batches=True, mem=None, norm="l2"):
    g = gen(seed)
    rnd = random.Random(seed)
    X = torch.randn(n, d, generator=g) * 2
    X[5:10] = X[0:5]  # some duplicates
    classes = torch.randint(-1, 3, (n,), generator=g)
    radii = torch.rand(n, generator=g, dtype=torch.float64) * 3
    radii[classes < 0] = 0.0
    mem = mem or Memory((d,), norm=norm)
    out = []
    i = 0
    while i < n:
        k = rnd.randint(1, 7) if batches else 1
        res = mem.query(X[i:i + k], classes[i:i + k], radii[i:i + k], torch.arange(i, min(n, i + k)))
        out += list(zip(res.prediction.tolist(), res.radius.tolist(), res.case, res.partner.tolist()))
        i += k
    return mem, out


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("norm", ["l2", "l1"])
def test_invariant_holds_after_any_sequence_and_batching_is_sequential(seed, norm):
    mem, batched = random_run(seed, norm=norm)
    mem.check_invariant()
    _, single = random_run(seed, batches=False, norm=norm)
    assert batched == single
    cases = {c for _, _, c, _ in batched}
    assert {"A", "B", "duplicate"} <= cases  # the scenario really exercises the memory


def test_invariant_in_closed_form_for_every_stored_pair():
    mem, _ = random_run(3, d=4, n=80)
    x, c, r = mem.x, mem.classes, mem.radii
    d = reference.exact_distances(x.repeat_interleave(len(mem), 0), x.repeat(len(mem), 1)).view(len(mem), -1)
    for i in range(len(mem)):
        for j in range(i):
            if c[i] != c[j]:
                assert float(d[i, j]) >= float(r[i]) + float(r[j])


def test_later_queries_inside_a_stored_ball_get_its_class():
    g = gen(1)
    mem = Memory((3,))
    q(mem, pts(0.0, 20.0), [0, 1], [4.0, 4.0])
    for _ in range(30):
        center = [0.0, 20.0][int(torch.randint(0, 2, (1,), generator=g))]
        x = pts(center) + (torch.rand(1, 3, generator=g) - 0.5) * 3  # within 2.6 < 4
        r = q(mem, x, [int(torch.randint(0, 5, (1,), generator=g))], [float(torch.rand(1, generator=g)) * 10])
        assert int(r.prediction[0]) == (0 if center == 0.0 else 1)
    mem.check_invariant()


def test_save_load_and_continue_equals_uninterrupted(tmp_path):
    full, out_full = random_run(7, n=50)
    # Interrupted after the first 20 queries (first batches of the same sizes), saved and reloaded.
    rnd = random.Random(7)
    g = gen(7)
    X = torch.randn(50, 2, generator=g) * 2
    X[5:10] = X[0:5]
    classes = torch.randint(-1, 3, (50,), generator=g)
    radii = torch.rand(50, generator=g, dtype=torch.float64) * 3
    radii[classes < 0] = 0.0
    mem, out, i, path = Memory((2,)), [], 0, str(tmp_path / "memory.pt")
    while i < 50:
        k = rnd.randint(1, 7)
        res = mem.query(X[i:i + k], classes[i:i + k], radii[i:i + k], torch.arange(i, min(50, i + k)))
        out += list(zip(res.prediction.tolist(), res.radius.tolist(), res.case, res.partner.tolist()))
        i += k
        if i >= 20 and not (tmp_path / "memory.pt").exists():
            mem.save(path)
            mem = Memory.load(path)
    assert out == out_full
    assert torch.equal(mem.x, full.x) and torch.equal(mem.radii, full.radii) and mem.counts == full.counts


def test_bad_queries_are_refused(tmp_path):
    mem = Memory((3,))
    with pytest.raises(ValueError, match="shape"):
        q(mem, torch.zeros(1, 4), [0], [1.0])
    with pytest.raises(ValueError, match="finite and >= 0"):
        q(mem, pts(0.0), [0], [-1.0])
    with pytest.raises(ValueError, match="NaN"):
        q(mem, pts(math.nan), [0], [1.0])
    with pytest.raises(ValueError, match="tolerance"):
        Memory((3,), tol=0.0)
    bad = tmp_path / "x.pt"
    torch.save({"format": "other"}, bad)
    with pytest.raises(ValueError, match="not a smoothcert memory"):
        Memory.load(str(bad))


def test_the_invariant_check_catches_overlapping_balls():
    mem = Memory((3,))
    mem.insert(pts(0.0)[0], 0, 2.0, 0)
    mem.insert(pts(3.0)[0], 1, 1.5, 1)  # 3 < 2 + 1.5
    with pytest.raises(AssertionError, match="overlap"):
        mem.check_invariant()
    # Same class may overlap.
    ok = Memory((3,))
    ok.insert(pts(0.0)[0], 0, 2.0, 0)
    ok.insert(pts(1.0)[0], 0, 2.0, 1)
    ok.check_invariant()
