"""Files smoothcert reads back -- memories, sigma files, sigma tables, resume states --
refused with one line naming the file when corrupted or tampered, never used, and
never able to run code (issue 22, reliability review)."""
import os

import pytest
import torch

from smoothcert import cli, data, models, ops
from smoothcert.certify import Memory
from smoothcert.certify.memory import MEMORY_FORMAT
from smoothcert.cli.train import _load_sigma_table
from smoothcert.sigma import load_sigma, save_sigma
from smoothcert.drivers.fit_sigma import STATE, _load_state
from smoothcert.train import TrainConfig, train
from smoothcert.drivers.pretrain_finetune import SELECTION_FORMAT, _load_selection
from smoothcert.utils.safe_load import load_weights_only

MARKER = "hostile_payload_ran"


class Hostile:
    """Unpickling it would create the marker file (a stand-in for any code)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def one_line(e, path):
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and "weights_only=False" not in msg, msg
    return msg


def far_memory(path, classes=(7, 3), radii=(1.0, 1.0)):
    """Two balls of different classes 10 apart in R^3, saved to ``path``; returns the state dict."""
    mem = Memory((3,))
    mem.query(torch.tensor([[0.0, 0, 0], [10.0, 0, 0]]), torch.tensor(classes),
              torch.tensor(radii, dtype=torch.float64), torch.arange(2))
    mem.save(str(path))
    return mem.state()


def tamper(path, **changes):
    st = torch.load(path, weights_only=True)
    for k, v in changes.items():
        if v is None:
            del st[k]
        else:
            st[k] = v
    torch.save(st, path)


def corrupt_variants(tmp_path, good):
    """(name, path) of files that are broken in the ways a disk or a user breaks them."""
    raw = open(good, "rb").read()
    out = {"truncated": raw[: len(raw) // 2], "garbage": os.urandom(300) + b"\x80\x02", "empty": b"",
           "text": b"idx\tlabel\tpredict\n0\t1\t1\n", "head": raw[:10]}
    paths = []
    for name, blob in out.items():
        p = tmp_path / f"{name}.pt"
        p.write_bytes(blob)
        paths.append((name, p))
    return paths


# ----------------------------------------------------------------- the memory


def test_memory_with_a_raised_radius_is_refused(tmp_path):
    p = tmp_path / "mem.pt"
    st = far_memory(p)
    assert len(Memory.load(str(p))) == 2
    radii = st["radii"].clone()
    radii[0] = 100.0  # the class-7 ball now swallows the class-3 one (issue 22, case A)
    tamper(p, radii=radii)
    with pytest.raises(ValueError, match="invariant") as e:
        Memory.load(str(p))
    assert one_line(e, p).startswith(f"{p}: not a smoothcert memory file: ")


def test_memory_classes_must_be_the_models(tmp_path):
    p = tmp_path / "mem.pt"
    far_memory(p, classes=(10, 3))
    assert len(Memory.load(str(p))) == 2  # no model to compare with: only >= 0 is required
    with pytest.raises(ValueError, match=r"'classes' must lie in 0\.\.9") as e:
        Memory.load(str(p), num_classes=10)
    one_line(e, p)
    st = far_memory(p)
    tamper(p, classes=torch.tensor([-1, 3]))
    with pytest.raises(ValueError, match="classes"):
        Memory.load(str(p))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0])
def test_memory_radius_nan_inf_or_negative_is_refused(tmp_path, value):
    p = tmp_path / "mem.pt"
    st = far_memory(p)
    radii = st["radii"].clone()
    radii[1] = value
    tamper(p, radii=radii)
    with pytest.raises(ValueError, match="radii") as e:
        Memory.load(str(p))
    one_line(e, p)


@pytest.mark.parametrize("change", [
    dict(radii=torch.ones(3, dtype=torch.float64)),
    dict(classes=torch.tensor([7])),
    dict(ids=torch.arange(5)),
    dict(x=torch.zeros(2, 4)),
    dict(x=torch.zeros(2, 3, dtype=torch.float64)),
    dict(x=torch.full((2, 3), float("nan"))),
    dict(radii=torch.ones(2, dtype=torch.float32)),
    dict(classes=torch.tensor([7.0, 3.0])),
    dict(shape="3"),
    dict(tol=-1.0),
    dict(norm="linf"),
    dict(counts={"A": -1}),
    dict(counts={"Z": 1}),
    dict(radii=[1.0, 1.0]),
])
def test_memory_of_the_wrong_sizes_or_types_is_refused(tmp_path, change):
    p = tmp_path / "mem.pt"
    far_memory(p)
    tamper(p, **change)
    with pytest.raises(ValueError, match="not a smoothcert memory file") as e:
        Memory.load(str(p))
    one_line(e, p)


def test_memory_missing_radii_names_the_key(tmp_path):
    p = tmp_path / "mem.pt"
    far_memory(p)
    tamper(p, radii=None)
    with pytest.raises(ValueError, match="missing key 'radii'") as e:
        Memory.load(str(p))
    one_line(e, p)


def test_memory_of_other_inputs_is_refused_when_the_caller_knows_the_shape(tmp_path):
    p = tmp_path / "mem.pt"
    far_memory(p)
    assert Memory.load(str(p), shape=(3,)).shape == (3,)
    with pytest.raises(ValueError, match=r"shape \[3\], expected \[1, 8, 8\]"):
        Memory.load(str(p), shape=(1, 8, 8))


def test_truncated_garbage_empty_or_foreign_memory_gives_one_line(tmp_path):
    good = tmp_path / "good.pt"
    far_memory(good)
    for name, p in corrupt_variants(tmp_path, good):
        with pytest.raises(ValueError, match="not a smoothcert memory file") as e:
            Memory.load(str(p))
        one_line(e, p)
    torch.save({"x": torch.zeros(2)}, tmp_path / "dict.pt")
    with pytest.raises(ValueError, match="expected format"):
        Memory.load(str(tmp_path / "dict.pt"))
    with pytest.raises(FileNotFoundError, match="not found"):
        Memory.load(str(tmp_path / "nope.pt"))
    with pytest.raises(ValueError, match="directory"):
        Memory.load(str(tmp_path))


def test_invariant_check_is_one_kernel_call(monkeypatch):
    """Loading proves the invariant in one ball_margin call (not one per stored ball), so a
    memory of thousands of balls loads in about a second."""
    g = torch.Generator().manual_seed(0)
    mem = Memory((4,))
    for i in range(60):
        mem.insert(torch.rand(4, generator=g) + 3.0 * i, i % 3, 0.1, i)
    calls = []
    real = ops.ball_margin

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)
    monkeypatch.setattr(ops, "ball_margin", counting)
    mem.check_invariant()
    assert len(calls) == 1
    mem._radius[5] = 10.0
    with pytest.raises(AssertionError, match="overlap"):
        mem.check_invariant()


def test_cli_refuses_a_tampered_memory(tmp_path, capsys):
    """``--memory-in`` with the issue's tampered memory: exit 2 and one ``error:`` line, no rows."""
    ckpt = str(tmp_path / "mlp.pt")
    models.save_checkpoint(ckpt, models.build_model("mlp", "digits"), arch="mlp", dataset="digits")
    S = tuple(data.load_dataset("digits", "test").x.shape[1:])
    mem = Memory(S)
    mem.query(torch.stack([torch.zeros(S), torch.ones(S)]), torch.tensor([7, 3]),
              torch.tensor([0.5, 0.5], dtype=torch.float64), torch.arange(2))
    p = tmp_path / "mem.pt"
    mem.save(str(p))
    tamper(p, radii=torch.tensor([100.0, 0.5], dtype=torch.float64))
    out = tmp_path / "r.tsv"
    argv = ["certify", "--model", ckpt, "--dataset", "digits", "--sigma", "0.25", "--sigma-mode", "ddrs",
            "--ddrs-steps", "1", "--n0", "10", "--n", "20", "--max", "3", "--memory-in", str(p), "--out", str(out),
            "--no-progress"]
    capsys.readouterr()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"smoothcert certify: error: {p}: not a smoothcert memory file: ") and "\n" not in err
    assert not out.exists() or "\t7\t" not in out.read_text()
    (tmp_path / "mem.pt").write_bytes(b"\x00" * 40)
    assert cli.main(argv) == 2
    assert "smoothcert certify: error:" in capsys.readouterr().err


