"""Fitting a per-element sigma (Tecot et al., §4.2-§4.3 and Algorithm 1): the surrogate and its gradient through the
fused sampler, the mask, the parametrisations, a fit that finds the ignored features,
the resumable sweep, sigma files, sensitivity maps, the blanket filter and the CLI."""
import json
import math
import os

import numpy as np
import pytest
import torch

from smoothcert import cli, ops
from smoothcert.analysis.sigma_maps import border_centre_ratio, normalized_map, save_sigma_map
from smoothcert.analysis.volume import blanket_filter, certified_accuracy_at_volume
from smoothcert.ops import reference
from smoothcert.sigma import FitConfig, SigmaParameter, load_sigma, save_sigma, surrogate
from smoothcert.sigma.fit import fit_sub_epoch
from smoothcert.drivers.fit_sigma import fit_sigma_sweep

from helpers import gen


class _Net(torch.nn.Module):
    """3-class linear model reading only the first ``k`` features."""

    def __init__(self, d=12, k=4, seed=0):
        super().__init__()
        w = torch.randn(3, d, generator=gen(seed)) * 3
        w[:, k:] = 0
        self.lin = torch.nn.Linear(d, 3)
        with torch.no_grad():
            self.lin.weight.copy_(w)
            self.lin.bias.zero_()

    def forward(self, x):
        return self.lin(x.flatten(1))


