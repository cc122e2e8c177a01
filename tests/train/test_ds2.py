"""DS2 training (Alfarra et al., Alg. 2): the per-example sigma table, its schedule,
exact resume, the checkpoint's table, and fine-tuning from --init."""
import pytest
import torch

from smoothcert import cli, data, models
from smoothcert import train as training

from helpers import interrupt_optimizer_after


def toy_split(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=g)
    y = (x.flatten(1).mean(1) > 0.5).long() + 2 * (x[:, 0, 0, 0] > 0.5).long()
    return data.Split(x, y, 10, "toy")


def toy_model(seed=0):
    torch.manual_seed(seed)
    return models.build_model("mlp", "digits")


def ds2(epochs=3, **kw):
    return training.TrainConfig(epochs=epochs, batch_size=16, lr=0.05, sigma_mode="ddrs", ddrs_lr=5e-3, **kw)


def save_fn(path, store):
    def save(model, meta):
        store.append(meta)
        tensors = {k: v for k, v in meta.items() if isinstance(v, torch.Tensor)}
        plain = {k: v for k, v in meta.items() if k not in tensors}
        models.save_checkpoint(path, model, arch="mlp", dataset="digits", meta=plain, tensors=tensors)
    return save


@pytest.mark.parametrize("method", ["gaussian", "smoothadv", "macer"])
def test_sigma_table_follows_the_schedule(tmp_path, method):
    params = {"smoothadv": dict(m=2, steps=1, epsilon=0.1, warmup=1), "macer": dict(k=4)}.get(method, {})
    metas = []
    path = str(tmp_path / "m.pt")
    training.train(toy_model(), toy_split(), training.make_method(method, **params), 0.25,
                   config=ds2(ddrs_start=1, ddrs_every=2, epochs=4), out=path, save=save_fn(path, metas),
                   progress=False)
    tables = [m["sigma_table"] for m in metas]
    assert torch.equal(tables[0], torch.full((64,), 0.25))  # epoch 0: before ddrs_start
    assert not torch.equal(tables[1], tables[0])  # epoch 1 updates every example once
    assert torch.equal(tables[2], tables[1])  # epoch 2: (2 - 1) % 2 != 0, no update
    assert not torch.equal(tables[3], tables[2])
    _, info = models.load_checkpoint(path)
    assert torch.equal(info["tensors"]["sigma_table"], tables[3])


def test_one_epoch_with_k_steps_moves_each_sigma_k_times(tmp_path):
    # A classifier this confident saturates the clamp: every update is +lr * Phi^-1(0.98) (Alfarra et
    # al., Alg. 1 with the 0.02/0.98 clamp of their App. A listing).
    from scipy import special

    class Confident(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = models.build_model("mlp", "digits")

        def forward(self, x):
            return self.net(x) + 1e4 * torch.nn.functional.one_hot(torch.zeros(x.shape[0], dtype=torch.long), 10)

    metas = []
    training.train(Confident(), toy_split(), "gaussian", 0.25, config=ds2(epochs=1, ddrs_steps=3),
                   out=str(tmp_path / "c.pt"), save=lambda m, meta: metas.append(meta), progress=False)
    want = 0.25 + 3 * 5e-3 * special.ndtri(0.98)
    assert torch.allclose(metas[0]["sigma_table"], torch.full((64,), want), atol=1e-5)


def test_resume_restores_the_sigma_table_exactly(tmp_path, monkeypatch):
    cfg = ds2(epochs=3)
    full_meta = []
    a = str(tmp_path / "a.pt")
    full = training.train(toy_model(), toy_split(), "gaussian", 0.25, config=cfg, out=a, save=save_fn(a, full_meta),
                          progress=False)
    b = str(tmp_path / "b.pt")
    restore = interrupt_optimizer_after(monkeypatch, 4 + 2)  # killed inside epoch 2
    with pytest.raises(KeyboardInterrupt):
        training.train(toy_model(), toy_split(), "gaussian", 0.25, config=cfg, out=b, save=save_fn(b, []),
                       progress=False)
    restore()
    resumed_meta = []
    resumed = training.train(toy_model(seed=3), toy_split(), "gaussian", 0.25, config=cfg, out=b,
                             save=save_fn(b, resumed_meta), progress=False)
    for x, y in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(x, y)
    assert torch.equal(full_meta[-1]["sigma_table"], resumed_meta[-1]["sigma_table"])


def test_ds2_refuses_splitting_noise():
    with pytest.raises(ValueError, match="differentiable in sigma"):
        training.train(toy_model(), toy_split(), "gaussian", 0.25, config=ds2(noise="ssn"), progress=False)


def test_train_cli_ds2_fine_tunes_from_init_and_certifies(tmp_path):
    base = str(tmp_path / "base.pt")
    common = ["--arch", "mlp", "--dataset", "digits", "--batch", "64", "--lr", "0.05", "--no-progress"]
    assert cli.main(["train", "--sigma", "0.25", "--epochs", "1", "--out", base] + common) == 0
    tuned = str(tmp_path / "ds2.pt")
    assert cli.main(["train", "--sigma", "0.25", "--epochs", "1", "--sigma-mode", "ddrs", "--ddrs-lr", "0.01",
                     "--init", base, "--out", tuned] + common) == 0
    model, info = models.load_checkpoint(tuned)
    assert info["meta"]["sigma_mode"] == "ddrs" and info["meta"]["init"]["path"] == base
    table = info["tensors"]["sigma_table"]
    assert table.shape == (1297,) and not torch.equal(table, torch.full_like(table, 0.25))
    out = str(tmp_path / "r.tsv")
    assert cli.main(["certify", "--model", tuned, "--dataset", "digits", "--sigma", "0.25", "--sigma-mode", "ddrs",
                     "--ddrs-steps", "3", "--n0", "10", "--n", "100", "--max", "6", "--out", out,
                     "--no-progress"]) == 0
