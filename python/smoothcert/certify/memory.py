"""The memory-based certificate of data-dependent smoothing (Alfarra et al., §3.5,
App. C, Alg. 3).

A :class:`Memory` holds the certified balls M = {(x_i, C_i, R_i)} of earlier
queries and keeps the invariant that balls of different classes are disjoint:
``D(x_i, x_j) >= R_i + R_j`` whenever ``C_i != C_j``. A query (x, C, R) -- the
per-input certificate at its own sigma -- is resolved in one pass:

1. **duplicate**: x equals a stored x_j (distance exactly 0): the answer is
   (C_j, R_j) and nothing is stored;
2. m = min over other-class balls of ``D(x, x_i) - R_i`` (every ball for an
   abstention), i* its argmin (the deepest ball), by the exact kernel
   :func:`smoothcert.ops.ball_margin`;
3. **case A** (``m < tau``: x may lie inside B_i*): C <- C_i* and
   R <- max(0, min(R, R_i* - D_i* - tau)) (the published listing drops the
   min with R: ``case_a="listing"``); abstentions are captured the same way;
4. **case B** (``tau <= m < R + tau``: the balls may meet): R <- m - tau;
5. otherwise unchanged; (x, C, R) is stored unless it is an uncaptured abstention.

``tau`` is the conservative tolerance: ``tol`` plus a bound on the fp64 error of
the distances, so that one misresolved pair can never break the invariant. Every
adjusted radius is rounded down. Queries inside one batch are resolved in order,
each against the memory and the batch's earlier (already resolved) points, which
reproduces the sequential semantics exactly.

**What this certifies.** A stateful, order-dependent system: the promise is that
later queries inside a stored ball B_i get the answer C_i. It is not a
certificate of the data-dependent classifier g itself (Súkeník et al. 2022), and
it only helps if the clean point was queried before its perturbation. Every
output labels it ``memory``, next to the plain fixed-sigma certificate.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from .. import ops
from ..utils.safe_load import bad_file, describe, is_int, load_weights_only, require_keys, require_tensor

MEMORY_FORMAT = "smoothcert-memory-v1"
CASES = ("none", "A", "B", "duplicate", "abstain")
_U64 = 2.0 ** -53
_WHAT = "a smoothcert memory file"
_KEYS = ("format", "shape", "norm", "tol", "case_a", "x", "classes", "radii", "ids", "counts")


@dataclass
class MemoryResult:
    """Per-query outcome of :meth:`Memory.query` (CPU tensors of length B).

    Attributes:
        prediction: ``[B]`` int64 class after the memory (-1: uncaptured abstention).
        radius: ``[B]`` float64 radius after the memory (never rounded up).
        case: list of B strings from :data:`CASES` (``"none"`` = unchanged).
        partner: ``[B]`` int64 dataset index of the stored point that decided a
            duplicate / case A / case B (-1 otherwise).
    """

    prediction: torch.Tensor
    radius: torch.Tensor
    case: List[str]
    partner: torch.Tensor


def _down(x: float) -> float:
    return math.nextafter(x, -math.inf) if x > 0 else 0.0


class Memory:
    """Certified balls of earlier queries, and the one-pass query procedure.

    Args:
        shape: element shape ``S`` of the inputs.
        norm: ``"l2"`` (Gaussian) or ``"l1"`` (uniform noise).
        tol: conservative tolerance tau, added to the fp64 error bound.
        case_a: ``"min"`` (R <- min(R, R_i - D), the paper's text) or ``"listing"``
            (R <- R_i - D, its Alg. 3 listing).
        device: where the stored points live (default CPU; queries on another
            device stream the memory to theirs in chunks).
    """

    def __init__(self, shape: Sequence[int], *, norm: str = "l2", tol: float = 1e-6, case_a: str = "min",
                 device: Optional[torch.device] = None):
        if norm not in ("l1", "l2"):
            raise ValueError(f"norm must be 'l1' or 'l2', got {norm!r}")
        if not (math.isfinite(tol) and tol > 0):
            raise ValueError(f"the memory tolerance must be finite and > 0, got {tol!r}")
        if case_a not in ("min", "listing"):
            raise ValueError(f"case_a must be 'min' or 'listing', got {case_a!r}")
        self.shape = tuple(int(s) for s in shape)
        self.dim = int(np.prod(self.shape)) if self.shape else 1
        self.norm, self.p, self.tol, self.case_a = norm, 2 if norm == "l2" else 1, float(tol), case_a
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self._x = torch.empty(0, self.dim, dtype=torch.float32, device=self.device)
        self._cls = torch.empty(0, dtype=torch.int64)
        self._radius = torch.empty(0, dtype=torch.float64)
        self._ids = torch.empty(0, dtype=torch.int64)
        self.size = 0
        self.counts: Dict[str, int] = {c: 0 for c in CASES}

    # ----------------------------------------------------------------- state

    @property
    def x(self) -> torch.Tensor:
        """``[N, *S]`` float32 stored points."""
        return self._x[: self.size].view(self.size, *self.shape)

    @property
    def classes(self) -> torch.Tensor:
        return self._cls[: self.size]

    @property
    def radii(self) -> torch.Tensor:
        return self._radius[: self.size]

    @property
    def ids(self) -> torch.Tensor:
        return self._ids[: self.size]

    def __len__(self) -> int:
        return self.size

    def insert(self, x: torch.Tensor, cls: int, radius: float, idx: int) -> None:
        """Stores one resolved ball (callers keep the invariant; :meth:`query` does)."""
        if self.size == self._x.shape[0]:
            cap = max(16, 2 * self._x.shape[0])
            grown = torch.empty(cap, self.dim, dtype=torch.float32, device=self.device)
            grown[: self.size] = self._x[: self.size]
            self._x = grown
            for name, dtype in (("_cls", torch.int64), ("_radius", torch.float64), ("_ids", torch.int64)):
                old = getattr(self, name)
                new = torch.empty(cap, dtype=dtype)
                new[: self.size] = old[: self.size]
                setattr(self, name, new)
        self._x[self.size] = x.reshape(-1).to(device=self.device, dtype=torch.float32)
        self._cls[self.size], self._radius[self.size], self._ids[self.size] = int(cls), float(radius), int(idx)
        self.size += 1

    # ----------------------------------------------------------------- queries

    def tau(self, distance: float, r_stored: float, r_new: float) -> float:
        """Tolerance of one pair: ``tol`` plus the fp64 error bound of its distance and radii."""
        return self.tol + 8.0 * (self.dim + 8) * _U64 * (distance + r_stored + r_new)

    def query(self, X: torch.Tensor, prediction: torch.Tensor, radius: torch.Tensor,
              ids: torch.Tensor) -> MemoryResult:
        """Resolves a batch of per-input certificates against the memory, in order, and stores them.

        Args:
            X: ``[B, *S]`` the queried inputs (any device).
            prediction: ``[B]`` int64 their classes (-1 = abstain).
            radius: ``[B]`` float64 their radii (0 for an abstention).
            ids: ``[B]`` int64 their dataset indices (recorded with the stored balls).

        Returns:
            :class:`MemoryResult`.
        """
        B = X.shape[0]
        if tuple(X.shape[1:]) != self.shape:
            raise ValueError(f"memory holds inputs of shape {list(self.shape)}, got {list(X.shape[1:])}")
        pred = torch.as_tensor(prediction).cpu().long().view(-1)
        rad = torch.as_tensor(radius).cpu().double().view(-1)
        ids = torch.as_tensor(ids).cpu().long().view(-1)
        if not (pred.numel() == rad.numel() == ids.numel() == B):
            raise ValueError(f"prediction, radius and ids must have one entry per input ({B})")
        if B and not bool((torch.isfinite(rad) & (rad >= 0)).all()):
            raise ValueError("certified radii must be finite and >= 0")
        Xf = X.detach().reshape(B, self.dim).float()
        ops.check_finite(Xf, "memory query")
        # Against the stored balls, all queries at once; the batch's own points below, in order.
        mem = ops.ball_margin(Xf, self._x[: self.size], self.radii, self.classes, pred.to(Xf.device), p=self.p)
        mem = [t.cpu() for t in mem]
        out_pred, out_rad, cases, partner = pred.clone(), rad.clone(), [], torch.full((B,), -1, dtype=torch.long)
        batch_rows: List[int] = []  # rows of X stored by this batch, with their final class and radius
        for b in range(B):
            m, mi, near, ni = (float(mem[0][b]), int(mem[1][b]), float(mem[2][b]), int(mem[3][b]))
            src_ids = self.ids
            if batch_rows:
                rows = torch.tensor(batch_rows)
                bm = ops.ball_margin(Xf[b:b + 1], Xf[rows], out_rad[rows], out_pred[rows],
                                     pred[b:b + 1].to(Xf.device), p=self.p, validate=False)
                bm = [float(bm[0][0]), int(bm[1][0]), float(bm[2][0]), int(bm[3][0])]
                # Stored points come first in the sequential order, so they win ties.
                if bm[0] < m:
                    m, mi = bm[0], -2 - int(rows[bm[1]])
                if bm[2] < near:
                    near, ni = bm[2], -2 - int(rows[bm[3]])
            c, r, case, who = self._resolve(int(pred[b]), float(rad[b]), m, mi, near, ni, out_pred, out_rad)
            partner[b] = -1 if who == -1 else (int(src_ids[who]) if who >= 0 else int(ids[-2 - who]))
            out_pred[b], out_rad[b] = c, r
            cases.append(case)
            self.counts[case] += 1
            if case not in ("duplicate", "abstain"):
                batch_rows.append(b)
        for b in batch_rows:
            self.insert(Xf[b], int(out_pred[b]), float(out_rad[b]), int(ids[b]))
        return MemoryResult(prediction=out_pred, radius=out_rad, case=cases, partner=partner)

    def _resolve(self, c: int, r: float, m: float, mi: int, near: float, ni: int, batch_pred: torch.Tensor,
                 batch_rad: torch.Tensor):
        """(class, radius, case, partner) of one query; partner >= 0 a stored row, <= -2 a batch row."""
        def stored(i):  # class and radius of a stored (i >= 0) or batch (i <= -2) point
            return (int(self.classes[i]), float(self.radii[i])) if i >= 0 else (int(batch_pred[-2 - i]),
                                                                               float(batch_rad[-2 - i]))
        if ni != -1 and near == 0.0:
            cj, rj = stored(ni)
            return cj, rj, "duplicate", ni
        if mi == -1:  # no ball of another class
            return (c, r, "none", -1) if c >= 0 else (c, 0.0, "abstain", -1)
        ci, ri = stored(mi)
        d = m + ri  # D(x, x_i*) (exact up to one rounding, inside tau)
        tau = self.tau(d, ri, r)
        if m < tau:  # case A: x may lie inside B_i*
            inner = ri - d - tau
            new_r = inner if self.case_a == "listing" else min(r, inner)
            return ci, _down(max(0.0, new_r)), "A", mi
        if c < 0:
            return c, 0.0, "abstain", -1
        if m < r + tau:  # case B: the balls may meet
            return c, _down(max(0.0, m - tau)), "B", mi
        return c, r, "none", -1

    # ----------------------------------------------------------------- persistence

    def state(self) -> dict:
        return {"format": MEMORY_FORMAT, "shape": list(self.shape), "norm": self.norm, "tol": self.tol,
                "case_a": self.case_a, "x": self.x.cpu().clone(), "classes": self.classes.clone(),
                "radii": self.radii.clone(), "ids": self.ids.clone(), "counts": dict(self.counts)}

    def save(self, path: str) -> None:
        """Writes the memory to ``path`` atomically (a torch file of plain tensors)."""
        tmp = os.fspath(path) + ".tmp"
        torch.save(self.state(), tmp)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str, device: Optional[torch.device] = None, *, num_classes: Optional[int] = None,
             shape: Optional[Sequence[int]] = None) -> "Memory":
        """Reads a memory written by :meth:`save` and proves it well-formed before use.

        A memory is a claim that later inputs inside its balls belong to their
        classes, so a corrupted or tampered file must never be used: the load
        checks the keys, that ``x`` is float32 ``[M, *S]``, ``radii`` float64 ``[M]``,
        ``classes`` and ``ids`` int64 ``[M]``, all finite, radii >= 0, classes in
        ``0..num_classes-1``, ``S`` equal to ``shape`` (when given) and the
        disjointness invariant with the exact kernel (:meth:`check_invariant`,
        O(M^2 D), one kernel call).

        Args:
            path: the memory file.
            device: where the stored points go (default CPU).
            num_classes: K of the model the memory will serve (None: classes only >= 0).
            shape: the element shape ``S`` the caller's inputs have (None: any).

        Raises:
            ValueError: ``"<path>: not a smoothcert memory file: <reason>"``.
        """
        st = load_weights_only(path, _WHAT)
        mem = _from_state(cls, path, st, device, num_classes, shape)
        try:
            mem.check_invariant()
        except AssertionError as e:
            raise bad_file(path, _WHAT, f"its balls break the memory's invariant ({e})") from None
        return mem

    def check_invariant(self) -> None:
        """Raises AssertionError unless every two stored balls of different classes are disjoint,
        ``D(x_i, x_j) >= R_i + R_j`` in exact fp64 distances (one :func:`smoothcert.ops.ball_margin`
        call of every stored point against all others: O(N^2 d) work, no O(N^2) memory)."""
        if self.size < 2:
            return
        x, r, c = self._x[: self.size], self.radii, self.classes
        m, mi, _, _ = (t.cpu() for t in ops.ball_margin(x, x, r, c, c, p=self.p))
        bad = (mi >= 0) & (m < r)
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            j = int(mi[i])
            raise AssertionError(f"stored balls {j} and {i} of classes {int(c[j])} and {int(c[i])} "
                                 f"overlap: distance - R_j = {float(m[i])!r} < R_i = {float(r[i])!r}")


def _from_state(cls, path: str, st, device, num_classes: Optional[int], shape: Optional[Sequence[int]]) -> Memory:
    """The :class:`Memory` of a loaded state dict, or ValueError naming what is wrong
    (everything but the invariant, which needs the kernel)."""
    if not (isinstance(st, dict) and st.get("format") == MEMORY_FORMAT):
        found = f"format {st.get('format')!r}" if isinstance(st, dict) and "format" in st else describe(st)
        raise bad_file(path, _WHAT, f"expected format {MEMORY_FORMAT!r}, found {found}")
    require_keys(path, _WHAT, st, _KEYS)
    S = st["shape"]
    if not (isinstance(S, (list, tuple)) and all(is_int(s) and s >= 1 for s in S)):
        raise bad_file(path, _WHAT, f"'shape' must be a list of positive ints, found {S!r}")
    if shape is not None and tuple(S) != tuple(int(s) for s in shape):
        raise bad_file(path, _WHAT, f"it holds inputs of shape {list(S)}, expected {list(shape)}")
    if st["norm"] not in ("l1", "l2") or st["case_a"] not in ("min", "listing"):
        raise bad_file(path, _WHAT, f"unknown norm {st['norm']!r} or case_a {st['case_a']!r}")
    tol = st["tol"]
    if not (isinstance(tol, (int, float)) and not isinstance(tol, bool) and math.isfinite(tol) and tol > 0):
        raise bad_file(path, _WHAT, f"'tol' must be a finite number > 0, found {tol!r}")
    x = require_tensor(path, _WHAT, st["x"], "x", dtype=torch.float32, shape=[None, *S], finite=True)
    M = x.shape[0]
    radii = require_tensor(path, _WHAT, st["radii"], "radii", dtype=torch.float64, shape=[M], finite=True)
    classes = require_tensor(path, _WHAT, st["classes"], "classes", dtype=torch.int64, shape=[M])
    ids = require_tensor(path, _WHAT, st["ids"], "ids", dtype=torch.int64, shape=[M])
    if M and bool((radii < 0).any()):
        raise bad_file(path, _WHAT, f"'radii' holds negative values (first at row {int((radii < 0).nonzero()[0, 0])})")
    if num_classes is not None:
        if not (is_int(num_classes) and num_classes >= 1):
            raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
    bad = (classes < 0) | (classes >= num_classes) if num_classes is not None else classes < 0
    if M and bool(bad.any()):
        k = int(bad.nonzero()[0, 0])
        span = f"0..{num_classes - 1}" if num_classes is not None else ">= 0"
        raise bad_file(path, _WHAT, f"'classes' must lie in {span} (the model's classes), row {k} holds "
                                    f"{int(classes[k])}")
    counts = st["counts"]
    if not (isinstance(counts, dict) and all(k in CASES and is_int(v) and v >= 0 for k, v in counts.items())):
        raise bad_file(path, _WHAT, f"'counts' must map cases {list(CASES)} to counts >= 0, found {counts!r}")
    mem = cls(S, norm=st["norm"], tol=float(tol), case_a=st["case_a"], device=device)
    mem._x = x.reshape(M, mem.dim).to(device=mem.device, dtype=torch.float32).clone()
    mem._cls, mem._radius, mem._ids = classes.clone(), radii.clone(), ids.clone()
    mem.size = M
    mem.counts.update(counts)
    return mem
