"""Structure changes must not change results: the record of ``scripts/make_golden.py``
(training checkpoints, certify TSVs, Python API results of every family, sigma mode and
certificate) equals the one committed in ``tests/golden/golden.json``, produced by main
before the engine refactor (commit f5961ac). Its training section was re-recorded with tensor
fingerprints on an AVX2 CPU (training is compared within a tolerance, see make_golden.py), and
the data-dependent API records gained the ``sequential`` field of sequential runs (None)."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_results_equal_the_golden_record(tmp_path):
    golden = os.path.join(ROOT, "tests", "golden", "golden.json")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_golden.py"), str(tmp_path / "now.json"),
                           "--check", golden], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_the_comparison_can_fail(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    try:
        import make_golden
    finally:
        sys.path.pop(0)
    a = {"certify": {"gaussian": {"rows": [["0", "1", "0.5"]]}}}
    b = {"certify": {"gaussian": {"rows": [["0", "1", "0.25"]]}}}
    assert make_golden.differences(a, a) == []
    diff = make_golden.differences(a, b)
    assert len(diff) == 1 and "/certify/gaussian/rows[0][2]" in diff[0]
    assert make_golden.differences({"x": 1}, {}) == ["/x: only in new"]
    # Training may differ by a few ulps between CPUs, nothing more; certificates not at all.
    w = lambda v, h: {"train": {"m": {"state_dict": {"w": {"fingerprint": [v.hex(), v.hex()], "sha256": h}}}}}  # noqa: E731
    assert make_golden.differences(w(1.0, "a"), w(1.0 + 1e-7, "b")) == []
    assert len(make_golden.differences(w(1.0, "a"), w(1.01, "a"))) == 2
    c = lambda v: {"certify": {"g": {"rows": [[v.hex()]]}}}  # noqa: E731
    assert len(make_golden.differences(c(1.0), c(1.0 + 1e-12))) == 1
