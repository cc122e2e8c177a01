"""The family contract, over every registered family, sigma mode and certificate: each one is
built from the command line alone, certifies a few inputs through the dataset runner, writes
the prefix and its declared columns, declares a type for each column (the sidecar), and its
values parse as those types; the registry holds nothing this test does not know how to run
(a new registration must add its options here)."""
import json

import pytest
import torch

from smoothcert import cli
from smoothcert.analysis.results import load_results
from smoothcert.certify import CERTIFICATES, FAMILIES, SIGMA_MODES, SmoothingFamily
from smoothcert.certify.family import PREFIX_TYPES
from smoothcert.sigma import save_sigma

# The options each registration needs beyond --sigma (sigma files are made by the test).
NOISE = {"gaussian": [], "uniform": [], "ssn": [], "dssn": ["--q", "16"]}
SIGMA_MODE = {"fixed": [], "ddrs": ["--ddrs-steps", "2"], "anisotropic": ["--sigma-file", "{sigma_file}"],
              "samplewise": ["--sigma-min", "0.1", "--sigma-max", "0.4", "--select-samples", "16"]}
CERTIFICATE = {"first-order": [], "sos": [], "dipole": []}
CASES = ([("noise", n) for n in FAMILIES] + [("sigma-mode", m) for m in SIGMA_MODES]
         + [("certificate", c) for c in CERTIFICATES])


def test_every_registration_is_covered():
    assert set(FAMILIES) == set(NOISE)
    assert set(SIGMA_MODES) == set(SIGMA_MODE)
    assert set(CERTIFICATES) == set(CERTIFICATE)


def test_every_class_implements_the_interface():
    for cls in [*FAMILIES.values(), *(c for c in SIGMA_MODES.values() if c), *(c for c in CERTIFICATES.values() if c)]:
        assert issubclass(cls, SmoothingFamily)
        assert cls.name, cls
        for method in ("column_types", "certify_group", "config", "from_args"):
            assert getattr(cls, method) is not getattr(SmoothingFamily, method), (cls.name, method)


@pytest.mark.parametrize("kind,name", CASES, ids=[f"{k}={n}" for k, n in CASES])
def test_contract(kind, name, digits_checkpoint, tmp_path):
    sigma_file = str(tmp_path / "sigma.pt")
    save_sigma(sigma_file, torch.full((1, 8, 8), 0.3), {})
    options = {"noise": NOISE, "sigma-mode": SIGMA_MODE, "certificate": CERTIFICATE}[kind]
    extra = [f"--{kind}", name] + options[name]
    extra = [a.format(sigma_file=sigma_file) for a in extra]
    if "--sigma-file" not in extra:
        extra = ["--sigma", "0.3"] + extra
    out = str(tmp_path / "r.tsv")
    argv = ["certify", "--model", digits_checkpoint, "--dataset", "digits", "--n0", "8", "--n", "100",
            "--batch", "200", "--skip", "9", "--max", "30", "--out", out, "--no-progress", *extra]
    assert cli.main(argv) == 0
    with open(out) as f:
        header = f.readline().rstrip("\n").split("\t")
    with open(out + ".json") as f:
        declared = json.load(f)["columns"]
    assert list(declared) == header and header[:6] == list(PREFIX_TYPES)
    assert all(t in ("int", "float", "str") for t in declared.values())
    res = load_results(out)
    assert list(res["idx"]) == [0, 9, 18, 27]
    for col, t in declared.items():
        want = {"int": "i", "float": "f", "str": "U"}[t]
        assert res[col].dtype.kind == want, (col, t, res[col].dtype)
    assert ((res["predict"] == -1) | (res["radius"] >= 0)).all()
