"""Sample-wise smoothing (Wang et al., §4.2, Eqs. 5 and 7): the grid, the selection rules against a per-sigma
brute force, and ``smoothcert certify --sigma-mode samplewise`` end to end (greedy
and LP regions, labels never used, resume, a shared stage file, bad input)."""
import json
import os

import numpy as np
import pytest
import torch
from scipy import special

from smoothcert import cli, data, models, ops, stats
from smoothcert.analysis import load_results, summarize
from smoothcert.certify import SampleWiseSmooth, Smooth
from smoothcert.certify import regions as rg
from smoothcert.sigma.samplewise import check_grid_values, select_sigma, sigma_grid


def test_grid_is_literal_multiples_of_the_step():
    assert sigma_grid(0.12, 0.25).tolist() == [0.15, 0.2, 0.25]
    assert len(sigma_grid(0.12, 0.5)) == 8 and len(sigma_grid(0.12, 1.0)) == 18
    assert sigma_grid(0.12, 0.25, include_min=True).tolist() == [0.12, 0.15, 0.2, 0.25]
    assert sigma_grid(0.1, 0.2, include_min=True).tolist() == [0.1, 0.15, 0.2]


@pytest.mark.parametrize("bad", [(0.0, 0.5), (-1, 0.5), (0.5, 0.2), (0.01, 0.04), (float("nan"), 1.0)])
def test_bad_grid_ranges(bad):
    with pytest.raises(ValueError, match="sigma|grid|multiple"):
        sigma_grid(*bad)


@pytest.mark.parametrize("bad", [[], [0.1, 0.0], [0.2, -0.1], [0.1, float("inf")], [0.1, 0.1]])
def test_bad_grid_values(bad):
    with pytest.raises(ValueError, match="grid"):
        check_grid_values(bad)


@pytest.fixture(scope="module")
def digits_model(digits_checkpoint):
    model, _ = models.load_checkpoint(digits_checkpoint)
    return model.eval()


def test_selection_matches_a_per_sigma_brute_force(digits_model):
    split = data.load_dataset("digits", "test")
    X, ids = split.x[:12].float(), torch.arange(12)
    grid = sigma_grid(0.1, 0.6)
    base = Smooth(digits_model, 10, 0.25, seed=3)
    sel = select_sigma(base.sampler(ops.SAMPLEWISE_STREAM, 500), X, ids, grid, 64, 0.001)
    for t, s in enumerate(grid.tolist()):
        # The copies at sigma s are the ones a fixed-sigma count on the selection stream draws.
        counts = base.sampler(ops.SAMPLEWISE_STREAM, 200).draw(X, ids, torch.full((12, 1), s), 64)
        top = counts.argmax(1)
        k = counts.gather(1, top.view(-1, 1)).view(-1).numpy()
        p = np.asarray(stats.clopper_pearson_lower(k, 64, 0.001))
        assert np.array_equal(sel.top[:, t].numpy(), top.numpy())
        assert np.array_equal(sel.score[:, t].numpy(), s * special.ndtri(p))
        assert np.array_equal(sel.radius[:, t].numpy(), np.where(p > 0.5, stats.gaussian_radius(np.maximum(p, .5), s),
                                                                  0.0))
    for b in range(12):
        key = [(sel.radius[b, t].item(), sel.score[b, t].item(), -t) for t in range(len(grid))]
        assert int(sel.choice[b]) == max(range(len(grid)), key=lambda t: key[t])
        assert sel.best[b] == sel.radius[b].max()


def test_training_rule_uses_the_label_and_falls_back_to_the_smallest_sigma(digits_model):
    split = data.load_dataset("digits", "test")
    X, ids = split.x[:16].float(), torch.arange(16)
    grid = sigma_grid(0.1, 0.6)
    base = Smooth(digits_model, 10, 0.25, seed=3)
    wrong = (split.y[:16] + 1) % 10
    sel = select_sigma(base.sampler(ops.TRAIN_SAMPLEWISE_STREAM, 500), X, ids, grid, 64, 0.001, labels=wrong)
    assert bool((sel.top == wrong.view(-1, 1)).all())
    # A wrong label is never the top class of a confident model: R * h = 0, smallest sigma.
    zero = sel.radius.sum(1) == 0
    assert zero.sum() >= 12 and bool((sel.choice[zero] == 0).all())
    right = select_sigma(base.sampler(ops.TRAIN_SAMPLEWISE_STREAM, 500), X, ids, grid, 64, 0.001, labels=split.y[:16])
    assert (right.radius.sum(1) > 0).sum() >= 12


def certify(ckpt, out, *extra, n="400", maximum="60"):
    argv = ["certify", "--model", ckpt, "--dataset", "digits", "--sigma", "0.25", "--sigma-mode", "samplewise",
            "--sigma-min", "0.1", "--sigma-max", "0.6", "--select-samples", "64", "--n0", "32", "--n", n,
            "--batch", "500", "--max", maximum, "--out", out, "--no-progress", *extra]
    return cli.main(argv)


