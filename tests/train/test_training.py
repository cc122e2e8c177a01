"""Training methods (gaussian, smoothadv, macer, stability, consistency): the loss decreases,
per-example sigma, epoch checkpoints and exact resume, the train CLI feeding
certify, and the pieces of each loss."""
import os

import pytest
import torch

from smoothcert import cli, data, models
from smoothcert import train as training
from smoothcert.train import losses
from helpers import gen, interrupt_optimizer_after

PARAMS = {"gaussian": {}, "smoothadv": dict(m=2, steps=2, epsilon=0.2, warmup=1), "macer": dict(k=4),
          "stability": {}, "consistency": {}}


def toy_split(n=256, seed=0):
    """Two classes of 1x8x8 images: bright top half vs bright bottom half."""
    g = gen(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.rand(n, 1, 8, 8, generator=g) * 0.3
    x[y == 0, :, :4] += 0.6
    x[y == 1, :, 4:] += 0.6
    return data.Split(x.clamp(0, 1), y, 10, "toy/train")


def toy_model(seed=0):
    torch.manual_seed(seed)
    return models.build_model("mlp", "digits")


@pytest.mark.parametrize("method", losses.METHODS)
def test_loss_decreases(method):
    log = []
    cfg = training.TrainConfig(epochs=3, batch_size=32, lr=0.05)
    training.train(toy_model(), toy_split(), training.make_method(method, **PARAMS[method]), 0.25, config=cfg,
                   progress=False, log=log)
    assert [e["epoch"] for e in log] == [1, 2, 3]
    assert log[-1]["loss"] < log[0]["loss"]
    assert log[-1]["noisy_accuracy"] > 0.8


@pytest.mark.parametrize("method", losses.METHODS)
def test_per_example_sigma(method):
    split = toy_split(64)
    sigma = torch.linspace(0.1, 0.5, 64)
    model = training.train(toy_model(), split, training.make_method(method, **PARAMS[method]), sigma,
                           config=training.TrainConfig(epochs=1, batch_size=16, lr=0.01), progress=False)
    assert not model.training


def test_per_example_sigma_reaches_the_noise():
    """Examples with sigma ~ 0 see their clean input; the table is indexed by example."""
    split = toy_split(8)
    seen = {}

    def spy(model, x, y, sigma, noise):
        noisy = noise(x, 1)
        for s, diff in zip(sigma.tolist(), (noisy - x).flatten(1).abs().amax(1).tolist()):
            seen.setdefault(round(s, 6), []).append(diff)
        return losses.gaussian(model, x, y, sigma, noise)

    sigma = torch.tensor([1e-6, 1.0] * 4)
    training.train(toy_model(), split, spy, sigma, config=training.TrainConfig(epochs=1, batch_size=3),
                   progress=False)
    assert max(seen[1e-6]) < 1e-4 and min(seen[1.0]) > 0.5


@pytest.mark.parametrize("sigma, msg", [(0.0, "sigma must be finite and > 0"), (-1.0, "sigma must be"),
                                        (torch.ones(5), r"per-example sigma must have shape \[16\]")])
def test_bad_sigma(sigma, msg):
    with pytest.raises(ValueError, match=msg):
        training.train(toy_model(), toy_split(16), "gaussian", sigma, progress=False)


def test_bad_config_and_method():
    with pytest.raises(ValueError, match="unknown training method"):
        training.make_method("adversarial")
    with pytest.raises(ValueError, match="schedule must be"):
        training.train(toy_model(), toy_split(16), "gaussian", 0.25,
                       config=training.TrainConfig(schedule="linear"), progress=False)


def _save_fn(path):
    def save(model, meta):
        models.save_checkpoint(path, model, arch="mlp", dataset="digits", meta=meta)
    return save


@pytest.mark.parametrize("schedule", ["cosine", "step"])
def test_resume_after_interruption_is_exact(tmp_path, schedule, monkeypatch):
    cfg = training.TrainConfig(epochs=3, batch_size=32, lr=0.05, schedule=schedule, milestones=(1, 2))
    method = training.make_method("smoothadv", **PARAMS["smoothadv"])
    full = training.train(toy_model(), toy_split(), method, 0.25, config=cfg, out=str(tmp_path / "a.pt"),
                          save=_save_fn(str(tmp_path / "a.pt")), progress=False)

    path = str(tmp_path / "b.pt")
    restore = interrupt_optimizer_after(monkeypatch, 8 + 3)  # killed inside epoch 2
    with pytest.raises(KeyboardInterrupt):
        training.train(toy_model(), toy_split(), method, 0.25, config=cfg, out=path, save=_save_fn(path),
                       progress=False)
    restore()
    assert models.checkpoint_info(path)["meta"]["epochs_done"] == 1
    log = []
    resumed = training.train(toy_model(seed=5), toy_split(), method, 0.25, config=cfg, out=path,
                             save=_save_fn(path), progress=False, log=log)
    assert [e["epoch"] for e in log] == [2, 3]  # epoch 1 kept, epoch 2 redone from its start
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    _, info = models.load_checkpoint(path)
    assert info["meta"]["epochs_done"] == 3 and len(info["meta"]["history"]) == 3


def test_crash_between_state_and_checkpoint_loses_nothing(tmp_path):
    path = str(tmp_path / "d.pt")
    cfg = training.TrainConfig(epochs=2, batch_size=32, lr=0.05)

    def crash_at_2(model, meta):
        if meta["epochs_done"] == 2:
            raise KeyboardInterrupt  # the state of epoch 2 is already written
        _save_fn(path)(model, meta)

    with pytest.raises(KeyboardInterrupt):
        training.train(toy_model(), toy_split(64), "gaussian", 0.25, config=cfg, out=path, save=crash_at_2,
                       progress=False)
    log = []
    training.train(toy_model(), toy_split(64), "gaussian", 0.25, config=cfg, out=path, save=_save_fn(path),
                   progress=False, log=log)
    assert log == []  # nothing left to train
    assert models.checkpoint_info(path)["meta"]["epochs_done"] == 2  # and the checkpoint caught up
    full = training.train(toy_model(), toy_split(64), "gaussian", 0.25, config=cfg, progress=False)
    state = torch.load(path + ".state", weights_only=True)
    for k, v in full.state_dict().items():
        assert torch.equal(state["model"][k], v)


def test_resume_with_other_settings_refused(tmp_path):
    path = str(tmp_path / "c.pt")
    cfg = training.TrainConfig(epochs=1, batch_size=32, lr=0.05)
    training.train(toy_model(), toy_split(64), "gaussian", 0.25, config=cfg, out=path, save=_save_fn(path),
                   progress=False)
    with pytest.raises(ValueError, match="different settings.*lr"):
        training.train(toy_model(), toy_split(64), "gaussian", 0.25,
                       config=training.TrainConfig(epochs=1, batch_size=32, lr=0.1), out=path,
                       save=_save_fn(path), progress=False)
    with pytest.raises(ValueError, match="different settings.*method"):
        training.train(toy_model(), toy_split(64), training.make_method("macer", k=2), 0.25, config=cfg,
                       out=path, save=_save_fn(path), progress=False)


def test_smoothadv_attack_stays_in_ball_and_box():
    model = toy_model()
    split = toy_split(16)
    x, y = split.x, split.y
    attack = losses.SmoothAdv(m=3, steps=4, epsilon=0.3)
    captured = {}

    class Recording(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, inp):
            captured.setdefault("inputs", []).append(inp.detach())
            return self.inner(inp)

    recording = Recording().train()

    def noise(inp, m):
        return inp.repeat_interleave(m, dim=0) + 0.1 * torch.randn(inp.shape[0] * m, *inp.shape[1:],
                                                                   generator=gen(1))

    loss, logits = attack(recording, x, y, 0.1, noise)
    assert logits.shape == (16 * 3, 10) and torch.isfinite(loss)
    delta = noise(torch.zeros_like(x), 3)
    x_adv = (captured["inputs"][-1] - delta).view(16, 3, -1)[:, 0]  # the trained-on point
    shift = (x_adv - x.flatten(1)).norm(dim=1)
    assert bool((shift <= 0.3 + 1e-5).all()) and float(shift.max()) > 0.1
    assert float(x_adv.min()) >= -1e-6 and float(x_adv.max()) <= 1 + 1e-6
    assert recording.training  # restored after the attack's eval-mode steps
    assert losses.SmoothAdv(epsilon=0.5, warmup=5).epsilon_at(1) == pytest.approx(0.2)
    assert losses.SmoothAdv(epsilon=0.5, warmup=5).epsilon_at(9) == pytest.approx(0.5)


def test_macer_radius_term_matches_formula():
    """With a model whose logits do not depend on the noise, g is the softmax of
    the logits and the hinge is sigma / 2 * (gamma - (Phi^-1(top1) - Phi^-1(top2)))."""
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 0.1]])
    y = torch.tensor([0, 0])  # the second example is misclassified: no radius term

    def model(inp):
        return logits.repeat_interleave(inp.shape[0] // 2, dim=0)

    def noise(inp, m):
        return inp.repeat_interleave(m, dim=0)

    macer = losses.Macer(k=3, lbd=2.0, gamma=8.0, beta=1.0)
    loss, _ = macer(model, torch.zeros(2, 1), y, 0.5, noise)
    p = torch.softmax(logits, dim=1)
    ce = -torch.log(p[torch.arange(2), y] + 1e-10)
    normal = torch.distributions.Normal(0.0, 1.0)
    xi = normal.icdf(p[0, 0]) - normal.icdf(p[0, 1])
    want = (ce.sum() + 2.0 * 0.5 / 2 * (8.0 - xi)) / 2
    assert float(loss) == pytest.approx(float(want), rel=1e-5)


def test_stability_loss_is_ce_when_copies_agree():
    logits = torch.tensor([[1.0, -1.0], [0.5, 0.2]])

    def model(inp):
        return logits.repeat_interleave(2, dim=0)

    loss, _ = losses.Stability()(model, torch.zeros(2, 1), torch.tensor([0, 1]), 0.5,
                                 lambda inp, m: inp.repeat_interleave(m, dim=0))
    ce = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1]))
    assert float(loss) == pytest.approx(float(ce), rel=1e-6)


