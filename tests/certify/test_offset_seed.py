"""DSSN's offset vector has its own seed (``offset_seed``, ``--offset-seed``); ``seed`` is the
Philox key, which DSSN (no random draws) refuses rather than silently ignores."""
import warnings

import pytest
import torch

from smoothcert import cli
from smoothcert.certify import SplitSmooth

from helpers import LinearClassifier


def _model():
    return LinearClassifier(torch.linspace(-1, 1, 16))


def test_offset_seed_keys_the_offset_vector():
    X = (torch.arange(32).view(2, 16) % 17).float() / 16
    a = SplitSmooth(_model(), 2, 0.5, q=16, offset_seed=3).certify_batch(X)
    with pytest.warns(FutureWarning, match="offset_seed="):
        legacy = SplitSmooth(_model(), 2, 0.5, q=16, seed=3).certify_batch(X)
    assert a.offset_seed == legacy.offset_seed == 3 and torch.equal(a.counts, legacy.counts)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SplitSmooth(_model(), 2, 0.5, q=16).certify_batch(X)  # no seed given: no warning


def test_seed_and_offset_seed_are_refused_where_they_do_not_apply():
    with pytest.raises(ValueError, match="DSSN draws no random noise"):
        SplitSmooth(_model(), 2, 0.5, q=16, seed=5, offset_seed=3)
    with pytest.raises(ValueError, match="randomized SSN draws its noise from seed"):
        SplitSmooth(_model(), 2, 0.5, q=16, deterministic=False, offset_seed=3)
    with pytest.raises(ValueError, match=r"seed must lie in \[0, 2\^64\)"):
        SplitSmooth(_model(), 2, 0.5, q=16, offset_seed=1 << 64)


def test_cli_refuses_seed_for_dssn_and_offset_seed_for_ssn(digits_checkpoint, tmp_path, capsys):
    base = ["certify", "--model", digits_checkpoint, "--dataset", "digits", "--sigma", "0.5", "--max", "3",
            "--no-progress"]
    assert cli.main(base + ["--noise", "dssn", "--q", "16", "--seed", "7", "--out", str(tmp_path / "a.tsv")]) == 2
    assert "--seed (the Philox key) does not apply" in capsys.readouterr().err
    assert cli.main(base + ["--noise", "ssn", "--offset-seed", "2", "--out", str(tmp_path / "b.tsv")]) == 2
    assert "--offset-seed belong to --noise dssn" in capsys.readouterr().err
    assert cli.main(base + ["--noise", "dssn", "--q", "16", "--offset-seed", "2", "--n", "10", "--n0", "2",
                            "--out", str(tmp_path / "c.tsv")]) == 0
