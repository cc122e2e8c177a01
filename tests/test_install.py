"""install.sh's staleness check and the supported-torch range (no building)."""
import os
import shutil
import subprocess
import sys
import time

import pytest

from smoothcert import _version

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_check_torch_in_range():
    assert _version.check_torch(_version.TORCH_MIN + ".0") is None
    assert _version.check_torch("2.13.0+cpu") is None


def test_check_torch_too_old_names_version_and_range():
    with pytest.raises(ValueError, match=r"torch >= 2\.6.*torch 2\.5\.1\+cu124 is installed"):
        _version.check_torch("2.5.1+cu124")


def test_check_torch_newer_warns():
    assert "2.14.0" in _version.check_torch("2.14.0")


def test_check_torch_minor_compares_numerically():
    assert _version.check_torch("2.10.0") is None  # "2.10" < "2.6" as strings


def fake_tree(tmp_path):
    """A tree with install.sh, build inputs, a built _C and the stamp for this python/torch."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(os.path.join(ROOT, "scripts", "install.sh"), tmp_path / "scripts")
    for d in ("csrc", "python/smoothcert", "build"):
        (tmp_path / d).mkdir(parents=True)
    for f in ("csrc/ops.cpp", "setup.py", "CMakeLists.txt", "pyproject.toml",
              "python/smoothcert/__init__.py"):
        (tmp_path / f).write_text("")
    old = time.time() - 100
    for f in ("csrc/ops.cpp", "setup.py", "CMakeLists.txt", "pyproject.toml"):
        os.utime(tmp_path / f, (old, old))
    (tmp_path / "python/smoothcert/_C.abi3.so").write_text("")
    import torch
    ver = sys.version.split()[0]
    (tmp_path / "build/install.stamp").write_text(f"torch {torch.__version__} python {ver}\n")
    return tmp_path


def fresh(tree):
    env = dict(os.environ, PYTHON=sys.executable, PYTHONPATH=str(tree / "python"))
    out = subprocess.run(["bash", str(tree / "scripts/install.sh"), "--fresh"], env=env,
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_install_skips_rebuild_when_up_to_date(tmp_path):
    assert fresh(fake_tree(tmp_path)) == "fresh"


def test_install_rebuilds_after_source_edit(tmp_path):
    tree = fake_tree(tmp_path)
    os.utime(tree / "csrc/ops.cpp")  # now: newer than _C
    assert fresh(tree) == "stale"


def test_install_rebuilds_when_torch_changed(tmp_path):
    tree = fake_tree(tmp_path)
    (tree / "build/install.stamp").write_text("torch 2.6.0 python 3.11.0\n")
    assert fresh(tree) == "stale"


def test_install_rebuilds_without_extension(tmp_path):
    tree = fake_tree(tmp_path)
    (tree / "python/smoothcert/_C.abi3.so").unlink()
    assert fresh(tree) == "stale"