def test_train_cli_checkpoint_certifies(tmp_path, capsys):
    ckpt = str(tmp_path / "m.pt")
    args = ["train", "--method", "stability", "--arch", "mlp", "--dataset", "digits", "--sigma", "0.25",
            "--epochs", "2", "--batch", "64", "--lr", "0.05", "--out", ckpt, "--no-progress"]
    assert cli.main(args) == 0
    info = models.checkpoint_info(ckpt)
    meta = info["meta"]
    assert info["arch"] == "mlp" and meta["method"]["method"] == "stability" and meta["sigma"] == 0.25
    assert meta["epochs_done"] == 2 and meta["command"].startswith("smoothcert train --method stability")
    assert os.path.exists(ckpt + ".state")
    with open(ckpt, "rb") as f:
        before = f.read()
    assert cli.main(args) == 0  # rerun: already done, nothing trained
    with open(ckpt, "rb") as f:
        assert f.read() == before  # byte-identical: certify runs key their files by its hash
    out = str(tmp_path / "r.tsv")
    assert cli.main(["certify", "--model", ckpt, "--dataset", "digits", "--sigma", "0.25", "--n0", "20",
                     "--n", "200", "--batch", "200", "--max", "10", "--out", out, "--no-progress"]) == 0
    with open(out) as f:
        rows = f.read().splitlines()
    assert rows[0].startswith("idx\tlabel\tpredict\tradius\tcorrect\ttime") and len(rows) == 11


def test_train_cli_errors(tmp_path, capsys):
    base = ["train", "--arch", "mlp", "--dataset", "digits", "--out", str(tmp_path / "x.pt"), "--no-progress"]
    assert cli.main(base) == 2
    assert "exactly one of --sigma and --sigma-table" in capsys.readouterr().err
    assert cli.main(base + ["--sigma", "0"]) == 2
    assert "sigma must be finite and > 0" in capsys.readouterr().err
