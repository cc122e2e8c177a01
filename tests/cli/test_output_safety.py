"""Result files are never destroyed, failed runs never poison their ``--out``, two runs never
share one file, and duplicated or impossible rows are caught (by ``certify`` on resume and by
``analyze``)."""
import fcntl
import json
import os
import shutil

import pytest
import torch

from smoothcert import cli
from smoothcert.certify import FAMILIES, Budget, Smooth
from smoothcert.drivers import certify_dataset
from smoothcert.drivers.dataset import lock_path
from smoothcert.cli import analyze as analyze_cli

from helpers import LinearClassifier


def certify_args(ckpt, out, *extra, n="200", maximum="6"):
    return ["certify", "--model", ckpt, "--dataset", "digits", "--sigma", "0.25", "--n0", "20", "--n", n,
            "--batch", "256", "--skip", "2", "--max", maximum, "--out", out, "--no-progress", *extra]


def listing(d):
    return sorted(os.listdir(d))


def snapshot(path):
    with open(path, "rb") as f:
        return f.read()


# ------------------------------------------------------------------ --out that is not ours


def _not_a_result(kind, tmp_path, ckpt):
    if kind == "checkpoint":  # the easy tab-completion slip: --out is the model itself
        p = tmp_path / "model.pt"
        shutil.copy(ckpt, p)
        return str(p), str(p)
    p = tmp_path / f"{kind}.out"
    if kind == "binary":
        p.write_bytes(bytes(range(256)) * 8 + b"\x80\x81\n\xff")
    elif kind == "text":
        p.write_text("first line\nsecond line\nlast line without newline")
    elif kind == "header-without-sidecar":  # looks like ours, but nothing says it is this run's
        p.write_text("idx\tlabel\tpredict\tradius\tcorrect\ttime\tcount_a\tn\tpa_lower\tsigma\tcertificate\tnorm\n"
                     "0\t1\t1\t0.5\t1\t0.1\t90\t100\t0.8\t0.25\tfixed-sigma\tl2\n2\t3\t3\t0.")
    return ckpt, str(p)


@pytest.mark.parametrize("kind", ["checkpoint", "binary", "text", "header-without-sidecar"])
def test_out_that_is_not_a_result_is_left_untouched(kind, digits_checkpoint, tmp_path, capsys):
    model, out = _not_a_result(kind, tmp_path, digits_checkpoint)
    before, files = snapshot(out), listing(tmp_path)
    assert cli.main(certify_args(model, out)) == 2
    err = capsys.readouterr().err
    assert "smoothcert certify: error:" in err and out in err and "untouched" in err
    assert snapshot(out) == before
    assert listing(tmp_path) == files  # no sidecar, no lock file left behind


def test_samplewise_out_and_stage_that_are_not_results_are_left_untouched(digits_checkpoint, tmp_path, capsys):
    # The transductive path replaces out atomically at the end: it must be proven ours first too.
    text = tmp_path / "notes.txt"
    text.write_text("my notes\nkeep me")
    sw = ["--sigma-mode", "samplewise", "--sigma-min", "0.1", "--sigma-max", "0.6", "--select-samples", "16"]
    for out, extra in ((str(text), []), (str(tmp_path / "s.tsv"), ["--stage", str(text)])):
        files = listing(tmp_path)
        assert cli.main(certify_args(digits_checkpoint, out, *sw, *extra)) == 2
        assert "untouched" in capsys.readouterr().err
        assert text.read_text() == "my notes\nkeep me" and listing(tmp_path) == files


def test_out_directory_is_refused(digits_checkpoint, tmp_path, capsys):
    assert cli.main(certify_args(digits_checkpoint, str(tmp_path))) == 2
    err = capsys.readouterr().err
    assert "is a directory" in err and "Traceback" not in err
    assert listing(tmp_path) == []


# ------------------------------------------------------------------ a failed run writes nothing


@pytest.mark.parametrize("option,value,message", [("--alpha", "0", "alpha"), ("--n", "0", "n must be"),
                                                  ("--n0", "0", "n0"), ("--batch", "0", "batch_size")])
def test_bad_budget_writes_nothing_and_the_corrected_run_works(option, value, message, digits_checkpoint,
                                                                tmp_path, capsys):
    out = str(tmp_path / "r.tsv")
    args = certify_args(digits_checkpoint, out)
    if option in args:
        args[args.index(option) + 1] = value
    else:
        args += [option, value]
    assert cli.main(args) == 2  # --n 0 was a ZeroDivisionError (group size before the budget check)
    err = capsys.readouterr().err
    assert message in err and "ZeroDivision" not in err
    assert listing(tmp_path) == []
    assert cli.main(certify_args(digits_checkpoint, out)) == 0


