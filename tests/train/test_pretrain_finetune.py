"""Seed-004 pretrain-to-finetune training: the per-epoch uniform sigma, the training-set
selection against select_sigma, the fine-tuning table reaching the noise, exact resume
after an interruption in every stage, the CLI's checkpoint meta, single-copy SmoothAdv
and bad input."""
import os

import pytest
import torch

from smoothcert import Smooth, cli, data, drivers, models, ops
from smoothcert import train as training
from smoothcert.sigma.samplewise import select_sigma, sigma_grid
from smoothcert.train import loop, losses
from smoothcert.drivers import pretrain_finetune as pf
from helpers import gen, interrupt_optimizer_after

N, BATCH = 192, 64  # 3 steps per epoch
STEPS = N // BATCH
LOSS = dict(m=2, steps=1, epsilon=0.3, warmup=1)


def digits(n=N):
    split = data.load_dataset("digits", "train")
    return data.Split(split.x[:n], split.y[:n], split.num_classes, f"digits[:{n}]")


def toy_model(seed=0):
    torch.manual_seed(seed)
    return models.build_model("mlp", "digits")


def plan(**kw):
    base = dict(sigma_min=0.12, sigma_max=0.5, pretrain_epochs=2, finetune_epochs=2, pretrain_lr=0.05,
                finetune_lr=0.0005, select_samples=32, select_batch=256, select_chunk=64)
    return pf.PretrainFinetuneConfig(**{**base, **kw})


def save_to(path, model, meta):
    tensors = {k: v for k, v in meta.items() if isinstance(v, torch.Tensor)}
    plain = {k: v for k, v in meta.items() if k not in tensors}
    models.save_checkpoint(path, model, arch="mlp", dataset="digits", meta=plain, tensors=tensors)


def run(out, seed=0, log=None, **kw):
    return drivers.train_pretrain_finetune(toy_model(seed), digits(), training.make_method("smoothadv", **LOSS),
                                            plan(**kw), config=training.TrainConfig(batch_size=BATCH), out=out,
                                            save=save_to, progress=False, log=log)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run: its result, and the noise calls of its training steps."""
    out = str(tmp_path_factory.mktemp("ref") / "ref.pt")
    calls = []
    real = loop.make_noise

    def spy(cfg, ids, sigma, sample_start):
        calls.append((cfg.sigma_mode, sample_start // loop.SAMPLES_PER_EPOCH, ids.clone(), sigma.clone()))
        return real(cfg, ids, sigma, sample_start)

    loop.make_noise = spy
    try:
        res = run(out)
    finally:
        loop.make_noise = real
    return out, res, calls


def test_uniform_table_is_in_range_fresh_per_epoch_and_reproducible():
    a = training.uniform_sigma_table(5000, 0.12, 0.5, seed=3, epoch=0)
    assert a.shape == (5000,) and a.dtype == torch.float32
    lo, hi = torch.tensor(0.12, dtype=torch.float32), torch.tensor(0.5, dtype=torch.float32)
    assert bool((a >= lo).all() and (a <= hi).all())
    assert float(a.min()) < 0.13 and float(a.max()) > 0.49  # spans the range, not a grid
    assert a.unique().numel() > 4900
    assert torch.equal(a, training.uniform_sigma_table(5000, 0.12, 0.5, seed=3, epoch=0))
    assert not torch.equal(a, training.uniform_sigma_table(5000, 0.12, 0.5, seed=3, epoch=1))
    assert not torch.equal(a, training.uniform_sigma_table(5000, 0.12, 0.5, seed=4, epoch=0))
    assert bool((training.uniform_sigma_table(10, 0.3, 0.3, seed=0, epoch=0) == 0.3).all())


def test_each_stage_trains_at_its_sigma(reference):
    """Stage 1: every example at the epoch's uniform draw, a new one every epoch; stage 2:
    exactly the selected table, with draws keyed after stage 1's (no replay)."""
    _, res, calls = reference
    pre = [c for c in calls if c[0] == "uniform"]
    fine = [c for c in calls if c[0] == "fixed"]
    assert len(pre) == len(fine) == 2 * STEPS
    for _, key, ids, sigma in pre:
        assert torch.equal(sigma.cpu(), training.uniform_sigma_table(N, 0.12, 0.5, 0, key)[ids.cpu()])
    seen = {}
    for _, key, ids, sigma in pre:
        seen.setdefault(key, torch.zeros(N)).index_copy_(0, ids.cpu(), sigma.cpu())
    assert sorted(seen) == [0, 1] and not torch.equal(seen[0], seen[1])
    for _, key, ids, sigma in fine:
        assert torch.equal(sigma.cpu(), res.selection.sigma[ids.cpu()])
    assert sorted({c[1] for c in fine}) == [2, 3]  # stage 2 continues after stage 1's epochs


