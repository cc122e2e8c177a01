"""``smoothcert certify`` with the user's own model: a torch.export program, --model-factory plus
--weights, or the zoo; --normalize never implied; the model-loading findings of issue 22."""
import io
import json
import os
import textwrap
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

from smoothcert import Smooth, cli, data, models
from smoothcert.cli import certify as certify_cli

BUDGET = ["--sigma", "0.25", "--n0", "16", "--n", "64", "--batch", "256", "--max", "6", "--no-progress"]
DIGITS_STATS = data.DATASET_STATS["digits"]


class OwnNet(nn.Module):
    """A user's network that normalises inside its own forward (keys match TinyMLP's)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(DIGITS_STATS[0]).reshape(1, 1, 1, 1))
        self.register_buffer("std", torch.tensor(DIGITS_STATS[1]).reshape(1, 1, 1, 1))
        self.net = models.TinyMLP().net

    def forward(self, x):
        return self.net((x - self.mean) / self.std)


FACTORY_SOURCE = textwrap.dedent('''
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.tensor([0.3053]).reshape(1, 1, 1, 1))
            self.register_buffer("std", torch.tensor([0.3760]).reshape(1, 1, 1, 1))
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                                     nn.Linear(256, 10))

        def forward(self, x):
            return self.net((x - self.mean) / self.std)

    def make():
        return Net()
''')


@pytest.fixture(scope="module")
def trained(digits_checkpoint):
    """(checkpoint path, its trained TinyMLP) -- the weights every way in shares."""
    model, _ = models.load_checkpoint(digits_checkpoint)
    return digits_checkpoint, model


def own_net(trained):
    net = OwnNet()
    net.load_state_dict(trained[1][1].state_dict(), strict=False)
    return net.eval()


def run_cli(args, out):
    return cli.main(["certify", *args, "--dataset", "digits", *BUDGET, "--out", out])


def rows(path):
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        return [dict(zip(header, line.rstrip("\n").split("\t"))) for line in f]


def api_radii(model, idx):
    split = data.load_dataset("digits", "test")
    res = Smooth(model.eval(), 10, 0.25, seed=0).certify_batch(split.x[idx], 16, 64, 0.001, 256,
                                                               indices=torch.tensor(idx))
    return [int(p) for p in res.prediction], [float(r) for r in res.radius]


def assert_matches_api(out, model):
    got = rows(out)
    idx = [int(r["idx"]) for r in got]
    assert idx == list(range(6))
    pred, radius = api_radii(model, idx)
    assert [int(r["predict"]) for r in got] == pred
    assert [float(r["radius"]) for r in got] == radius
    assert max(radius) > 0  # a trained model: the comparison is not between abstains


def export(model, path, batch=2):
    ep = torch.export.export(model.eval(), (torch.rand(batch, 1, 8, 8),),
                             dynamic_shapes=({0: torch.export.Dim("batch")},) if batch > 1 else None)
    torch.export.save(ep, str(path))
    return str(path)


def test_export_program_end_to_end_matches_api(trained, tmp_path, capsys):
    net = own_net(trained)
    pt2 = export(net, tmp_path / "own.pt2")
    out = str(tmp_path / "r.tsv")
    assert run_cli(["--model", pt2, "--normalize", "none"], out) == 0
    assert_matches_api(out, net)
    err = capsys.readouterr().err
    assert err.startswith(f"smoothcert certify: model: export program {pt2} (sha256 ")
    assert "normalize none; data: digits/test, 6 inputs" in err.splitlines()[0]
    with open(out + ".json") as f:
        cfg = json.load(f)["config"]
    assert cfg["model_kind"] == "export" and cfg["normalize"] == "none" and len(cfg["model_sha256"]) == 64
    assert len(cfg["data_sha256"]) == 64


def test_factory_end_to_end_matches_api(trained, tmp_path, monkeypatch, capsys):
    (tmp_path / "usernets.py").write_text(FACTORY_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    w = str(tmp_path / "w.pt")
    torch.save(own_net(trained).state_dict(), w)
    out = str(tmp_path / "r.tsv")
    assert run_cli(["--model-factory", "usernets:make", "--weights", w, "--normalize", "none"], out) == 0
    assert_matches_api(out, own_net(trained))
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith(f"smoothcert certify: model: factory usernets:make (weights {w} sha256 ")
    assert "normalize none; data:" in first
    with open(out + ".json") as f:
        cfg = json.load(f)["config"]
    assert cfg["model_kind"] == "factory" and cfg["model_factory"] == "usernets:make"
    assert cfg["weights_sha256"] == models.user_model.sha256_file(w)


def test_factory_imports_from_current_directory_only_for_the_import(trained, tmp_path, monkeypatch):
    (tmp_path / "cwdnets.py").write_text(FACTORY_SOURCE)
    monkeypatch.chdir(tmp_path)
    torch.save(own_net(trained).state_dict(), "w.pt")
    import sys
    before = list(sys.path)
    assert run_cli(["--model-factory", "cwdnets:make", "--weights", "w.pt", "--normalize", "none"], "r.tsv") == 0
    assert sys.path == before


def test_zoo_state_dict_normalize_dataset_equals_checkpoint(trained, tmp_path):
    sd = str(tmp_path / "sd.pt")
    torch.save(trained[1][1].state_dict(), sd)
    a, b = str(tmp_path / "a.tsv"), str(tmp_path / "b.tsv")
    assert run_cli(["--model", sd, "--arch", "mlp", "--normalize", "dataset"], a) == 0
    assert run_cli(["--model", trained[0]], b) == 0
    assert [(r["predict"], r["radius"]) for r in rows(a)] == [(r["predict"], r["radius"]) for r in rows(b)]
    with open(a + ".json") as f:
        cfg = json.load(f)["config"]
    assert cfg["model_kind"] == "zoo-state-dict" and cfg["arch"] == "mlp"
    assert cfg["normalize"] == {"mean": [0.3053], "std": [0.376], "source": "dataset"}


def test_state_dict_without_normalize_refused(trained, tmp_path, capsys):
    """The silent double normalisation: a raw state_dict with --arch no longer gets the dataset's stats unasked."""
    sd = str(tmp_path / "sd.pt")
    torch.save(trained[1][1].state_dict(), sd)
    out = str(tmp_path / "r.tsv")
    assert run_cli(["--model", sd, "--arch", "mlp"], out) == 2
    err = capsys.readouterr().err
    assert "error: --normalize is required" in err and "normalise inside its own forward" in err
    assert not os.path.exists(out)
    pt2 = export(own_net(trained), tmp_path / "m.pt2")
    assert run_cli(["--model", pt2], out) == 2
    assert "--normalize is required for a torch.export program" in capsys.readouterr().err