# ----------------------------------------------------------------- sigma files and tables


def test_sigma_file_missing_key_truncated_or_bad_values(tmp_path):
    p = tmp_path / "s.pt"
    save_sigma(str(p), torch.full((1, 2, 2), 0.3), {"c0": 0.3})
    for name, q in corrupt_variants(tmp_path, p):
        with pytest.raises(ValueError, match="not a smoothcert sigma file") as e:
            load_sigma(str(q))
        one_line(e, q)
    torch.save({"format": "smoothcert-sigma", "version": 1, "meta": {}}, p)
    with pytest.raises(ValueError, match="missing key 'sigma'") as e:
        load_sigma(str(p))
    one_line(e, p)
    for bad, match in ((torch.tensor([0.3, float("nan")]), "finite and > 0"), ({"a": 1}, "tensor"),
                       (torch.tensor([1, 2]), "floating")):
        torch.save({"format": "smoothcert-sigma", "version": 1, "sigma": bad, "meta": {}}, p)
        with pytest.raises(ValueError, match=match) as e:
            load_sigma(str(p))
        assert one_line(e, p).startswith(f"{p}: not a smoothcert sigma file: ")
    torch.save({"format": "smoothcert-sigma", "version": 1, "sigma": torch.ones(2), "meta": [1]}, p)
    with pytest.raises(ValueError, match="'meta' must be a dict"):
        load_sigma(str(p))