def test_selection_is_on_the_grid_and_matches_select_sigma(reference):
    out, res, _ = reference
    sel = res.selection
    grid = sigma_grid(0.12, 0.5)
    assert torch.equal(sel.grid, grid)
    assert sel.sigma.shape == (N,) and sel.sigma.dtype == torch.float32
    assert torch.equal(sel.sigma, grid[sel.choice].float())
    assert set(sel.sigma.tolist()) <= set(grid.float().tolist())
    assert bool((sel.choice[sel.best == 0] == 0).all())  # nothing correct -> the smallest sigma
    assert sum(sel.histogram()) == N and sel.no_correct() == int((sel.best == 0).sum())
    stored = torch.load(out + ".sigma.pt", weights_only=True)
    assert torch.equal(stored["sigma"], sel.sigma) and torch.equal(stored["choice"], sel.choice)
    assert not os.path.exists(out + ".sigma.pt.partial")
    # Brute force: the stage-1 model, a few examples in one other batch, Eq. 5 with the labels.
    stage1, _ = models.load_checkpoint(out + ".pretrain")
    split = digits()
    ids = torch.tensor([0, 5, 77, 130, 191])
    want = select_sigma(Smooth(stage1, 10, sigma=0.15, seed=0).sampler(ops.TRAIN_SAMPLEWISE_STREAM, 100),
                        split.x[ids].float(), ids, grid, 32, 0.001, labels=split.y[ids])
    assert torch.equal(want.choice, sel.choice[ids]) and torch.equal(want.best, sel.best[ids])
    # Eq. 5 itself: the largest R*h, where R*h > 0 only where the label is the top class.
    assert torch.equal(want.choice, want.radius.argmax(1))
    assert bool((want.top == split.y[ids].view(-1, 1)).all())
    assert sel.no_correct() < N  # the run did learn something


def _same_weights(a, b):
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va.cpu(), vb.cpu()), ka


