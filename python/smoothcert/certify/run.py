"""Certifying a dataset into a resumable TSV (the ``smoothcert certify`` command).

Rows follow docs/formats.md: Cohen et al.'s ``idx label predict radius correct
time`` prefix, then the family's columns (:meth:`SmoothingFamily.columns`), with
floats written by ``repr`` (exact, never rounded up). A JSON sidecar holds the
configuration; rerunning the same configuration continues after the last
complete row, and since results depend only on (seed, input index) -- and, for a
stateful family, on the rows before, which it rebuilds from the file -- the file
ends up the same as an uninterrupted run's (except the wall-clock ``time``).

A transductive family (:attr:`SmoothingFamily.TRANSDUCTIVE`: its certificates
depend on the whole set of inputs) writes its per-input rows to the stage file
``<out>.stage.tsv`` instead, resumable the same way; once every input is done,
its final rows go to ``out`` in one atomic write.
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


def stage_path(out: str) -> str:
    """The per-input stage file of a transductive family's run into ``out``."""
    return out + ".stage.tsv"


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
                    device: Optional[torch.device] = None, stage: Optional[str] = None, **budget_kw) -> int:
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
        stage: a transductive family's stage file (default :func:`stage_path` of ``out``);
            runs whose per-input settings agree (e.g. greedy and LP regions) may share
            one -- its own sidecar holds those settings and is checked the same way.

    Returns:
        number of rows written by this call.
    """
    budget = budget or Budget(**budget_kw)
    config = {**config, **family.config(budget)}
    _sidecar(out, config, family)
    transductive = bool(getattr(family, "TRANSDUCTIVE", False))
    rows_file = (stage or stage_path(out)) if transductive else out
    if transductive:
        _sidecar(rows_file, {k: v for k, v in config.items() if k not in family.allocation_keys()}, family)
    header = PREFIX + (family.stage_columns() if transductive else family.columns())
    rows = read_rows(rows_file, header)
    wanted = set(indices)
    if transductive and any(int(r["idx"]) not in wanted for r in rows):
        raise ValueError(f"{rows_file} holds inputs outside this run's set; a transductive certificate depends on "
                         "the whole set, so remove it or choose another --out")
    done = {int(r["idx"]) for r in rows}
    if rows and not transductive:
        family.resume(rows, lambda ids: _inputs(x, ids, device))
    todo = [i for i in indices if i not in done]
    written = _write_rows(family, x, y, indices, todo, rows_file, header, budget, progress, device)
    if transductive:
        written = _allocate(family, x, y, indices, rows_file, header, out, budget, device)
    family.finish()
    summary = family.summary()
    if summary:
        with open(out + ".json") as f:
            side = json.load(f)
        side["summary"] = summary
        _write_json(out + ".json", side)
    return written


def _write_rows(family, x, y, indices, todo, path, header, budget, progress, device) -> int:
    new_file = not os.path.exists(path) or os.path.getsize(path) == 0
    group = family.group_size(budget)
    bar = progress_bar(total=len(indices), initial=len(indices) - len(todo), desc="certify",
                       unit="input") if progress else None
    written = 0
    with open(path, "a") as f:
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
    return written


def _allocate(family, x, y, indices, stage, header, out, budget, device) -> int:
    """The final rows of a transductive family, in dataset order, written atomically."""
    by_idx = {int(r["idx"]): r for r in read_rows(stage, header)}
    order = sorted(indices)
    # Labels stay here: the family's allocation must not see them.
    blind = [{k: v for k, v in by_idx[i].items() if k not in ("label", "correct")} for i in order]
    res = family.allocate(blind, lambda ids: _inputs(x, ids, device), budget)
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        f.write("\t".join(header_of(family)) + "\n")
        for k, i in enumerate(order):
            f.write("\t".join(str(v) for v in _row(res, k, i, int(y[i]))) + "\n")
    os.replace(tmp, out)
    return len(order)


def _inputs(x, ids: List[int], device: Optional[torch.device]) -> torch.Tensor:
    X = x[ids]
    return X.to(device) if device is not None else X

