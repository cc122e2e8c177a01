"""Reading result TSVs: smoothcert's (docs/formats.md) and Cohen et al.'s six-column ``certify.py`` output."""
from __future__ import annotations

from pathlib import Path

import numpy as np

REQUIRED = ("idx", "label", "predict", "radius", "correct", "time")
INT_COLS = ("idx", "label", "predict", "correct", "count_a", "n", "n_pairs", "dim", "grad_vacuous", "count_s",
            "count_n", "count_x", "symmetric", "rank", "region", "degree", "own_class", "capped", "inherited")
FLOAT_COLS = ("radius", "time", "pa_lower", "sigma")
COHEN_KIND = "fixed-sigma (Cohen TSV)"
# Files that carry more than one certificate per row (e.g. data-dependent sigma:
# the memory-based one in the prefix, beside it "dd_*" and "fixed_*") name the
# others' columns <view>_predict, <view>_radius, <view>_certificate.
VIEW_INT_SUFFIXES = ("_predict", "_count_a", "_partner", "_n")
VIEW_FLOAT_SUFFIXES = ("_radius", "_pa_lower")
FLOAT_EXTRA = ("sigma0", "sigma_star", "normalized_radius", "o_ca", "r_geo", "r_linf", "sigma_min", "sigma_mean",
               "sigma_geomean", "r_two_sided", "dot_sum", "grad_sq_raw", "grad_sq_margin", "grad_upper", "g_max",
               "a_prime", "cs_lower", "cn_lower", "radius_cap", "sigma_used", "t_select", "t_certify", "t_fixed")


def _is_int(name: str) -> bool:
    return name in INT_COLS or name.endswith(VIEW_INT_SUFFIXES)


def _is_float(name: str) -> bool:
    return name in FLOAT_COLS or name in FLOAT_EXTRA or name.endswith(VIEW_FLOAT_SUFFIXES)


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

    Integer columns (idx, label, predict, correct, count_a, n, and *_predict, *_count_a,
    *_partner) are int64, radius/time/pa_lower/sigma (and *_radius, *_pa_lower, sigma0,
    sigma_star) float64, anything else (certificate, norm, unknown columns) str.  ``#`` lines and blank
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
    for j, name in enumerate(header):
        if _is_int(name):
            conv, dtype = _parse_int, np.int64
        elif name == "time":
            conv, dtype = _parse_time, np.float64
        elif _is_float(name):
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
