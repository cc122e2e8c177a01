"""The smoothcert command: certify (TSV format, resume), analyze, demo, and the bench smoke run."""
import json
import os
import subprocess
import sys

import pytest

from helpers import rows_without_time
from smoothcert import cli, data, models

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def checkpoint(digits_checkpoint):
    return digits_checkpoint


def certify_args(ckpt, out, extra=()):
    return ["certify", "--model", ckpt, "--dataset", "digits", "--sigma", "0.25", "--n0", "20", "--n", "300",
            "--batch", "256", "--skip", "3", "--max", "30", "--out", out, "--no-progress", *extra]


def test_certify_tsv_format(checkpoint, tmp_path):
    out = str(tmp_path / "r.tsv")
    assert cli.main(certify_args(checkpoint, out)) == 0
    rows = rows_without_time(out)
    with open(out) as f:
        header = f.readline().rstrip("\n").split("\t")
    assert header[:6] == ["idx", "label", "predict", "radius", "correct", "time"]
    assert [int(r[0]) for r in rows[1:]] == list(range(0, 30, 3))
    split = data.load_dataset("digits", "test")
    for r in rows[1:]:
        idx, label, pred, radius = int(r[0]), int(r[1]), int(r[2]), float(r[3])
        assert label == int(split.y[idx])
        assert radius >= 0 and (pred != -1 or radius == 0.0)
        assert r[-2:] == ["fixed-sigma", "l2"]
        # written with repr: reading back gives the exact double
        assert repr(float(r[3])) == r[3]
    with open(out + ".json") as f:
        assert json.load(f)["config"]["n"] == 300


def test_certify_resume_matches_uninterrupted(checkpoint, tmp_path):
    full, part = str(tmp_path / "full.tsv"), str(tmp_path / "part.tsv")
    assert cli.main(certify_args(checkpoint, full)) == 0
    assert cli.main(certify_args(checkpoint, part)) == 0
    with open(part) as f:
        lines = f.readlines()
    with open(part, "w") as f:  # an interruption: 4 complete rows and half of the next
        f.writelines(lines[:5])
        f.write(lines[5][:7])
    assert cli.main(certify_args(checkpoint, part)) == 0
    assert rows_without_time(part) == rows_without_time(full)


def test_certify_refuses_other_configuration(checkpoint, tmp_path, capsys):
    out = str(tmp_path / "r.tsv")
    assert cli.main(certify_args(checkpoint, out)) == 0
    args = certify_args(checkpoint, out)
    args[args.index("--n") + 1] = "400"
    assert cli.main(args) == 2
    assert "different configuration" in capsys.readouterr().err


def test_certify_refuses_other_model(checkpoint, tmp_path, capsys):
    out = str(tmp_path / "r.tsv")
    assert cli.main(certify_args(checkpoint, out)) == 0
    other = str(tmp_path / "other.pt")
    models.save_checkpoint(other, models.build_model("mlp", "digits"), arch="mlp", dataset="digits")
    assert cli.main(certify_args(other, out)) == 2
    assert "model_sha256" in capsys.readouterr().err


def test_certify_missing_data_root(checkpoint, tmp_path, capsys):
    args = certify_args(checkpoint, str(tmp_path / "r.tsv"))
    args[args.index("digits")] = "mnist"
    assert cli.main(args) == 2
    assert "data-root" in capsys.readouterr().err


def test_analyze_cli(checkpoint, tmp_path, capsys):
    out = str(tmp_path / "r.tsv")
    assert cli.main(certify_args(checkpoint, out)) == 0
    png = str(tmp_path / "curve.png")
    assert cli.main(["analyze", out, "--plot", png]) == 0
    text = capsys.readouterr().out
    assert "ACR" in text and "fixed-sigma" in text
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_demo_small(tmp_path):
    out = str(tmp_path / "demo")
    assert cli.main(["demo", "--out", out, "--n", "200", "--max", "12", "--epochs", "2", "--no-progress"]) == 0
    for name in ["summary.md", "certified_accuracy.png", "certify_sigma0.25.tsv", "certify_sigma0.5.tsv"]:
        assert os.path.getsize(os.path.join(out, name)) > 0
    with open(os.path.join(out, "summary.md")) as f:
        assert "fixed-sigma" in f.read()


@pytest.mark.parametrize("bench", ["certify", "memory", "anisotropic", "second_order", "regions", "distributed", "train"])
def test_bench_quick_runs(tmp_path, bench):
    out = str(tmp_path / "bench.json")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "bench", bench + ".py"), "--quick", "--device", "cpu",
                           "--json", out], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with open(out) as f:
        res = json.load(f)["results"]
    if bench == "certify":
        assert {r["case"] for r in res} >= {"tiny-mlp-8x8", "lenet-mnist"}
        for r in res:
            assert r["overhead"] > 0 and r["speedup"] > 0
    elif bench == "memory":
        assert res["ball_margin"][0]["naive_over_kernel"] > 0 and res["optimize_sigma"][0]["optimize_over_certify"] > 0
    elif bench == "regions":
        assert res[0]["edges"] > 0 and res[0]["numpy_over_smoothcert"] > 0 and res[0]["lp_constraints"] > 0
    elif bench == "train":
        assert res[0]["fused_over_plain_throughput"] > 0 and res[0]["examples"] == 512
    elif bench == "distributed":  # K = 2 wrote the one-process rows (the bench checks it)
        assert [r["procs"] for r in res] == [1, 2] and all(r["efficiency"] > 0 for r in res)
    elif bench == "second_order":
        r = res["second_order"][0]
        assert r["sos_over_first_order"] > 0 and r["dipole_over_plain_throughput"] > 0
    else:
        assert res["noise_path"][0]["per_element_over_scalar"] > 0 and res["optimiser_step"][0]["plain_over_fused"] > 0