def test_run_failing_in_its_first_group_leaves_nothing(tmp_path):
    smooth = Smooth(LinearClassifier(torch.linspace(-1, 1, 4)), 2, 0.5, seed=0)
    x = torch.rand(4, 4)
    x[0, 1] = float("nan")  # refused inside certify_group, after every up-front check
    with pytest.raises(ValueError):
        certify_dataset(smooth, x, torch.zeros(4, dtype=torch.long), [0, 1], n0=8, n=64, alpha=0.01,
                        batch_size=128, out=str(tmp_path / "r.tsv"), config={}, progress=False)
    assert listing(tmp_path) == []


def test_file_without_rows_never_blocks_a_rerun(digits_checkpoint, tmp_path):
    out = str(tmp_path / "r.tsv")
    assert cli.main(certify_args(digits_checkpoint, out)) == 0
    with open(out) as f:
        header = f.readline()
    # header only (the rows lost), then missing: another configuration replaces the stale sidecar
    for n, leave in (("300", header), ("400", None)):
        if leave is None:
            os.remove(out)
        else:
            with open(out, "w") as f:
                f.write(leave)
        assert cli.main(certify_args(digits_checkpoint, out, n=n)) == 0
        with open(out + ".json") as f:
            assert json.load(f)["config"]["n"] == int(n)
        with open(out) as f:
            assert len(f.readlines()) == 4  # header + idx 0, 2, 4


def test_samplewise_stage_without_rows_never_blocks_a_rerun(digits_checkpoint, tmp_path):
    out = str(tmp_path / "s.tsv")
    sw = ["--sigma-mode", "samplewise", "--sigma-min", "0.1", "--sigma-max", "0.6", "--select-samples", "16"]
    assert cli.main(certify_args(digits_checkpoint, out, *sw)) == 0
    stage = out + ".stage.tsv"
    with open(stage) as f:
        header = f.readline()
    with open(stage, "w") as f:
        f.write(header)
    os.remove(out)
    assert cli.main(certify_args(digits_checkpoint, out, *sw, n="300")) == 0
    with open(stage + ".json") as f:
        assert json.load(f)["config"]["n"] == 300
    with open(out + ".json") as f:
        assert json.load(f)["config"]["n"] == 300


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_validates_its_budget(name):
    import argparse

    from smoothcert.certify.family import add_family_arguments

    p = argparse.ArgumentParser()
    add_family_arguments(p, list(FAMILIES.values()))
    args = p.parse_args([])
    args.sigma, args.seed = 0.5, 3
    fam = FAMILIES[name].from_args(args, LinearClassifier(torch.linspace(-1, 1, 16)), 2, {}, None)
    fam.validate(Budget(n0=8, n=64, alpha=0.01, batch_size=128))
    with pytest.raises(ValueError, match="batch_size"):
        fam.validate(Budget(n0=8, n=64, alpha=0.01, batch_size=0))
    if name != "dssn":  # DSSN is exact: n0, n and alpha do not apply
        for bad in (Budget(n=0), Budget(n0=0), Budget(alpha=0.0), Budget(alpha=1.5)):
            with pytest.raises(ValueError):
                fam.validate(bad)


def test_wrapper_families_validate_through_their_base():
    from smoothcert.certify.ddrs import DataDependentSmooth
    from smoothcert.certify.samplewise import SampleWiseSmooth

    base = Smooth(LinearClassifier(torch.linspace(-1, 1, 4)), 2, 0.5, seed=0)
    for fam in (DataDependentSmooth(base), SampleWiseSmooth(base, [0.25, 0.5])):
        with pytest.raises(ValueError, match="alpha"):
            fam.validate(Budget(alpha=0.0))


# ------------------------------------------------------------------ two runs, one file


def test_second_run_on_a_locked_out_is_refused(digits_checkpoint, tmp_path, capsys):
    out = str(tmp_path / "r.tsv")
    fd = os.open(lock_path(out), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, b"4242\n")
        assert cli.main(certify_args(digits_checkpoint, out)) == 2
        err = capsys.readouterr().err
        assert "being written by another run" in err and out in err and "4242" in err
        assert not os.path.exists(out) and not os.path.exists(out + ".json")
    finally:
        os.close(fd)
    assert cli.main(certify_args(digits_checkpoint, out)) == 0
    assert not os.path.exists(lock_path(out))  # released and removed on exit