def test_state_dict_normalize_none_is_bare_network(trained, tmp_path):
    sd = str(tmp_path / "sd.pt")
    torch.save(trained[1][1].state_dict(), sd)
    loaded = models.load_cli_model(model=sd, arch="mlp", factory=None, weights=None, normalize="none",
                                   dataset="digits", input_shape=(1, 8, 8), num_classes=10)
    assert not any(isinstance(m, models.NormalizeLayer) for m in loaded.model.modules())
    mine = models.load_cli_model(model=sd, arch="mlp", factory=None, weights=None, normalize="0.5,0.25",
                                 dataset="digits", input_shape=(1, 8, 8), num_classes=10)
    assert mine.model[0].mean.flatten().tolist() == [0.5] and mine.model[0].std.flatten().tolist() == [0.25]


def test_checkpoint_normalize_must_match_recorded(trained, tmp_path, capsys):
    out = str(tmp_path / "r.tsv")
    assert run_cli(["--model", trained[0], "--normalize", "none"], out) == 2
    err = capsys.readouterr().err
    assert "records its normalisation (mean 0.3053 std 0.376)" in err and "omit --normalize" in err
    assert run_cli(["--model", trained[0], "--normalize", "0.3053,0.376"], out) == 0
    assert "normalize mean 0.3053 std 0.376 (checkpoint)" in capsys.readouterr().err.splitlines()[0]


@pytest.mark.parametrize("spec,mean,std", [("0.1307,0.3081", (0.1307,), (0.3081,)),
                                           ("0.49,0.48,0.45,0.25,0.24,0.26", (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)),
                                           ("dataset", (0.3053,), (0.376,))])
def test_parse_normalize_syntax(spec, mean, std):
    assert models.parse_normalize(spec, "digits") == (mean, std)
    assert models.parse_normalize("none", "digits") is None


@pytest.mark.parametrize("spec,why", [("0.1,0.2,0.3", "even count"), ("0.5,0", "stds > 0"), ("0.5,nan", "finite"),
                                      ("mean", "expected dataset, none or MEAN,STD")])
def test_parse_normalize_refuses(spec, why):
    with pytest.raises(ValueError, match=why):
        models.parse_normalize(spec, "digits")
    with pytest.raises(ValueError, match="2 channel"):
        models.parse_normalize("0.1,0.2,0.3,0.4", "digits", channels=3)