def _labelled(net, n, d=12, seed=1):  # [n, 1, 3, d / 3] inputs labelled by net
    x = torch.rand(n, 1, 3, d // 3, generator=gen(seed))
    return x, net(x).argmax(1)


def test_surrogate_gradient_matches_plain_torch():
    """The loss and d loss / d p through the fused op equal a float64 autograd computation with the
    same (regenerated) noise."""
    net = _Net()
    x, y = _labelled(net, 6)
    ids = torch.arange(6) + 10
    cfg = FitConfig(c0=0.3, units="pixel")
    param = SigmaParameter(x.shape[1:], cfg)
    with torch.no_grad():
        param.p.mul_(torch.rand(param.p.shape, generator=gen(2)) + 0.5)
    out = surrogate(net, x, y, ids, param(), 16, seed=4, sample_start=32)
    (g,) = torch.autograd.grad(out.loss, [param.p])

    p64 = param.p.detach().double().requires_grad_()
    sig = p64.abs()
    z = reference.sample_noise(torch.zeros_like(x), 1.0, 16, ids=ids, sample_start=32, seed=4,
                               stream=ops.FIT_SIGMA_STREAM).double().view(6, 16, -1)
    noisy = x.double().view(6, 1, -1) + sig.view(1, 1, -1) * z
    logits = noisy.view(96, -1) @ net.lin.weight.double().T + net.lin.bias.double()
    p_hat = torch.softmax(logits, 1).view(6, 16, 3).gather(2, y.view(6, 1, 1).expand(6, 16, 1)).squeeze(2).mean(1)
    votes = torch.nn.functional.one_hot(logits.argmax(1).view(6, 16), 3).sum(1)
    mask = (votes.argmax(1) == y) & (p_hat >= 0.5)
    assert torch.equal(mask, out.mask) and bool(mask.any())
    o = torch.log(sig + 1e-9).sum() + sig.numel() * torch.log(torch.special.ndtri(p_hat.clamp(1e-7, 1 - 1e-7))
                                                              .clamp_min(0) + 1e-9)
    loss = -(o * mask).sum() / mask.sum()
    (g64,) = torch.autograd.grad(loss, [p64])
    torch.testing.assert_close(out.loss.double(), loss, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(g.double(), g64, rtol=1e-3, atol=1e-3)


def test_no_qualifying_input_skips_the_step():
    net = _Net()
    x, y = _labelled(net, 8)
    out = surrogate(net, x, (y + 1) % 3, torch.arange(8), torch.full(x.shape[1:], 0.01), 4, seed=0, sample_start=0)
    assert out.loss is None and not out.mask.any()
    cfg = FitConfig(c0=0.01, batch_size=8, samples=4, units="pixel")
    param = SigmaParameter(x.shape[1:], cfg)
    opt = torch.optim.Adam(param.parameters(), lr=cfg.lr)
    before = param.p.detach().clone()
    st = fit_sub_epoch(net, param, opt, x, (y + 1) % 3, torch.arange(8), cfg, 0)
    assert st["steps"] == 0 and st["skipped"] == 1 and torch.equal(param.p.detach(), before)


def test_parametrisations_and_units():
    abs_ = SigmaParameter((3, 2, 2), FitConfig(c0=0.5, param="abs", units="standardized"), scale=[0.1, 0.2, 0.4])
    torch.testing.assert_close(abs_()[:, 0, 0], torch.tensor([0.05, 0.1, 0.2]))
    with torch.no_grad():
        abs_.p[0, 0, 0] = -0.5  # a negative parameter gives the same sigma under "abs"
        abs_.p[0, 0, 1] = 0.0  # and is floored away from 0
    assert abs_()[0, 0, 0] == abs_()[0, 1, 0] and abs_()[0, 0, 1] > 0
    log_ = SigmaParameter((1, 2, 2), FitConfig(c0=0.5, param="log", units="pixel"))
    torch.testing.assert_close(log_(), torch.full((1, 2, 2), 0.5))
    with pytest.raises(ValueError, match="one std per channel"):
        SigmaParameter((3, 2, 2), FitConfig(c0=0.5, units="standardized"), scale=[0.3])
    for bad in (dict(c0=0.0), dict(c0=float("nan")), dict(c0=1, param="exp"), dict(c0=1, samples=0),
                dict(c0=1, units="std")):
        with pytest.raises(ValueError):
            FitConfig(**bad)


@pytest.mark.parametrize("param", ["abs", "log"])
def test_fit_grows_sigma_on_ignored_features(param):
    """The classifier reads 4 of 12 features: the fitted sigma grows on the 8 it ignores (nothing
    penalises them) and stays small on the ones it reads -- the sensitivity map."""
    net = _Net()
    x, y = _labelled(net, 256)
    cfg = FitConfig(c0=0.2, lr=0.02 if param == "abs" else 0.05, batch_size=64, samples=16, param=param,
                    units="pixel")
    param_ = SigmaParameter(x.shape[1:], cfg)
    opt = torch.optim.Adam(param_.parameters(), lr=cfg.lr)
    for e in range(3):
        st = fit_sub_epoch(net, param_, opt, x, y, torch.arange(256), cfg, e)
        assert st["steps"] > 0 and 0 < st["qualifying"] <= 1
    s = param_().detach().view(-1)
    assert s[4:].min() > s[:4].max()
    assert s[4:].mean() > 0.3


def _sweep(tmp_path, net, x, y, c0s=(0.1, 0.2), **kw):
    cfg = FitConfig(c0=c0s[0], lr=0.02, batch_size=32, samples=8, sub_epochs=2, units="pixel", seed=3)
    return fit_sigma_sweep(net, x, y, c0s=list(c0s), base=cfg, out_dir=str(tmp_path), scale=None, num_classes=3,
                           meta={"dataset": "toy"}, val_count=40, eval_budget=(16, 128, 0.01, 512),
                           progress=False, **kw)


def test_sweep_record_files_and_resume(tmp_path, monkeypatch):
    net = _Net()
    x, y = _labelled(net, 200)
    full = _sweep(tmp_path / "a", net, x, y)
    assert [(r["c0"], r["sub_epoch"]) for r in full] == [(0.1, 0), (0.1, 1), (0.1, 2), (0.2, 0), (0.2, 1), (0.2, 2)]
    assert full[0]["sigma_min"] == full[0]["sigma_max"] and full[2]["sigma_min"] < full[2]["sigma_max"]
    for c0 in ("0.1", "0.2"):
        s, meta = load_sigma(str(tmp_path / "a" / f"c0_{c0}" / "sigma.pt"))
        assert s.shape == x.shape[1:] and meta["fit"]["split"] == "train"
        assert meta["fit"]["val_indices"] == [160, 200] and meta["fit"]["fit_indices"] == [0, 160]
        assert not os.path.exists(tmp_path / "a" / f"c0_{c0}" / "sigma_e2.png")  # 3x4: no map
    # interrupted in the second c0's first pass, then rerun: the same record and sigma
    import smoothcert.drivers.fit_sigma as sweep

    real, calls = sweep.fit_sub_epoch, []

    def dying(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(sweep, "fit_sub_epoch", dying)
    with pytest.raises(KeyboardInterrupt):
        _sweep(tmp_path / "b", net, x, y)
    monkeypatch.setattr(sweep, "fit_sub_epoch", real)
    resumed = _sweep(tmp_path / "b", net, x, y)
    strip = lambda rec: [{k: v for k, v in r.items() if "seconds" not in k} for r in rec]  # noqa: E731
    assert json.dumps(strip(resumed)) == json.dumps(strip(full))  # (NaN != NaN in a dict compare)
    for c0 in ("0.1", "0.2"):
        a = load_sigma(str(tmp_path / "a" / f"c0_{c0}" / "sigma.pt"))[0]
        b = load_sigma(str(tmp_path / "b" / f"c0_{c0}" / "sigma.pt"))[0]
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="other settings"):
        _sweep(tmp_path / "b", net, x, y, c0s=(0.1, 0.3))


def test_sweep_stops_at_chance():
    net = _Net()
    x, y = _labelled(net, 120)
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        rec = _sweep(d, net, x, y, c0s=(0.05, 50.0, 60.0), stop_accuracy=0.5)
    assert sorted({r["c0"] for r in rec}) == [0.05, 50.0]


def test_sigma_file_roundtrip_and_errors(tmp_path):
    p = str(tmp_path / "s.pt")
    save_sigma(p, torch.full((1, 2, 2), 0.3), {"c0": 0.3})
    s, meta = load_sigma(p)
    assert torch.equal(s, torch.full((1, 2, 2), 0.3)) and meta == {"c0": 0.3}
    with pytest.raises(ValueError, match="finite and > 0"):
        save_sigma(p, torch.tensor([[0.3, -0.1]]), {})
    torch.save(torch.tensor([[0.3, 0.0]]), p)
    with pytest.raises(ValueError, match="finite and > 0"):
        load_sigma(p)
    torch.save({"what": 1}, p)
    with pytest.raises(ValueError, match="not a smoothcert sigma file"):
        load_sigma(p)
    with pytest.raises(FileNotFoundError):
        load_sigma(str(tmp_path / "missing.pt"))


def test_sensitivity_map_normalisation_and_ratio(tmp_path):
    s = torch.ones(3, 28, 28)
    s[:, :4, :] = s[:, -4:, :] = s[:, :, :4] = s[:, :, -4:] = 2.0  # bright 4-pixel border
    s[1] *= 3  # colour bias: channel 1 brighter everywhere
    m = normalized_map(s)
    assert m.min() == 0 and m.max() == 1
    assert m[1].min() > m[0].max() - 1e-12  # global, not per-channel, normalisation keeps the bias
    assert math.isclose(border_centre_ratio(s), 2.0)
    for c in (1, 3):
        out = tmp_path / f"map{c}.png"
        save_sigma_map(s[:c], str(out), title="t")
        assert out.stat().st_size > 1000


def test_blanket_filter_and_volume_accuracy():
    acc = [0.99, 0.98, 0.97, 0.95, 0.90, 0.80]
    vol = [-500, -520, -400, -450, -300, -600]
    assert blanket_filter(acc, vol) == [0, 1, 2, 4, 5]
    assert blanket_filter(acc, vol, "code") == [0, 2, 4]
    with pytest.raises(ValueError):
        blanket_filter(acc, vol, "other")
    o = np.array([-10.0, -5.0, -np.inf, 3.0])
    c = np.array([True, True, False, False])
    assert list(certified_accuracy_at_volume(o, c, [-20, -6, -5, 0])) == [0.5, 0.25, 0.25, 0.0]


@pytest.fixture
def digits_model(digits_checkpoint):
    return digits_checkpoint


def test_cli_fit_certify_analyze(digits_model, tmp_path, capsys):
    fit = str(tmp_path / "fit")
    argv = ["fit-sigma", "--model", digits_model, "--dataset", "digits", "--out", fit, "--c0", "0.5",
            "--sub-epochs", "1", "--samples", "4", "--val", "100", "--fit-count", "300", "--eval-n0", "8",
            "--eval-n", "64", "--no-progress"]
    assert cli.main(argv) == 0
    rec = json.load(open(os.path.join(fit, "fit.json")))["record"]
    assert len(rec) == 2 and rec[0]["isotropic"] and os.path.exists(os.path.join(fit, "accuracy_vs_volume.png"))
    sfile = os.path.join(fit, "c0_0.5", "sigma.pt")
    sigma = load_sigma(sfile)[0]
    assert math.isclose(float(sigma.mean()), 0.5, rel_tol=0.2)  # digits: pixel units by default
    cert = ["certify", "--model", digits_model, "--dataset", "digits", "--n0", "10", "--n", "200", "--batch", "400",
            "--skip", "5", "--max", "40", "--no-progress"]
    out = str(tmp_path / "a.tsv")
    assert cli.main(cert + ["--sigma-file", sfile, "--out", out, "--two-sided"]) == 0
    lines = open(out).read().splitlines()
    head = lines[0].split("\t")
    assert head[:6] == ["idx", "label", "predict", "radius", "correct", "time"]
    assert {"normalized_radius", "o_ca", "r_geo", "r_linf", "r_two_sided"} <= set(head)
    assert all(r.split("\t")[head.index("certificate")] == "anisotropic" for r in lines[1:]) and len(lines) == 9
    side = json.load(open(out + ".json"))["config"]
    assert side["sigma_mode"] == "anisotropic" and "sha256:" in side["sigma_file"]
    iso = str(tmp_path / "b.tsv")
    assert cli.main(cert + ["--sigma", f"{float(sigma.mean())!r}", "--out", iso]) == 0
    capsys.readouterr()
    assert cli.main(["analyze", out, iso, "--volume-plot", str(tmp_path / "v.png"), "--volumes", "-200", "-100"]) == 0
    text = capsys.readouterr().out
    assert "anisotropic" in text and "isotropic" in text and (tmp_path / "v.png").exists()
    # refusals: --sigma with --sigma-file; the sigma's own (train) split; a ddrs option with it
    assert cli.main(cert + ["--sigma-file", sfile, "--sigma", "0.3", "--out", str(tmp_path / "c.tsv")]) == 2
    assert cli.main(cert + ["--sigma-file", sfile, "--split", "train", "--out", str(tmp_path / "d.tsv")]) == 2
    assert cli.main(cert + ["--sigma-file", sfile, "--ddrs-steps", "3", "--out", str(tmp_path / "e.tsv")]) == 2
    assert cli.main(cert + ["--sigma", "0.3", "--two-sided", "--sigma-mode", "fixed",
                            "--out", str(tmp_path / "g.tsv")]) == 2
    assert cli.main(cert + ["--sigma-file", sfile, "--noise", "uniform", "--out", str(tmp_path / "f.tsv")]) == 2
    err = capsys.readouterr().err
    assert "contradict" in err and "fitted on digits/train" in err
    assert "--ddrs-steps belong to --sigma-mode ddrs" in err and "--two-sided belong to --sigma-mode anisotropic" in err
    assert "Gaussian noise" in err