def test_stale_lock_file_is_taken_over_and_a_foreign_one_kept(digits_checkpoint, tmp_path, capsys):
    out = str(tmp_path / "r.tsv")
    with open(lock_path(out), "w") as f:  # a killed run's: the kernel released its flock
        f.write("99999\n")
    assert cli.main(certify_args(digits_checkpoint, out)) == 0
    assert not os.path.exists(lock_path(out))
    other = str(tmp_path / "o.tsv")
    with open(lock_path(other), "w") as f:
        f.write("a file of the user's\n")
    assert cli.main(certify_args(digits_checkpoint, other)) == 2
    assert "not a smoothcert lock file" in capsys.readouterr().err
    with open(lock_path(other)) as f:
        assert f.read() == "a file of the user's\n"


def test_duplicated_idx_is_refused_on_resume(digits_checkpoint, tmp_path, capsys):
    out = str(tmp_path / "r.tsv")
    assert cli.main(certify_args(digits_checkpoint, out, maximum="4")) == 0
    with open(out) as f:
        lines = f.readlines()
    with open(out, "a") as f:  # what two runs appending to one file leave behind
        f.write(lines[2])
    before = snapshot(out)
    assert cli.main(certify_args(digits_checkpoint, out, maximum="4")) == 2
    err = capsys.readouterr().err
    assert "idx 2 appears twice" in err and out in err
    assert snapshot(out) == before


# ------------------------------------------------------------------ analyze


HEADER = "idx\tlabel\tpredict\tradius\tcorrect\ttime\tcount_a\tn\tpa_lower\tsigma\tcertificate\tnorm"


def write_tsv(path, rows):
    lines = [HEADER] + [f"{i}\t{lab}\t{pred}\t{rad}\t{int(pred == lab)}\t0.1\t90\t100\t0.8\t0.25\tfixed-sigma\tl2"
                        for i, lab, pred, rad in rows]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize("radius", ["nan", "inf", "-1", "-0.5"])
def test_analyze_refuses_impossible_radius(radius, tmp_path, capsys):
    p = write_tsv(tmp_path / "r.tsv", [(0, 3, 3, 0.5), (1, 2, 2, radius), (2, 1, -1, 0.0)])
    assert analyze_cli.main([p]) == 2
    err = capsys.readouterr().err
    assert p in err and "line 3" in err and "radius" in err and repr(float(radius)) in err
    assert "ACR" not in capsys.readouterr().out


def test_analyze_accepts_abstained_rows(tmp_path, capsys):
    p = write_tsv(tmp_path / "r.tsv", [(0, 3, 3, 0.5), (1, 2, -1, 0.0), (2, 1, 4, 0.3)])
    assert analyze_cli.main([p]) == 0
    assert "nan" not in capsys.readouterr().out.lower()


def test_analyze_reports_duplicated_idx(tmp_path, capsys):
    p = write_tsv(tmp_path / "r.tsv", [(0, 3, 3, 0.5), (1, 2, 2, 0.25), (0, 3, 3, 0.5), (7, 1, 1, 0.1),
                                       (1, 2, 2, 0.25)])
    assert analyze_cli.main([p]) == 2
    err = capsys.readouterr().err
    assert p in err and "2 duplicated idx" in err and "idx 0 (lines 2, 4)" in err and "idx 1 (lines 3, 6)" in err


def test_analyze_refuses_a_bad_radius_in_another_view(tmp_path, capsys):
    p = tmp_path / "v.tsv"
    p.write_text("idx\tlabel\tpredict\tradius\tcorrect\ttime\tdd_predict\tdd_radius\n"
                 "0\t1\t1\t0.5\t1\t0.1\t1\t0.7\n1\t2\t-1\t0.0\t0\t0.1\t2\tinf\n")
    assert analyze_cli.main([str(p)]) == 2
    assert "dd_radius" in capsys.readouterr().err


def test_metrics_never_return_nan():
    from smoothcert.analysis import average_certified_radius, certified_accuracy

    # an abstained row's radius is never counted; a certified-correct NaN is refused
    assert average_certified_radius([0.5, float("nan")], [1, 0]) == 0.25
    with pytest.raises(ValueError, match="finite"):
        average_certified_radius([0.5, float("nan")], [1, 1])
    with pytest.raises(ValueError, match="finite"):
        certified_accuracy([-1.0], [1], [0.0])
