"""The smoothing-family interface: every registered family implements it, and a new
family is one class plus its registration (the runner and CLI need nothing else)."""
import argparse

import pytest
import torch

from smoothcert import certify, cli, data, models
from smoothcert.certify import FAMILIES, Budget, Smooth, SmoothingFamily, register_family
from smoothcert.drivers import certify_dataset
from smoothcert.drivers.dataset import PREFIX, header_of, read_rows
from smoothcert.train import train_gaussian

from helpers import LinearClassifier


@pytest.mark.parametrize("name", ["gaussian", "uniform", "ssn", "dssn"])
def test_families_certify_through_the_interface(name, tmp_path):
    clf = LinearClassifier(torch.linspace(-1, 1, 16))
    p = argparse.ArgumentParser()
    certify.family.add_family_arguments(p, list(FAMILIES.values()))
    args = p.parse_args([])
    args.sigma, args.seed = 0.5, 3
    fam = FAMILIES[name].from_args(args, clf, 2, {}, None)
    x = (torch.arange(5 * 16).view(5, 16) % 17).float() / 255.0  # on the 1/255 grid, inside [0, 1]
    y = torch.tensor([1, 0, 1, 0, 1])
    out = str(tmp_path / f"{name}.tsv")
    certify_dataset(fam, x, y, [0, 2, 4], budget=Budget(n0=8, n=64, alpha=0.01, batch_size=128), out=out,
                    config={"test": name}, progress=False)
    rows = read_rows(out, header_of(fam))
    assert [int(r["idx"]) for r in rows] == [0, 2, 4]
    assert header_of(fam)[:6] == PREFIX and rows[0]["norm"] == fam.NORM


class _Antithetic(Smooth):
    """A family defined outside the package: Gaussian votes on antithetic pairs (a noise
    kind of the engine), with one more column."""

    NOISE = "antithetic-gaussian"

    def column_types(self):
        return {**super().column_types(), "pairs": int}

    def certify_group(self, X, ids, budget):
        res = super().certify_group(X, ids, budget)
        fields = res.fields
        res.fields = lambda k: fields(k) + [budget.n // 2]
        return res


@pytest.fixture
def antithetic_family():
    register_family("test-antithetic-gaussian")(_Antithetic)
    yield
    FAMILIES.pop("test-antithetic-gaussian")


def test_a_new_family_is_one_class_plus_registration(tmp_path, antithetic_family):
    path = str(tmp_path / "mlp.pt")
    model = models.build_model("mlp", "digits")
    train_gaussian(model, data.load_dataset("digits", "train"), 0.25, epochs=1, progress=False)
    models.save_checkpoint(path, model, arch="mlp", dataset="digits", meta={})
    out = str(tmp_path / "r.tsv")
    argv = ["certify", "--model", path, "--dataset", "digits", "--sigma", "0.25", "--noise",
            "test-antithetic-gaussian", "--n0", "10", "--n", "40", "--max", "6", "--skip", "3", "--out", out,
            "--no-progress"]
    assert cli.main(argv) == 0
    with open(out) as f:
        header = f.readline().rstrip("\n").split("\t")
        first = f.readline().rstrip("\n").split("\t")
    assert header[-1] == "pairs" and first[-1] == "20"


def test_registering_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_family("gaussian")(type("Other", (Smooth,), {}))
