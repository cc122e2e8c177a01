"""Certifying a dataset into a resumable TSV (the ``smoothcert certify`` command).

Rows follow docs/formats.md: Cohen et al.'s ``idx label predict radius correct
time`` prefix, then the family's columns (:meth:`SmoothingFamily.columns`), with
floats written by ``repr`` (exact, never rounded up). A JSON sidecar holds the
configuration; rerunning the same configuration continues after the last
complete row, and since results depend only on (seed, input index) -- and, for a
stateful family, on the rows before, which it rebuilds from the file -- the file
ends up the same as an uninterrupted run's (except the wall-clock ``time``).
"""
from __future__ import annotations

import json
import os
import platform
from typing import Any, Dict, List, Optional

import torch

from .._version import __version__
from ..utils import progress as progress_bar
from .family import Budget, SmoothingFamily

PREFIX = ["idx", "label", "predict", "radius", "correct", "time"]


def header_of(family: SmoothingFamily) -> List[str]:
    """The TSV header a family writes: Cohen's six columns, then its own."""
    return PREFIX + family.columns()


def read_rows(path: str, header: List[str]) -> List[Dict[str, str]]:
    """The complete rows of ``path`` as dicts; truncates a partial last line."""
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        raw = f.read()
    keep = raw[: raw.rfind(b"\n") + 1]
    if len(keep) != len(raw):
        with open(path, "wb") as f:
            f.write(keep)
    lines = keep.decode().splitlines()
    if not lines:
        return []
    if lines[0].split("\t") != header:
        raise ValueError(f"{path} exists but is not a smoothcert certify file of this kind (header "
                         f"{lines[0]!r}); remove it or choose another --out")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:] if line]


def _sidecar(path: str, config: Dict, family: SmoothingFamily) -> None:
    side = path + ".json"
    if os.path.exists(side):
        with open(side) as f:
            old = json.load(f)
        diff = {k: (old.get("config", {}).get(k), v) for k, v in config.items()
                if old.get("config", {}).get(k) != v}
        if diff:
            raise ValueError(f"{path} was written with a different configuration {diff} (old, new); "
                             "refusing to mix results. Remove it or choose another --out")
    else:
        _write_json(side, {"config": config, "generator": family.generator(), "smoothcert": __version__,
                           "torch": torch.__version__, "python": platform.python_version(),
                           "format": "docs/formats.md"})


def _write_json(path: str, obj: Dict[str, Any]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def _row(res, k: int, i: int, label: int) -> list:
    pred = int(res.prediction[k])
    head = [i, label, pred, repr(float(res.radius[k])), int(pred == label), repr(float(res.seconds[k]))]
    return head + list(res.fields(k))


def certify_dataset(family: SmoothingFamily, x, y: torch.Tensor, indices: List[int], *,
                    budget: Optional[Budget] = None, out: str, config: Dict, progress: bool = True,
                    device: Optional[torch.device] = None, **budget_kw) -> int:
    """Certifies ``x[i]`` for every dataset index ``i`` in ``indices`` into ``out``.

    Args:
        family: the smoothed classifier (any registered smoothing family, e.g.
            :class:`smoothcert.Smooth`, :class:`smoothcert.SplitSmooth`).
        x: ``[N, *S]`` inputs of the whole split (indexed by dataset index).
        y: ``[N]`` labels.
        indices: dataset indices to certify, in order (they key the noise).
        budget: sample sizes (or pass ``n0=, n=, alpha=, batch_size=``).
        config: settings of the run beyond the family's own (dataset, model,
            ...); stored next to ``out`` with :meth:`SmoothingFamily.config`
            and compared on resume.

    Returns:
        number of rows written by this call.
    """
    budget = budget or Budget(**budget_kw)
    config = {**config, **family.config(budget)}
    _sidecar(out, config, family)
    header = header_of(family)
    rows = read_rows(out, header)
    done = {int(r["idx"]) for r in rows}
    if rows:
        family.resume(rows, lambda ids: _inputs(x, ids, device))
    todo = [i for i in indices if i not in done]
    new_file = not os.path.exists(out) or os.path.getsize(out) == 0
    group = family.group_size(budget)
    bar = progress_bar(total=len(indices), initial=len(indices) - len(todo), desc="certify",
                       unit="input") if progress else None
    written = 0
    with open(out, "a") as f:
        if new_file:
            f.write("\t".join(header) + "\n")
        for g0 in range(0, len(todo), group):
            ids = todo[g0:g0 + group]
            res = family.certify_group(_inputs(x, ids, device), torch.tensor(ids), budget)
            for k, i in enumerate(ids):
                f.write("\t".join(str(v) for v in _row(res, k, i, int(y[i]))) + "\n")
            f.flush()
            written += len(ids)
            if bar is not None:
                bar.update(len(ids))
    if bar is not None:
        bar.close()
    family.finish()
    summary = family.summary()
    if summary:
        with open(out + ".json") as f:
            side = json.load(f)
        side["summary"] = summary
        _write_json(out + ".json", side)
    return written


def _inputs(x, ids: List[int], device: Optional[torch.device]) -> torch.Tensor:
    X = x[ids]
    return X.to(device) if device is not None else X

