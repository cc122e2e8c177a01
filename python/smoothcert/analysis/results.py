"""Reading result TSVs: smoothcert's (docs/formats.md) and Cohen et al.'s six-column ``certify.py`` output."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

REQUIRED = ("idx", "label", "predict", "radius", "correct", "time")
PREFIX_TYPES = {"idx": "int", "label": "int", "predict": "int", "radius": "float", "correct": "int", "time": "float"}
COHEN_KIND = "fixed-sigma (Cohen TSV)"
# Files that carry more than one certificate per row (e.g. data-dependent sigma:
# the memory-based one in the prefix, beside it "dd_*" and "fixed_*") name the
# others' columns <view>_predict, <view>_radius, <view>_certificate.


def column_types(path: Path, header: list, rows: list) -> dict:
    """``{column: "int" | "float" | "str"}``: as the file's sidecar declares them (the family
    that wrote it declares its columns), else -- a file without one, e.g. Cohen et al.'s
    ``certify.py`` output -- the prefix's types and, for any other column, the narrowest type
    that every value parses as."""
    declared = {}
    side = Path(str(path) + ".json")
    if side.exists():
        try:
            with open(side, encoding="utf-8") as f:
                obj = json.load(f)
            if isinstance(obj, dict) and isinstance(obj.get("columns"), dict):
                declared = {k: v for k, v in obj["columns"].items() if v in ("int", "float", "str")}
        except (OSError, ValueError):
            declared = {}
    out = {}
    for j, name in enumerate(header):
        if name in declared:
            out[name] = declared[name]
        elif name in PREFIX_TYPES:
            out[name] = PREFIX_TYPES[name]
        else:
            out[name] = _infer([r[j].strip() for _, r in rows])
    return out


def _infer(values: list) -> str:
    if not values:
        return "str"
    for kind, conv in (("int", int), ("float", float)):
        try:
            for v in values:
                conv(v)
            return kind
        except ValueError:
            continue
    return "str"


def certificate_views(d: dict) -> list:
    """The certificates a loaded file holds: ``[(kind, predict, radius)]``, the prefix's first
    (kind from its ``certificate`` column), then every ``<view>_predict/_radius`` pair."""
    main = ", ".join(sorted(set(d["certificate"].tolist()))) if "certificate" in d else COHEN_KIND
    views = [(main, d["predict"], d["radius"])]
    for name in d:
        if name.endswith("_predict") and name != "predict":
            v = name[: -len("_predict")]
            if v + "_radius" in d:
                kinds = set(d[v + "_certificate"].tolist()) if v + "_certificate" in d else {v}
                views.append((", ".join(sorted(kinds)) or v, d[name], d[v + "_radius"]))
    return views


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

    Column types come from :func:`column_types` (the sidecar's declaration, else the values):
    ``int`` columns are int64, ``float`` ones float64 (``time`` also reads Cohen's
    ``H:MM:SS.ffffff``), ``str`` ones str.  ``#`` lines and blank
    lines are skipped; the first other line is the header.  A header-only file gives zero rows.
    Raises ValueError naming the file and line for malformed input, a duplicated ``idx``, or a
    certified row (predict != -1, in any certificate's view) whose radius is NaN, inf or negative.
    """
    path = Path(path)
    header, rows = None, []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.split("\t")
            if header is None:
                header = [c.strip() for c in fields]
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
    types = column_types(path, header, rows)
    for j, name in enumerate(header):
        if name == "time":
            conv, dtype = _parse_time, np.float64
        elif types[name] == "int":
            conv, dtype = _parse_int, np.int64
        elif types[name] == "float":
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
    _check_rows(path, out, [lineno for lineno, _ in rows])
    return out


def _check_rows(path: Path, d: dict, linenos: list) -> None:
    """Refuses a file no metric can be trusted on: an ``idx`` that appears twice (e.g. two
    runs appended to one file), or a certified row (predict != -1) of any certificate whose
    radius is NaN, infinite or negative.  An abstained row's radius is never counted."""
    idx = d["idx"]
    if idx.size:
        uniq, first, counts = np.unique(idx, return_index=True, return_counts=True)
        if (counts > 1).any():
            dup = uniq[counts > 1]
            where = [f"idx {int(i)} (lines {', '.join(str(linenos[k]) for k in np.flatnonzero(idx == i)[:3])})"
                     for i in dup[:5]]
            more = f" and {dup.size - 5} more" if dup.size > 5 else ""
            raise ValueError(f"{path}: {dup.size} duplicated idx: {'; '.join(where)}{more}; a row per input is "
                             "expected (were two runs appended to one file?)")
    pairs = [("predict", "radius")] + [(c, c[: -len("_predict")] + "_radius") for c in d
                                        if c.endswith("_predict") and c != "predict"]
    for pc, rc in pairs:
        if rc not in d:
            continue
        r, certified = d[rc], d[pc] != -1
        bad = np.flatnonzero(certified & ~(np.isfinite(r) & (r >= 0)))
        if bad.size:
            k = int(bad[0])
            raise ValueError(f"{path}: line {linenos[k]}: column '{rc}': radius {float(r[k])!r} of a certified row "
                             f"(idx {int(idx[k])}, {pc} {int(d[pc][k])}) is not a finite number >= 0"
                             + (f" ({bad.size} such rows)" if bad.size > 1 else ""))