def test_cli_sigma_file_without_its_sigma_is_an_error_line(tmp_path, capsys):
    ckpt = str(tmp_path / "mlp.pt")
    models.save_checkpoint(ckpt, models.build_model("mlp", "digits"), arch="mlp", dataset="digits")
    p = tmp_path / "s.pt"
    torch.save({"format": "smoothcert-sigma", "version": 1, "meta": {}}, p)
    argv = ["certify", "--model", ckpt, "--dataset", "digits", "--n0", "10", "--n", "20", "--max", "2",
            "--sigma-file", str(p), "--out", str(tmp_path / "a.tsv"), "--no-progress"]
    capsys.readouterr()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"smoothcert certify: error: {p}: not a smoothcert sigma file: missing key 'sigma'"


@pytest.mark.parametrize("table, match", [
    (torch.full((5,), 0.25), r"shape \[7\], found \[5\]"),
    (torch.full((7, 1), 0.25), r"shape \[7\]"),
    (torch.tensor([0.25] * 6 + [0.0]), "finite and > 0; 1 are not"),
    (torch.tensor([0.25] * 6 + [float("nan")]), "finite and > 0"),
    (torch.tensor([-0.1] * 7), "finite and > 0; 7 are not"),
    (torch.ones(7, dtype=torch.long), "floating point"),
    ({"sigma": torch.ones(7)}, "must be a tensor"),
    (0.25, "must be a tensor"),
])
def test_sigma_table_of_the_wrong_shape_or_values(tmp_path, table, match):
    p = tmp_path / "t.pt"
    torch.save(table, p)
    with pytest.raises(ValueError, match=match) as e:
        _load_sigma_table(str(p), 7)
    assert one_line(e, p).startswith(f"{p}: not a sigma table")
    torch.save(torch.full((7,), 0.25, dtype=torch.float64), p)
    assert _load_sigma_table(str(p), 7).dtype == torch.float32