def test_resume_after_interruption_in_every_stage_is_exact(reference, tmp_path, monkeypatch):
    ref_out, ref, _ = reference
    out = str(tmp_path / "b.pt")

    restore = interrupt_optimizer_after(monkeypatch, STEPS + 2)  # inside pretraining epoch 2
    with pytest.raises(KeyboardInterrupt):
        run(out)
    restore()
    assert models.checkpoint_info(out + ".pretrain")["meta"]["epochs_done"] == 1
    assert not os.path.exists(out + ".sigma.pt")

    real_select, calls = pf.select_sigma, []

    def dying_select(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the second chunk of 64
            raise KeyboardInterrupt
        return real_select(*args, **kwargs)

    monkeypatch.setattr(pf, "select_sigma", dying_select)
    with pytest.raises(KeyboardInterrupt):
        run(out)
    monkeypatch.setattr(pf, "select_sigma", real_select)
    assert models.checkpoint_info(out + ".pretrain")["meta"]["epochs_done"] == 2
    assert torch.load(out + ".sigma.pt.partial", weights_only=True)["done"] == 64
    assert not os.path.exists(out + ".sigma.pt")

    restore = interrupt_optimizer_after(monkeypatch, STEPS + 2)  # inside fine-tuning epoch 2
    with pytest.raises(KeyboardInterrupt):
        run(out, seed=7)  # other initial weights: stage 1's state must win
    restore()
    assert not os.path.exists(out + ".sigma.pt.partial")
    assert models.checkpoint_info(out)["meta"]["epochs_done"] == 1

    log = []
    res = run(out, seed=7, log=log)
    assert [(e["stage"], e["epoch"]) for e in log] == [("finetune", 2)]
    _same_weights(ref.model, res.model)
    assert torch.equal(ref.selection.sigma, res.selection.sigma)
    for suffix in ("", ".pretrain"):
        _same_weights(models.load_checkpoint(ref_out + suffix)[0], models.load_checkpoint(out + suffix)[0])
    a, b = models.checkpoint_info(ref_out), models.checkpoint_info(out)
    assert torch.equal(a["tensors"]["sigma_table"], b["tensors"]["sigma_table"])
    assert a["meta"]["history"] == b["meta"]["history"]


def test_other_settings_are_refused(reference, tmp_path):
    out = str(tmp_path / "c.pt")
    run(out, pretrain_epochs=1, finetune_epochs=1)
    with pytest.raises(ValueError, match=r"different settings \(.*sigma_max"):
        run(out, pretrain_epochs=1, finetune_epochs=1, sigma_max=0.6)
    with pytest.raises(ValueError, match=r"different settings \(.*select_samples"):
        run(out, pretrain_epochs=1, finetune_epochs=1, select_samples=64)
    with pytest.raises(ValueError, match="different settings.*lr"):
        run(out, pretrain_epochs=1, finetune_epochs=1, finetune_lr=0.001)
    os.remove(out + ".state")  # before stage 2: stage 1's state guards the range too
    with pytest.raises(ValueError, match="different settings"):
        run(out, pretrain_epochs=1, finetune_epochs=1, sigma_max=0.6)


@pytest.mark.parametrize("kw, msg", [
    (dict(sigma_min=0.6, sigma_max=0.5), r"sigma_min \(0.6\) is above sigma_max"),
    (dict(sigma_min=0.0), "sigma_min must be a finite number > 0"),
    (dict(sigma_max=-1.0), "sigma_max must be a finite number > 0"),
    (dict(sigma_min=0.01, sigma_max=0.04), "grid is empty"),
    (dict(sigma_step=0.0), "step must be finite and > 0"),
    (dict(pretrain_epochs=0), "pretrain_epochs must be >= 1"),
    (dict(select_samples=0), "select_samples must be >= 1"),
    (dict(finetune_lr=0.0), "finetune_lr must be finite and > 0"),
    (dict(alpha=1.5), "alpha must lie in"),
])
def test_bad_plans(kw, msg):
    with pytest.raises(ValueError, match=msg):
        plan(**kw).check()


def test_bad_uniform_configs():
    split = digits(16)
    cfg = training.TrainConfig(epochs=1, sigma_mode="uniform", sigma_min=0.1, sigma_max=0.2)
    with pytest.raises(ValueError, match="pass sigma=None"):
        training.train(toy_model(), split, "gaussian", 0.25, config=cfg, progress=False)
    with pytest.raises(ValueError, match="needs a sigma"):
        training.train(toy_model(), split, "gaussian", None, progress=False)
    with pytest.raises(ValueError, match="belong to sigma_mode 'uniform'"):
        training.TrainConfig(sigma_min=0.1).check()
    with pytest.raises(ValueError, match="above sigma_max"):
        training.TrainConfig(sigma_mode="uniform", sigma_min=0.3, sigma_max=0.2).check()
    with pytest.raises(ValueError, match="Gaussian noise"):
        plan().stages(training.TrainConfig(noise="uniform"))


def test_single_copy_smoothadv_trains_on_the_first_copy():
    model = toy_model().train()
    x, y = digits(8).x, digits(8).y
    delta = 0.2 * torch.randn(8 * 3, *x.shape[1:], generator=gen(1))

    def noise(inp, m):
        return inp.repeat_interleave(m, dim=0) + delta

    params = dict(m=3, steps=2, epsilon=0.3)
    single = training.make_method("smoothadv", single_copy=True, **params)
    both = training.make_method("smoothadv", **params)
    assert type(both) is losses.SmoothAdv and isinstance(single, losses.SmoothAdv)
    assert "single_copy" not in training.describe(both)  # the default description is unchanged
    assert training.describe(single) == {**training.describe(both), "single_copy": True}
    assert losses.samples_per_step(single) == 3  # the attack still draws m copies
    loss1, logits1 = single(model, x, y, 0.2, noise)
    loss_all, logits_all = both(model, x, y, 0.2, noise)
    assert logits1.shape == (8, 10) and logits_all.shape == (24, 10)
    assert torch.allclose(logits1, logits_all.view(8, 3, 10)[:, 0], atol=1e-6)
    want = torch.nn.functional.cross_entropy(logits_all.view(8, 3, 10)[:, 0], y)
    assert float(loss1.detach()) == pytest.approx(float(want.detach()), rel=1e-5)


CLI = ["train", "--method", "pretrain-finetune", "--arch", "mlp", "--dataset", "digits", "--max-train", "128",
       "--sigma-min", "0.12", "--sigma-max", "0.5", "--pretrain-epochs", "1", "--finetune-epochs", "1",
       "--select-samples", "32", "--select-batch", "256", "--m", "2", "--pgd-steps", "1", "--epsilon", "0.3",
       "--warmup", "1", "--batch", "64", "--lr", "0.05", "--single-copy", "--no-progress"]


def test_cli_writes_a_certifiable_samplewise_checkpoint(tmp_path, capsys):
    ckpt = str(tmp_path / "m.pt")
    assert cli.main(CLI + ["--out", ckpt]) == 0
    assert "sigma_train" in capsys.readouterr().err
    info = models.checkpoint_info(ckpt)
    meta, grid = info["meta"], [0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5]
    assert meta["method"]["method"] == "pretrain-finetune"
    assert meta["method"]["loss"] == {"method": "smoothadv", "m": 2, "steps": 1, "epsilon": 0.3, "warmup": 1,
                                      "clip": [0.0, 1.0], "single_copy": True}
    assert meta["noise"] == {"kind": "gaussian", "sigma_mode": "samplewise", "sigma_min": 0.12, "sigma_max": 0.5,
                             "sigma_step": 0.05, "include_min": False, "grid": grid}
    stages = meta["pretrain_finetune"]
    assert stages["grid"] == grid and stages["select_samples"] == 32 and stages["alpha"] == 0.001
    assert stages["pretrain"]["epochs"] == 1 and stages["pretrain"]["lr"] == 0.05
    assert stages["finetune"]["epochs"] == 1 and stages["finetune"]["lr"] == pytest.approx(0.0005)
    assert stages["finetune"]["loss"]["warmup"] == 0
    table = info["tensors"]["sigma_table"]
    assert table.shape == (128,) and set(table.tolist()) <= set(torch.tensor(grid).float().tolist())
    counts = [int((table == torch.tensor(g, dtype=torch.float32)).sum()) for g in grid]
    assert stages["sigma_histogram"] == counts and sum(counts) == 128
    assert 0 <= stages["no_correct_sigma"] <= counts[0]
    assert meta["epochs_done"] == 1 and meta["command"].startswith("smoothcert train --method pretrain-finetune")
    pre = models.checkpoint_info(ckpt + ".pretrain")["meta"]
    assert pre["stage"] == "pretrain" and pre["noise"]["sigma_mode"] == "uniform" and pre["noise"]["grid"] == grid
    with open(ckpt, "rb") as f:
        before = f.read()
    assert cli.main(CLI + ["--out", ckpt]) == 0  # rerun: nothing left to do
    with open(ckpt, "rb") as f:
        assert f.read() == before


@pytest.mark.parametrize("extra, msg", [
    (["--sigma", "0.25"], "drop --sigma/--sigma-table"),
    (["--sigma-table", "t.pt"], "drop --sigma/--sigma-table"),
    (["--sigma-max", "0.1"], r"sigma_min \(0.12\) is above sigma_max \(0.1\)"),
    (["--sigma-min", "0.01", "--sigma-max", "0.04"], "grid is empty"),
    (["--sigma-min", "-0.5"], "sigma_min must be a finite number > 0"),
    (["--sigma-step", "0"], "step must be finite and > 0"),
    (["--epochs", "3"], "not --epochs"),
    (["--finetune-epochs", "0"], "finetune_epochs must be >= 1"),
    (["--noise", "uniform"], "Gaussian noise"),
    (["--loss", "gaussian"], "--single-copy applies to the smoothadv loss"),
])
def test_cli_bad_input(tmp_path, capsys, extra, msg):
    args = CLI + ["--out", str(tmp_path / "x.pt")] + extra
    assert cli.main(args) == 2
    assert msg.replace("\\", "") in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x.pt.pretrain.state")


def test_cli_refuses_range_options_with_other_methods(tmp_path, capsys):
    base = ["train", "--method", "smoothadv", "--arch", "mlp", "--dataset", "digits", "--sigma", "0.25",
            "--out", str(tmp_path / "y.pt"), "--no-progress"]
    assert cli.main(base + ["--sigma-min", "0.1", "--finetune-lr", "0.01"]) == 2
    assert "--sigma-min, --finetune-lr belong to --method pretrain-finetune" in capsys.readouterr().err
    assert cli.main(base[:2] + ["gaussian"] + base[3:] + ["--single-copy"]) == 2
    assert "--single-copy applies to the smoothadv loss, not gaussian" in capsys.readouterr().err
    assert cli.main(["train", "--method", "pretrain-finetune", "--arch", "mlp", "--dataset", "digits",
                     "--out", str(tmp_path / "z.pt"), "--no-progress"]) == 2
    assert "needs --sigma-min and --sigma-max" in capsys.readouterr().err


def test_grid_options_reach_the_plan():
    assert plan().grid().tolist() == [0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5]
    assert plan(include_min=True).grid().tolist()[:2] == [0.12, 0.15]
    assert plan(sigma_step=0.1).grid().tolist() == [0.2, 0.3, 0.4, 0.5]
    pre, fine = plan().stages(training.TrainConfig(batch_size=BATCH, seed=3))
    assert (pre.sigma_mode, pre.sigma_min, pre.sigma_max, pre.epochs, pre.lr) == ("uniform", 0.12, 0.5, 2, 0.05)
    assert (fine.sigma_mode, fine.epoch_offset, fine.epochs, fine.lr, fine.seed) == ("fixed", 2, 2, 0.0005, 3)