def test_whole_pickled_model_refused_with_the_three_ways(tmp_path, capsys):
    whole = str(tmp_path / "whole.pt")
    torch.save(models.build_model("mlp", "digits"), whole)
    assert run_cli(["--model", whole, "--normalize", "none"], str(tmp_path / "r.tsv")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "never unpickles" in err
    assert "torch.export" in err and "--model-factory" in err and "--arch" in err
    assert "weights_only=False" not in err and "weights_only" not in err
    with pytest.raises(ValueError) as e:
        models.load_checkpoint(whole)
    assert "weights_only=False" not in str(e.value) and "never unpickles" in str(e.value)


def test_state_dict_of_other_arch_one_line_error(trained, tmp_path, capsys):
    sd = str(tmp_path / "sd.pt")
    torch.save(trained[1][1].state_dict(), sd)
    assert run_cli(["--model", sd, "--arch", "smallconv", "--normalize", "dataset"], str(tmp_path / "r.tsv")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{sd}: weights do not fit --arch smallconv: missing keys ['net.0.weight', 'net.0.bias'" in err
    assert "unexpected keys ['net.1.weight', 'net.1.bias'" in err
    assert run_cli(["--model", sd, "--arch", "lenet", "--normalize", "dataset"], str(tmp_path / "r.tsv")) == 2
    assert "error: --arch lenet for digits inputs [1, 8, 8]: LeNet needs inputs of at least 12x12" in \
        capsys.readouterr().err
    small = str(tmp_path / "small.pt")
    torch.save(models.ARCHITECTURES["mlp10"](10, 1, (8, 8)).state_dict(), small)
    assert run_cli(["--model", small, "--arch", "mlp", "--normalize", "dataset"], str(tmp_path / "r.tsv")) == 2
    assert "shape mismatch at 'net.1.weight': [10, 64] in the file, [256, 64] in the model" in capsys.readouterr().err


def test_not_a_checkpoint_error_uses_cli_words(tmp_path, capsys):
    p = str(tmp_path / "sd.pt")
    torch.save({"epoch": 3, "weights": [1, 2]}, p)
    assert run_cli(["--model", p, "--normalize", "none"], str(tmp_path / "r.tsv")) == 2
    err = capsys.readouterr().err
    assert "not a smoothcert checkpoint" in err and "--arch" in err and "--model-factory" in err
    assert "--normalize" in err and "arch=" not in err and "dataset=" not in err
    sd = str(tmp_path / "raw.pt")
    torch.save(models.build_model("mlp", "digits")[1].state_dict(), sd)
    assert run_cli(["--model", sd], str(tmp_path / "r.tsv")) == 2
    err = capsys.readouterr().err
    assert "pass --arch NAME (zoo: lenet, mlp" in err and "arch=" not in err


def test_empty_checkpoint_file_has_a_reason(tmp_path, capsys):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    assert run_cli(["--model", str(empty)], str(tmp_path / "r.tsv")) == 2
    assert f"error: {empty}: file is empty (0 bytes)" in capsys.readouterr().err
    with pytest.raises(ValueError, match="file is empty"):
        models.load_checkpoint(empty)
    with pytest.raises(ValueError, match="file is empty"):
        models.checkpoint_info(empty)


@pytest.mark.parametrize("case", ["no-gpu", "no-cuda-build"])
def test_device_cuda_on_cpu_build_blames_the_device(tmp_path, capsys, monkeypatch, case):
    from smoothcert import ops

    monkeypatch.setattr(torch.cuda, "is_available", lambda: case == "no-cuda-build")
    monkeypatch.setattr(ops, "cuda_version", lambda: -1)
    missing = str(tmp_path / "not-there.pt")  # checked before any file is opened
    assert run_cli(["--model", missing, "--device", "cuda"], str(tmp_path / "r.tsv")) == 2
    err = capsys.readouterr().err
    assert "error: --device cuda:" in err and "not-there" not in err
    assert ("torch.cuda.is_available() is False" if case == "no-gpu" else "built without CUDA") in err


def test_skip_zero_is_a_usage_error(trained, tmp_path, capsys):
    assert run_cli(["--model", trained[0], "--skip", "0"], str(tmp_path / "r.tsv")) == 2
    assert "smoothcert certify: error: --skip must be >= 1" in capsys.readouterr().err


def test_max_zero_is_an_error_and_writes_nothing(trained, tmp_path, capsys):
    out = str(tmp_path / "r.tsv")
    args = ["certify", "--model", trained[0], "--dataset", "digits", "--sigma", "0.25", "--max", "0", "--out", out]
    assert cli.main(args) == 2
    assert "error: no inputs selected" in capsys.readouterr().err
    assert not os.path.exists(out) and not os.path.exists(out + ".json")


def test_out_directory_refused(trained, tmp_path, capsys):
    assert run_cli(["--model", trained[0]], str(tmp_path)) == 2
    assert "is a directory" in capsys.readouterr().err


def test_checkpoint_of_other_dataset_refused_up_front(trained, tmp_path, capsys):
    out = str(tmp_path / "r.tsv")
    assert cli.main(["certify", "--model", trained[0], "--dataset", "swiss-roll", *BUDGET, "--out", out]) == 2
    err = capsys.readouterr().err
    assert "the model was trained on digits (inputs [1, 8, 8], 10 classes), but swiss-roll/test has inputs " \
           "[1, 1, 2]" in err
    assert not os.path.exists(out)
    # same shape and classes, another dataset: a note, not an error
    npz = str(tmp_path / "d.npz")
    split = data.load_dataset("digits", "test")
    np.savez(npz, x=split.x[:8].numpy(), y=split.y[:8].numpy(), num_classes=10)
    assert cli.main(["certify", "--model", trained[0], "--dataset", "npz", "--data-root", npz, *BUDGET,
                     "--out", out]) == 0
    assert "note: model was trained on digits, certifying on npz" in capsys.readouterr().err


def test_export_output_shape_checked_with_both_shapes(tmp_path, capsys):
    seven = nn.Sequential(nn.Flatten(), nn.Linear(64, 7))
    pt2 = export(seven, tmp_path / "seven.pt2")
    assert run_cli(["--model", pt2, "--normalize", "none"], str(tmp_path / "r.tsv")) == 2
    err = capsys.readouterr().err
    assert "output is [1, 7] for one input [1, 1, 8, 8]" in err and "10 classes" in err
    pt2 = export(_Twice(), tmp_path / "image.pt2")
    assert run_cli(["--model", pt2, "--normalize", "none"], str(tmp_path / "r.tsv")) == 2
    assert "maps inputs [1, 1, 8, 8] to [1, 1, 8, 8]; expected logits [1, 10]" in capsys.readouterr().err


class _Twice(nn.Module):
    def forward(self, x):
        return 2 * x


def test_export_with_static_batch_refused_with_hint(trained, tmp_path, capsys):
    pt2 = export(own_net(trained), tmp_path / "static.pt2", batch=1)
    assert run_cli(["--model", pt2, "--normalize", "none"], str(tmp_path / "r.tsv")) == 2
    err = capsys.readouterr().err
    assert "fails on a batch of 2 input(s)" in err and "dynamic batch dimension" in err


def _rewrite(src, dst, change):
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_STORED) as out:
        for name in z.namelist():
            out.writestr(name, change(name, z.read(name)))
    return str(dst)


class _Plant:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("attack", ["sample-inputs-pickle", "graph-callable", "pickled-weight", "compiled-code"])
def test_hostile_export_program_never_runs_code(trained, tmp_path, capsys, attack):
    """torch.export.load (torch 2.13) would unpickle these or call the planted target; they are refused first."""
    good = export(own_net(trained), tmp_path / "good.pt2")
    marker = str(tmp_path / "PLANTED")
    buf = io.BytesIO()
    torch.save(_Plant(marker), buf)

    def change(name, blob):
        if attack == "sample-inputs-pickle" and name.endswith("data/sample_inputs/model.pt"):
            return buf.getvalue()
        if attack == "graph-callable" and name.endswith("models/model.json"):
            return blob.replace(b'"torch.ops.aten.relu.default"', b'"torch.os.system"')
        if attack == "pickled-weight" and name.endswith("model_weights_config.json"):
            return blob.replace(b'"use_pickle": false', b'"use_pickle": true', 1)
        return blob

    bad = _rewrite(good, tmp_path / "bad.pt2", change)
    if attack == "compiled-code":
        with zipfile.ZipFile(bad, "a") as z:
            z.writestr("good/data/aotinductor/model/model.so", b"\x7fELF")
    assert run_cli(["--model", bad, "--normalize", "none"], str(tmp_path / "r.tsv")) == 2
    err = capsys.readouterr().err
    assert "export program refused" in err and err.count("\n") == 1
    assert not os.path.exists(marker)


def test_factory_errors_are_one_line(trained, tmp_path, monkeypatch, capsys):
    (tmp_path / "usernets2.py").write_text(FACTORY_SOURCE + "\nnot_callable = 3\ndef broken():\n    return 5\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    w = str(tmp_path / "w.pt")
    torch.save(own_net(trained).state_dict(), w)
    whole = str(tmp_path / "whole.pt")
    torch.save(OwnNet(), whole)
    out = str(tmp_path / "r.tsv")
    cases = [
        (["--model-factory", "usernets2", "--weights", w, "--normalize", "none"], "expected module:function"),
        (["--model-factory", "nosuchmod_xyz:make", "--weights", w, "--normalize", "none"], "cannot import"),
        (["--model-factory", "usernets2:nothing", "--weights", w, "--normalize", "none"], "has no attribute"),
        (["--model-factory", "usernets2:not_callable", "--weights", w, "--normalize", "none"], "not callable"),
        (["--model-factory", "usernets2:broken", "--weights", w, "--normalize", "none"], "returned int"),
        (["--model-factory", "usernets2:make", "--normalize", "none"], "needs --weights"),
        (["--model-factory", "usernets2:make", "--weights", w], "--normalize is required"),
        (["--model-factory", "usernets2:make", "--weights", whole, "--normalize", "none"], "never unpickles"),
        (["--model-factory", "usernets2:make", "--weights", trained[0], "--normalize", "none"],
         "is a smoothcert checkpoint"),
        (["--model", w, "--weights", w, "--normalize", "none"], "--weights goes with --model-factory"),
    ]
    for args, why in cases:
        assert run_cli(args, out) == 2, args
        err = capsys.readouterr().err
        assert why in err and err.count("\n") == 1, (args, err)


def test_resume_with_other_data_refused(trained, tmp_path, capsys):
    split = data.load_dataset("digits", "test")
    npz = str(tmp_path / "d.npz")
    x, y = split.x[:8].numpy().copy(), split.y[:8].numpy()
    np.savez(npz, x=x, y=y, num_classes=10)
    out = str(tmp_path / "r.tsv")
    args = ["certify", "--model", trained[0], "--dataset", "npz", "--data-root", npz, *BUDGET, "--out", out]
    assert cli.main(args) == 0
    x[3, 0, 4, 4] = 1.0 - x[3, 0, 4, 4]  # one altered pixel
    np.savez(npz, x=x, y=y, num_classes=10)
    capsys.readouterr()
    assert cli.main(args) == 2
    assert "data_sha256" in capsys.readouterr().err


def test_python_api_raw_state_dict_needs_normalize(trained, tmp_path):
    sd = tmp_path / "sd.pt"
    torch.save(trained[1][1].state_dict(), sd)
    with pytest.raises(ValueError, match="normalize="):
        models.load_checkpoint(sd, arch="mlp", dataset="digits")
    bare, _ = models.load_checkpoint(sd, arch="mlp", dataset="digits", normalize="none")
    assert isinstance(bare, models.TinyMLP)
    full, _ = models.load_checkpoint(sd, arch="mlp", dataset="digits", normalize="dataset")
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(full(x), trained[1](x))
    with pytest.raises(ValueError, match="records its normalisation"):
        models.load_checkpoint(trained[0], normalize="none")
    assert models.load_checkpoint(trained[0], normalize="dataset")[1]["arch"] == "mlp"


def test_model_help_lists_zoo_and_explains_options():
    from smoothcert.cli.main import build_parser

    sub = build_parser()._subparsers._group_actions[0].choices["certify"]
    by_dest = {a.dest: a for a in sub._actions}
    for dest in ("model", "arch", "model_factory", "weights", "normalize", "dataset", "split", "device", "no_progress"):
        assert by_dest[dest].help and "(default" not in by_dest[dest].help, dest  # the formatter adds defaults
    flat = " ".join(sub.format_help().split())
    for arch in models.ARCHITECTURES:
        assert arch in flat
    assert "--normalize dataset|none|MEAN,STD" in flat
    assert certify_cli.check_device("cpu") == torch.device("cpu")


class _ShapeArithmetic(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        b = x.shape[0]
        return self.fc(x.reshape(b * 2, -1)).reshape(b, 2, 10).sum(1)


def test_export_with_shape_arithmetic_loads(tmp_path):
    """Symbolic-shape nodes (operator.mul on the batch size) are plain arithmetic, not refused."""
    net = _ShapeArithmetic().eval()
    pt2 = export(net, tmp_path / "sym.pt2")
    with open(pt2, "rb") as f:
        loaded = models.load_exported(pt2, f.read())
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
