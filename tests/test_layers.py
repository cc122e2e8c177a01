"""Layers import only downward: every import between subpackages of smoothcert (module level
or inside a function) follows the table below, which docs/architecture.md states, and there is
no cycle between subpackages."""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "python", "smoothcert")

# Bottom to top: a subpackage may import the ones before it, never one after it.
LAYERS = ["utils", "ops", "stats", "data", "models", "engine", "sigma", "certify", "train", "analysis",
          "drivers", "compat", "cli"]
# The top-level modules every layer may use (the version string; the extension is loaded by __init__).
TOP_LEVEL = {"_version", "_C"}


def imports(package_dir: str):
    """``(subpackage, imported subpackage or top-level module, file, line)`` of every import
    between subpackages of the package at ``package_dir``."""
    name = os.path.basename(package_dir)
    out = []
    for d, _, files in os.walk(package_dir):
        for f in files:
            if not f.endswith(".py"):
                continue
            path = os.path.join(d, f)
            rel = os.path.relpath(path, package_dir).split(os.sep)
            if len(rel) == 1:
                continue  # the package's own __init__ and __main__ assemble it
            sub = rel[0]
            for node in ast.walk(ast.parse(open(path).read(), path)):
                targets = []
                if isinstance(node, ast.Import):
                    targets = [a.name.split(".")[1] for a in node.names
                               if a.name.startswith(name + ".") and a.name.count(".") >= 1]
                elif isinstance(node, ast.ImportFrom):
                    if node.level == 0:
                        if node.module and node.module.split(".")[0] == name:
                            parts = node.module.split(".")
                            targets = [parts[1]] if len(parts) > 1 else [a.name for a in node.names]
                    else:
                        base = rel[:-1][:len(rel) - 1 - (node.level - 1)]
                        full = base + (node.module.split(".") if node.module else [])
                        targets = [full[0]] if full else [a.name for a in node.names]
                out += [(sub, t, path, node.lineno) for t in targets if t != sub]
    return out


def violations(package_dir: str, layers=LAYERS):
    rank = {s: i for i, s in enumerate(layers)}
    bad = []
    for sub, target, path, line in imports(package_dir):
        if target in TOP_LEVEL:
            continue
        if sub not in rank or target not in rank or rank[target] >= rank[sub]:
            bad.append(f"{os.path.relpath(path, package_dir)}:{line}: {sub} imports {target}")
    return bad


def test_every_import_goes_down_the_layers():
    assert violations(PACKAGE) == []


def test_every_subpackage_is_a_layer_and_documented():
    subs = {d for d in os.listdir(PACKAGE) if os.path.isfile(os.path.join(PACKAGE, d, "__init__.py"))}
    assert subs == set(LAYERS)
    doc = open(os.path.join(ROOT, "docs", "architecture.md")).read()
    for s in LAYERS:
        assert f"`smoothcert.{s}`" in doc, s


def test_no_cycle_between_subpackages():
    edges = {}
    for sub, target, _, _ in imports(PACKAGE):
        if target not in TOP_LEVEL:
            edges.setdefault(sub, set()).add(target)

    def reach(a, seen):
        for b in edges.get(a, ()):
            if b not in seen:
                seen.add(b)
                reach(b, seen)
        return seen

    assert [s for s in edges if s in reach(s, set())] == []


@pytest.mark.parametrize("line", ["from ...cli import main", "from smoothcert.certify import Smooth",
                                  "import smoothcert.train.loop", "    from ...drivers import certify_dataset"])
def test_an_upward_import_is_caught(tmp_path, line):
    pkg = tmp_path / "smoothcert"
    for sub in ("engine", "engine/inner", "cli", "certify", "train", "drivers"):
        (pkg / sub).mkdir(parents=True, exist_ok=True)
        (pkg / sub / "__init__.py").write_text("")
    body = f"def f():\n{line}\n" if line.startswith(" ") else line + "\n"
    (pkg / "engine" / "inner" / "x.py").write_text(body)
    assert len(violations(str(pkg))) == 1