def test_cli_train_sigma_table_errors_are_one_line(tmp_path, capsys):
    p = tmp_path / "t.pt"
    torch.save(torch.full((3,), 0.25), p)
    argv = ["train", "--arch", "mlp", "--dataset", "digits", "--sigma-table", str(p), "--epochs", "1",
            "--out", str(tmp_path / "m.pt"), "--no-progress"]
    capsys.readouterr()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"smoothcert train: error: {p}: not a sigma table") and "found [3]" in err
    p.write_bytes(b"PK\x03\x04 truncated")
    assert cli.main(argv) == 2
    assert "truncated or corrupted" in capsys.readouterr().err
    assert not (tmp_path / "m.pt").exists()


# ----------------------------------------------------------------- resume states


def tiny_run(out, epochs):
    g = torch.Generator().manual_seed(0)
    split = data.Split(x=torch.rand(12, 1, 2, 2, generator=g), y=torch.arange(12) % 3, num_classes=3, name="t")
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    cfg = TrainConfig(epochs=epochs, batch_size=4, schedule="step", milestones=(5,))
    return train(model, split, "gaussian", 0.25, config=cfg, out=str(out), progress=False)


def test_training_state_corrupted_or_restructured_is_refused(tmp_path):
    out = tmp_path / "m.pt"
    tiny_run(out, 1)
    state = tmp_path / "m.pt.state"
    good = state.read_bytes()
    tiny_run(out, 2)  # resumes
    st = torch.load(state, weights_only=True)
    for name, p in corrupt_variants(tmp_path, state):
        state.write_bytes(p.read_bytes())
        with pytest.raises(ValueError, match="delete it to restart") as e:
            tiny_run(out, 3)
        one_line(e, state)
    momentum = {**st["optimizer"], "state": {0: {"momentum_buffer": torch.zeros(5, 5)}}}
    broken = [dict(model={k: v for k, v in st["model"].items() if k != "1.bias"}),  # a missing weight
              dict(model={**st["model"], "1.weight": torch.zeros(2, 2)}),
              dict(model={**st["model"], "1.weight": torch.full((3, 4), float("nan"))}),
              dict(optimizer=momentum),
              dict(optimizer=[]),
              dict(scheduler={"last_epoch": "x"}),
              dict(history=None),
              dict(epochs_done=-1),
              dict(sigma_table=torch.ones(3)),
              dict(format="other")]
    for change in broken:
        state.write_bytes(good)
        tamper(state, **{k: v for k, v in change.items() if v is not None},
               **{k: None for k, v in change.items() if v is None})
        with pytest.raises(ValueError, match="not a smoothcert training state") as e:
            tiny_run(out, 3)
        assert "delete it to restart" in one_line(e, state), change


def sweep_settings():
    return {"c0s": [0.1, 0.2], "base": {"sub_epochs": 2}, "fit": {}, "eval_budget": [1, 2, 0.1, 3],
            "stop_accuracy": None, "scale": None}


def test_fit_sigma_state_corrupted_or_restructured_is_refused(tmp_path):
    settings, path = sweep_settings(), tmp_path / STATE
    p = torch.nn.Parameter(torch.full((1, 2, 2), 0.1))
    opt = torch.optim.Adam([p], lr=0.1)
    p.grad = torch.ones_like(p)
    opt.step()
    good = {"settings": settings, "c0_index": 0, "sub_epoch": 1, "param": p.detach().clone(),
            "adam": opt.state_dict(), "record": [{"c0": 0.1, "sub_epoch": 0}], "done_inputs": 5}
    torch.save(good, path)
    assert _load_state(str(tmp_path), settings, (1, 2, 2))["sub_epoch"] == 1
    raw = path.read_bytes()
    for name, q in corrupt_variants(tmp_path, path):
        path.write_bytes(q.read_bytes())
        with pytest.raises(ValueError, match="delete it to restart the fit") as e:
            _load_state(str(tmp_path), settings, (1, 2, 2))
        one_line(e, path)
    adam_bad = opt.state_dict()
    adam_bad["state"][0]["exp_avg"] = torch.zeros(3)
    for change in ({"param": torch.zeros(3)}, {"param": torch.full((1, 2, 2), float("nan"))}, {"adam": adam_bad},
                   {"adam": None}, {"c0_index": 7}, {"sub_epoch": "1"}, {"record": "x"}, {"done_inputs": None}):
        torch.save({**good, **change} if "done_inputs" not in change else
                   {k: v for k, v in good.items() if k != "done_inputs"}, path)
        with pytest.raises(ValueError, match="not a smoothcert fit-sigma state") as e:
            _load_state(str(tmp_path), settings, (1, 2, 2))
        one_line(e, path)
    path.write_bytes(raw)
    with pytest.raises(ValueError, match="other settings"):
        _load_state(str(tmp_path), {**settings, "c0s": [0.3]}, (1, 2, 2))