def test_cli_greedy_end_to_end(digits_checkpoint, tmp_path):
    out = str(tmp_path / "g.tsv")
    assert certify(digits_checkpoint, out) == 0
    d = load_results(out)
    assert len(d["idx"]) == 60 and set(d["certificate"]) == {"transductive-greedy"}
    assert set(d["fixed_certificate"]) == {"fixed-sigma"}
    side = json.load(open(out + ".json"))
    s = side["summary"]
    assert s["order"] == "ascending" and s["points"] == 60
    assert s["capped"] == int(d["capped"].astype(int).sum()) and s["inherited"] == int(d["inherited"].astype(int).sum())
    assert side["config"]["grid"] == sigma_grid(0.1, 0.6).tolist()
    # Ranks follow ascending selection-graph degree, ties by index.
    deg, rank = d["degree"].astype(int), d["rank"].astype(int)
    assert np.array_equal(np.argsort(rank), rg.allocation_order(deg, "ascending"))
    # Radii are never above the point's own certificate, abstentions carry 0.
    assert np.all(d["radius"] <= np.where(d["inherited"].astype(int) == 1, np.inf, d["own_radius"]))
    assert np.all(d["radius"][d["predict"] < 0] == 0)
    views = [v for v in summarize([out])]
    assert {v["certificate"] for v in views} == {"transductive-greedy", "fixed-sigma"}
    png = str(tmp_path / "p.png")
    assert cli.main(["analyze", out, "--plot", png]) == 0 and os.path.getsize(png) > 0
    side_png = str(tmp_path / "regions.png")
    assert cli.main(["analyze", out, out, "--labels", "a", "b", "--regions-plot", side_png]) == 0
    assert os.path.getsize(side_png) > 0


def test_radius_fractions_are_strict_at_zero():
    from smoothcert.analysis.regions import radius_fractions

    assert radius_fractions(np.array([0.0, 0.0, 0.5, 1.0]), np.array([0.0, 0.5, 1.0, 2.0])).tolist() == \
        [0.5, 0.5, 0.25, 0.0]


def test_labels_never_enter_allocation(digits_checkpoint, tmp_path, monkeypatch):
    out1, out2 = str(tmp_path / "a.tsv"), str(tmp_path / "b.tsv")
    assert certify(digits_checkpoint, out1, "--regions", "lp") == 0
    real = data.load_dataset

    def shuffled(name, split, root=None):
        s = real(name, split, root=root)
        return data.Split(s.x, s.y.flip(0), s.num_classes, s.name)

    monkeypatch.setattr(data, "load_dataset", shuffled)
    assert certify(digits_checkpoint, out2, "--regions", "lp") == 0
    a, b = load_results(out1), load_results(out2)
    for col in ("predict", "radius", "region", "region_case", "sigma_used", "capped"):
        assert np.array_equal(a[col], b[col]), col
    assert not np.array_equal(a["label"], b["label"])


def test_resume_and_shared_stage(digits_checkpoint, tmp_path):
    out = str(tmp_path / "g.tsv")
    assert certify(digits_checkpoint, out) == 0
    whole = open(out).read().splitlines()
    stage = out + ".stage.tsv"
    lines = open(stage).read().splitlines(True)
    with open(stage, "w") as f:  # interrupted mid-row after 25 inputs
        f.writelines(lines[:26])
        f.write(lines[26][:20])
    os.remove(out)
    assert certify(digits_checkpoint, out) == 0
    again = open(out).read().splitlines()
    strip = lambda rows: [r.split("\t")[:5] + r.split("\t")[6:] for r in rows]  # noqa: E731 (time differs)
    assert strip(again) == strip(whole)
    # An LP run on the same stage file does no per-input work again.
    lp = str(tmp_path / "l.tsv")
    before = os.path.getmtime(stage)
    assert certify(digits_checkpoint, lp, "--regions", "lp", "--stage", stage) == 0
    assert os.path.getmtime(stage) == before
    assert set(load_results(lp)["certificate"]) == {"transductive-lp"}


def test_descending_and_index_orders(digits_checkpoint, tmp_path):
    for order in ("descending", "index"):
        out = str(tmp_path / f"{order}.tsv")
        assert certify(digits_checkpoint, out, "--region-order", order) == 0
        d = load_results(out)
        assert np.array_equal(np.argsort(d["rank"].astype(int)), rg.allocation_order(d["degree"].astype(int), order))


def test_cli_bad_input(digits_checkpoint, tmp_path, capsys):
    out = str(tmp_path / "x.tsv")
    base = ["certify", "--model", digits_checkpoint, "--dataset", "digits", "--n", "100", "--max", "5",
            "--out", out, "--no-progress"]
    cases = [
        (["--sigma-mode", "samplewise", "--sigma-min", "0.1", "--sigma-max", "0.5"], "needs --sigma"),
        (["--sigma", "0.25", "--sigma-mode", "samplewise"], "sigma grid"),
        (["--sigma", "0.25", "--sigma-mode", "samplewise", "--sigma-grid", "0.2", "-0.1"], "finite and > 0"),
        (["--sigma", "0.25", "--sigma-mode", "samplewise", "--sigma-min", "0.5", "--sigma-max", "0.2"], "below"),
        (["--sigma", "0.25", "--sigma-mode", "samplewise", "--sigma-min", "0.1"], "go together"),
        (["--sigma", "0.25", "--regions", "lp"], "--sigma-mode samplewise"),
        (["--sigma", "0.25", "--stage", out + ".s"], "transductive"),
        (["--sigma", "0.25", "--sigma-mode", "samplewise", "--sigma-min", "0.1", "--sigma-max", "0.5",
          "--region-order", "descending", "--regions", "lp"], "applies to --regions greedy"),
    ]
    for extra, msg in cases:
        assert cli.main(base + extra) == 2, extra
        assert msg in capsys.readouterr().err, extra


def test_stage_file_of_another_set_is_refused(digits_checkpoint, tmp_path, capsys):
    out = str(tmp_path / "g.tsv")
    assert certify(digits_checkpoint, out, maximum="30") == 0
    other = str(tmp_path / "h.tsv")
    # Same settings except the set of inputs: the stage rows belong to another set.
    assert certify(digits_checkpoint, other, "--stage", out + ".stage.tsv", maximum="20") == 2
    assert "different configuration" in capsys.readouterr().err
