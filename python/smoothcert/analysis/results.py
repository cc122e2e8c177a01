"""Reading result TSVs: smoothcert's (docs/formats.md) and Cohen et al.'s six-column ``certify.py`` output."""
from __future__ import annotations

from pathlib import Path

import numpy as np

REQUIRED = ("idx", "label", "predict", "radius", "correct", "time")
INT_COLS = ("idx", "label", "predict", "correct", "count_a", "n")
FLOAT_COLS = ("radius", "time", "pa_lower", "sigma")
COHEN_KIND = "fixed-sigma (Cohen TSV)"


def _parse_time(s: str) -> float:
    """Seconds from ``'1.25'`` or Cohen's ``str(timedelta)`` form ``'0:00:01.250000'``."""
    if ":" in s:
        h, m, sec = s.split(":")
        return int(h) * 3600 + int(m) * 60 + float(sec)
    return float(s)


def _parse_int(s: str) -> int:
    try:
        return int(s)
    except ValueError:
        f = float(s)
        if not f.is_integer():
            raise
        return int(f)


def load_results(path) -> dict[str, np.ndarray]:
    """Read a result TSV into ``{column: array of shape (rows,)}``.

    Integer columns (idx, label, predict, correct, count_a, n) are int64, radius/time/pa_lower/
    sigma float64, anything else (certificate, norm, unknown columns) str.  ``#`` lines and blank
    lines are skipped; the first other line is the header.  A header-only file gives zero rows.
    Raises ValueError naming the file and line for malformed input.
    """
    path = Path(path)
    header, hline, rows = None, 0, []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.split("\t")
            if header is None:
                header, hline = [c.strip() for c in fields], lineno
                missing = [c for c in REQUIRED if c not in header]
                if missing:
                    raise ValueError(f"{path}: line {lineno}: header lacks required column(s) "
                                     f"{', '.join(missing)} (got {header})")
                if len(set(header)) != len(header):
                    raise ValueError(f"{path}: line {lineno}: duplicate column names in header")
                continue
            if len(fields) != len(header):
                raise ValueError(f"{path}: line {lineno}: expected {len(header)} tab-separated "
                                 f"fields, got {len(fields)}")
            rows.append((lineno, fields))
    if header is None:
        raise ValueError(f"{path}: no header line (empty file)")
    out: dict[str, np.ndarray] = {}
    for j, name in enumerate(header):
        if name in INT_COLS:
            conv, dtype = _parse_int, np.int64
        elif name == "time":
            conv, dtype = _parse_time, np.float64
        elif name in FLOAT_COLS:
            conv, dtype = float, np.float64
        else:
            out[name] = np.array([r[j].strip() for _, r in rows], dtype=str)
            continue
        vals = []
        for lineno, r in rows:
            try:
                vals.append(conv(r[j].strip()))
            except ValueError:
                raise ValueError(f"{path}: line {lineno}: column '{name}': cannot parse "
                                 f"{r[j]!r} as a number") from None
        out[name] = np.array(vals, dtype=dtype)
    return out