def test_training_sigma_selection_corrupted_or_restructured_is_refused(tmp_path):
    path = tmp_path / "m.pt.sigma.pt"
    grid = torch.tensor([0.1, 0.2], dtype=torch.float64)
    choice = torch.tensor([0, 1, 1])
    good = {"format": SELECTION_FORMAT, "config": {"a": 1}, "pretrain_sha256": "s", "done": 3, "grid": grid,
            "choice": choice, "sigma": grid[choice].float(), "best": torch.zeros(3, dtype=torch.float64)}
    torch.save(good, path)
    assert _load_selection(str(path), {"a": 1}, 3, "s")["done"] == 3
    for name, q in corrupt_variants(tmp_path, path):
        with pytest.raises(ValueError, match="delete it to recompute it") as e:
            _load_selection(str(q), {"a": 1}, 3, "s")
        one_line(e, q)
    for change in ({"choice": torch.tensor([0, 1, 2])}, {"sigma": torch.ones(3)}, {"done": 4}, {"grid": [0.1]},
                   {"best": torch.zeros(3)}, {"config": 5}, {"choice": [0, 1, 1]}):
        torch.save({**good, **change}, path)
        with pytest.raises(ValueError, match="not a smoothcert training-set sigma selection") as e:
            _load_selection(str(path), {"a": 1}, 3, "s")
        one_line(e, path)


# ----------------------------------------------------------------- hostile pickles


def hostile_files(tmp_path, marker):
    """A torch file and a bare pickle whose unpickling would run code."""
    import pickle

    a, b = tmp_path / "hostile.pt", tmp_path / "hostile.pkl"
    torch.save({"format": MEMORY_FORMAT, "radii": Hostile(marker)}, a)
    with open(b, "wb") as f:
        pickle.dump({"sigma": Hostile(marker)}, f)
    return [a, b]


def test_hostile_pickles_never_run_through_any_loader(tmp_path):
    marker = str(tmp_path / MARKER)
    loaders = [lambda p: Memory.load(str(p)), lambda p: load_sigma(str(p)),
               lambda p: _load_sigma_table(str(p), 3), lambda p: _load_selection(str(p), {}, 3, None),
               lambda p: load_weights_only(p, "a test file")]
    for p in hostile_files(tmp_path, marker):
        for load in loaders:
            with pytest.raises(ValueError) as e:
                load(p)
            one_line(e, p)
        # The resume states: planted where the run looks for them.
        state_dir = tmp_path / "fit"
        state_dir.mkdir(exist_ok=True)
        (state_dir / STATE).write_bytes(p.read_bytes())
        with pytest.raises(ValueError, match="fit-sigma state"):
            _load_state(str(state_dir), sweep_settings(), (1, 2, 2))
        (tmp_path / "m.pt.state").write_bytes(p.read_bytes())
        with pytest.raises(ValueError, match="training state"):
            tiny_run(tmp_path / "m.pt", 1)
    assert not os.path.exists(marker)
    with pytest.raises(ValueError, match=r"pickles a Python object \(\w+\.open\)"):
        load_weights_only(tmp_path / "hostile.pt", "a test file")
