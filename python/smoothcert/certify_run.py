"""Certifying a dataset into a resumable TSV (the ``smoothcert certify`` command).

Rows follow docs/formats.md: Cohen et al.'s ``idx label predict radius correct
time`` prefix, then counts, pA_lower, sigma, certificate kind and norm, with
floats written by ``repr`` (exact, never rounded up). A JSON sidecar holds the
configuration; rerunning the same configuration continues after the last
complete row, and since results depend only on (seed, input index) the file
ends up the same as an uninterrupted run's (except the wall-clock ``time``).
"""
from __future__ import annotations

import json
import os
import platform
from typing import Dict, List, Optional

import torch

from ._version import __version__
from .smooth import Smooth

HEADER = ["idx", "label", "predict", "radius", "correct", "time", "count_a", "n", "pa_lower", "sigma",
          "certificate", "norm"]
# DSSN (exact L1): votes of the top two classes over all L offsets and the
# radius in grid steps K (radius = K / q, inclusive).
DSSN_HEADER = ["idx", "label", "predict", "radius", "correct", "time", "count_a", "count_b", "runner_up", "levels",
               "q", "grid_radius", "sigma", "certificate", "norm"]


def _is_dssn(smooth) -> bool:
    return getattr(smooth, "deterministic", False) is True


def _completed_rows(path: str, header: List[str] = HEADER) -> List[int]:
    """Indices of the complete rows of ``path``; truncates a partial last line."""
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
        raise ValueError(f"{path} exists but is not a smoothcert certify file (header {lines[0]!r}); "
                         "remove it or choose another --out")
    return [int(line.split("\t", 1)[0]) for line in lines[1:] if line]


_GENERATORS = {
    "gaussian": "Philox-4x32-10, Box-Muller (smoothcert)",
    "uniform": "Philox-4x32-10, uniform on 2^23 symmetric points (smoothcert)",
    "ssn": "Philox-4x32-10, split values uniform on 2^23 points (smoothcert)",
    "dssn": "none: all L split offsets enumerated, v = numpy RandomState(offset_seed).randint(L, size=d)",
}


def _check_sidecar(path: str, config: Dict) -> None:
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
        with open(side, "w") as f:
            json.dump({"config": config, "generator": _GENERATORS[config.get("noise", "gaussian")],
                       "smoothcert": __version__, "torch": torch.__version__,
                       "python": platform.python_version(), "format": "docs/formats.md"}, f, indent=2)


def _rows(smooth, res, ids: List[int], y: torch.Tensor, n: int) -> List[list]:
    rows = []
    for k, i in enumerate(ids):
        pred, label = int(res.prediction[k]), int(y[i])
        head = [i, label, pred, repr(float(res.radius[k])), int(pred == label), repr(float(res.seconds[k]))]
        if _is_dssn(smooth):
            tail = [int(res.count_a[k]), int(res.count_b[k]), int(res.runner_up[k]), res.levels, res.q,
                    int(res.grid_radius[k]), repr(float(res.sigma)), res.certificate, res.norm]
        else:
            tail = [int(res.count_a[k]), n, repr(float(res.pa_lower[k])), repr(float(res.sigma[k])),
                    res.certificate, res.norm]
        rows.append(head + tail)
    return rows


def certify_dataset(smooth: Smooth, x: torch.Tensor, y: torch.Tensor, indices: List[int], *, n0: int,
                    n: int, alpha: float, batch_size: int, out: str, config: Dict,
                    progress: bool = True, device: Optional[torch.device] = None) -> int:
    """Certifies ``x[i]`` for every dataset index ``i`` in ``indices`` into ``out``.

    Args:
        smooth: the smoothed classifier (:class:`Smooth`, :class:`UniformSmooth`
            or :class:`SplitSmooth`; DSSN ignores n0 and alpha, n is its L).
        x: ``[N, *S]`` inputs of the whole split (indexed by dataset index).
        y: ``[N]`` labels.
        indices: dataset indices to certify, in order (they key the noise).
        config: everything that determines the results; stored next to ``out``
            and compared on resume.

    Returns:
        number of rows written by this call.
    """
    _check_sidecar(out, config)
    header = DSSN_HEADER if _is_dssn(smooth) else HEADER
    if _is_dssn(smooth):
        n = smooth.levels
    done = set(_completed_rows(out, header))
    todo = [i for i in indices if i not in done]
    new_file = not os.path.exists(out) or os.path.getsize(out) == 0
    group = max(1, batch_size // n)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(indices), initial=len(indices) - len(todo), desc="certify", unit="input")
    written = 0
    with open(out, "a") as f:
        if new_file:
            f.write("\t".join(header) + "\n")
        for g0 in range(0, len(todo), group):
            ids = todo[g0:g0 + group]
            X = x[ids].to(device) if device is not None else x[ids]
            if _is_dssn(smooth):
                res = smooth.certify_batch(X, batch_size=batch_size, indices=torch.tensor(ids))
            else:
                res = smooth.certify_batch(X, n0, n, alpha, batch_size, indices=torch.tensor(ids))
            for row in _rows(smooth, res, ids, y, n):
                f.write("\t".join(str(v) for v in row) + "\n")
            f.flush()
            written += len(ids)
            if bar is not None:
                bar.update(len(ids))
    if bar is not None:
        bar.close()
    return written
