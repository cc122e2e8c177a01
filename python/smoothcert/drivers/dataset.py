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

Safety of the files (docs/formats.md, "Resuming"): nothing is written before the
budget is validated and an existing file is proven to be a result of this kind
(its header and its sidecar); the first group of inputs is certified before the
sidecar and header are written, so a run that fails at once leaves nothing
behind; a run holds ``<out>.lock`` (``fcntl.flock``) while it writes, so two runs
never append to one file.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import platform
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import torch

from .._version import __version__
from ..utils import progress as progress_bar
from ..certify.family import PREFIX_TYPES, Budget, SmoothingFamily

PREFIX = list(PREFIX_TYPES)


def header_of(family: SmoothingFamily) -> List[str]:
    """The TSV header a family writes: Cohen's six columns, then its own."""
    return PREFIX + family.columns()


def stage_path(out: str) -> str:
    """The per-input stage file of a transductive family's run into ``out``."""
    return out + ".stage.tsv"


def lock_path(out: str) -> str:
    """The lock file a run holds while it writes ``out``."""
    return out + ".lock"


@dataclass
class _Existing:
    """What an existing result file holds: its complete rows, the byte length they end at
    (``keep``; a partial last line lies beyond it), its size and its sidecar's config."""

    rows: List[Dict[str, str]]
    keep: int = 0
    size: int = 0
    old_config: Optional[Dict[str, Any]] = None


def read_rows(path: str, header: List[str]) -> List[Dict[str, str]]:
    """The complete rows of ``path`` as dicts (``[]`` if it does not exist); never modifies it.

    Raises ValueError when ``path`` is not a result file with this ``header``, has a
    malformed row or a duplicated ``idx``."""
    return _inspect(path, header, need_sidecar=False).rows


def _inspect(path: str, header: List[str], need_sidecar: bool = True) -> _Existing:
    """Reads ``path`` without touching it and proves it is ours: the first line must be
    ``header`` and, if it holds anything beyond the header, a valid sidecar must exist."""
    if not os.path.exists(path):
        return _Existing([])
    with open(path, "rb") as f:
        raw = f.read()
    head = ("\t".join(header) + "\n").encode()
    if head.startswith(raw):  # empty, or our own header cut short: nothing to keep
        return _Existing([], 0, len(raw))
    nl = raw.find(b"\n")
    first = raw[: nl if nl >= 0 else 80].decode("utf-8", errors="replace").rstrip("\r")
    if not raw.startswith(head):
        raise ValueError(f"{path} exists and is not a smoothcert result of this kind (its first line is "
                         f"{first[:80]!r}, expected {head.decode().rstrip()[:80]!r}...); it was left untouched: "
                         "remove it or choose another --out")
    keep = raw.rfind(b"\n") + 1
    old = _read_sidecar(path) if need_sidecar else None
    if need_sidecar and old is None:
        raise ValueError(f"{path} has result rows but no valid sidecar {path}.json, so it is not known to be "
                         "this run's; it was left untouched: remove it or choose another --out")
    try:
        body = raw[len(head):keep].decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} holds bytes that are not UTF-8 text (offset {len(head) + e.start}); it was left "
                         "untouched: remove it or choose another --out") from None
    rows, seen = [], {}
    for lineno, line in enumerate(body.split("\n")[:-1], 2):
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise ValueError(f"{path}: line {lineno}: expected {len(header)} tab-separated fields, got "
                             f"{len(fields)}; the file is corrupted: remove it or choose another --out")
        row = dict(zip(header, fields))
        try:
            idx = int(row["idx"])
        except ValueError:
            raise ValueError(f"{path}: line {lineno}: idx {row['idx']!r} is not an integer") from None
        if idx in seen:
            raise ValueError(f"{path}: idx {idx} appears twice (lines {seen[idx]} and {lineno}), e.g. two runs "
                             "appended to one file; refusing to resume it: remove it or choose another --out")
        seen[idx] = lineno
        rows.append(row)
    return _Existing(rows, keep, len(raw), old)


def _read_sidecar(path: str) -> Optional[Dict[str, Any]]:
    """The ``config`` of ``path``'s sidecar, or None if it is missing or not one of ours."""
    try:
        with open(path + ".json", encoding="utf-8") as f:
            side = json.load(f)
    except (OSError, ValueError):
        return None
    return side["config"] if isinstance(side, dict) and isinstance(side.get("config"), dict) else None


def _check_target(path: str, what: str = "--out") -> None:
    """Refuses an output path no result file can live at."""
    if os.path.isdir(path):
        raise ValueError(f"{what} {path} is a directory, not a result file: give a file path such as "
                         f"{os.path.join(path, 'results.tsv')}")
    if os.path.exists(path) and not os.path.isfile(path):
        raise ValueError(f"{what} {path} exists and is not a regular file")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ValueError(f"{what} {path}: directory {parent} does not exist")


@contextlib.contextmanager
def _locked(path: str):
    """Holds an exclusive ``flock`` on :func:`lock_path` of ``path`` (it records the holder's
    pid); a second run on the same file is refused at once instead of appending beside it."""
    lock = lock_path(path)
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise ValueError(f"cannot create the lock file {lock} of {path}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.read(fd, 32).decode("ascii", errors="replace").strip()
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise ValueError(f"cannot lock {lock} of {path}: {e.strerror}") from None
            raise ValueError(f"{path} is being written by another run (pid {holder or 'unknown'} holds {lock}); "
                             "wait for it to finish or choose another --out") from None
        # The holder before us unlinks the lock file on release: ours must still be the file at that path.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    else:
        raise ValueError(f"cannot lock {lock} of {path}: it keeps being replaced")
    try:
        content = os.read(fd, 64)
        if content.strip() and not content.strip().isdigit():
            # A file of the user's that happens to have this name: not ours to overwrite or remove.
            os.close(fd)
            fd = -1
            raise ValueError(f"{lock} exists and is not a smoothcert lock file; it was left untouched: remove it "
                             "or choose another --out")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        if fd >= 0:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)
            os.close(fd)


def _side_record(config: Dict, family: SmoothingFamily, stage: bool = False) -> Dict[str, Any]:
    types = family.stage_column_types() if stage else family.column_types()
    columns = {name: t.__name__ for name, t in {**PREFIX_TYPES, **types}.items()}
    return {"config": config, "generator": family.generator(), "columns": columns, "smoothcert": __version__,
            "torch": torch.__version__, "python": platform.python_version(), "format": "docs/formats.md"}


def _config_to_write(path: str, state: _Existing, config: Dict) -> bool:
    """Whether ``path``'s sidecar must be (re)written for ``config``; refuses a differing one
    only when the file holds rows -- a file without rows never blocks a rerun."""
    if state.old_config is None:
        return True
    diff = {k: (state.old_config.get(k), v) for k, v in config.items() if state.old_config.get(k) != v}
    if diff and state.rows:
        raise ValueError(f"{path} was written with a different configuration {diff} (old, new); "
                         "refusing to mix results. Remove it or choose another --out")
    return bool(diff)


def _write_json(path: str, obj: Dict[str, Any]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def _row(res, k: int, i: int, label: int) -> list:
    pred = int(res.prediction[k])
    head = [i, label, pred, repr(float(res.radius[k])), int(pred == label), repr(float(res.seconds[k]))]
    return head + list(res.fields(k))


class _Appender:
    """Appends rows to a proven result file, writing its sidecar, cutting a partial last
    line and writing the header only when the first row is ready."""

    def __init__(self, path: str, header: List[str], state: _Existing, sidecar: Optional[Dict[str, Any]]):
        self.path, self.header, self.state, self.sidecar = path, header, state, sidecar
        self.f = None

    def _open(self):
        if self.f is None:
            if self.sidecar is not None:
                _write_json(self.path + ".json", self.sidecar)
            if os.path.exists(self.path) and self.state.size != self.state.keep:
                os.truncate(self.path, self.state.keep)
            self.f = open(self.path, "a")
            if self.state.keep == 0:
                self.f.write("\t".join(self.header) + "\n")
        return self.f

    def write(self, lines: List[str]) -> None:
        f = self._open()
        f.write("".join(lines))
        f.flush()

    def finish(self) -> None:
        """After a successful run that certified nothing new: still leave a (header-only) file,
        its sidecar and no partial line."""
        st = self.state
        if self.f is None and (st.keep == 0 or self.sidecar is not None or st.size != st.keep):
            self._open()

    def close(self) -> None:
        if self.f is not None:
            self.f.close()


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

    Raises ValueError, before writing anything, for a bad budget, an ``out`` that is a
    directory or an existing file that is not a result of this family and configuration
    (left byte for byte as it was), or one another run is writing.
    """
    budget = budget or Budget(**budget_kw)
    family.validate(budget)
    config = {**config, **family.config(budget)}
    transductive = bool(getattr(family, "TRANSDUCTIVE", False))
    rows_file = (stage or stage_path(out)) if transductive else out
    _check_target(out)
    if transductive:
        _check_target(rows_file, "--stage")
    header = PREFIX + (family.stage_columns() if transductive else family.columns())
    with contextlib.ExitStack() as held:
        held.enter_context(_locked(out))
        if transductive and os.path.abspath(rows_file) != os.path.abspath(out):
            held.enter_context(_locked(rows_file))
        final = _inspect(out, header_of(family)) if transductive else None
        state = _inspect(rows_file, header)
        if transductive:
            stage_config = {k: v for k, v in config.items() if k not in family.allocation_keys()}
            out_side = _record_if(_config_to_write(out, final, config), config, family)
            row_side = _record_if(_config_to_write(rows_file, state, stage_config), stage_config, family, stage=True)
        else:
            row_side = _record_if(_config_to_write(out, state, config), config, family)
        rows = state.rows
        wanted = set(indices)
        if transductive and any(int(r["idx"]) not in wanted for r in rows):
            raise ValueError(f"{rows_file} holds inputs outside this run's set; a transductive certificate depends "
                             "on the whole set, so remove it or choose another --out")
        done = {int(r["idx"]) for r in rows}
        if rows and not transductive:
            family.resume(rows, lambda ids: _inputs(x, ids, device))
        todo = [i for i in indices if i not in done]
        sink = _Appender(rows_file, header, state, row_side)
        try:
            written = _write_rows(family, x, y, indices, todo, sink, budget, progress, device)
            sink.finish()
        finally:
            sink.close()
        if transductive:
            written = _allocate(family, x, y, indices, rows_file, header, out, budget, device, out_side)
        family.finish()
        summary = family.summary()
        if summary and os.path.exists(out + ".json"):
            with open(out + ".json") as f:
                side = json.load(f)
            # A resumed run only saw part of the inputs: keep what an earlier part recorded and it did not.
            side["summary"] = {**side.get("summary", {}), **summary}
            _write_json(out + ".json", side)
    return written


def _record_if(write: bool, config: Dict, family: SmoothingFamily, stage: bool = False) -> Optional[Dict[str, Any]]:
    return _side_record(config, family, stage) if write else None


def _lines(res, ids, y) -> List[str]:
    """The TSV lines of a group's result ``res`` for dataset indices ``ids`` (labels ``y``)."""
    return ["\t".join(str(v) for v in _row(res, k, i, int(y[i]))) + "\n" for k, i in enumerate(ids)]


def _write_rows(family, x, y, indices, todo, sink: _Appender, budget, progress, device) -> int:
    bar = progress_bar(total=len(indices), initial=len(indices) - len(todo), desc="certify",
                       unit="input") if progress else None
    written = 0
    for ids, res in family.certify_stream(lambda ids: _inputs(x, ids, device), todo, budget):
        sink.write(_lines(res, ids, y))
        written += len(ids)
        if bar is not None:
            note = family.progress_note()
            if note:
                bar.set_postfix(**note)
            bar.update(len(ids))
    if bar is not None:
        bar.close()
    return written


def _allocate(family, x, y, indices, stage, header, out, budget, device, out_side) -> int:
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
    if out_side is not None:
        _write_json(out + ".json", out_side)
    os.replace(tmp, out)
    return len(order)


def _inputs(x, ids: List[int], device: Optional[torch.device]) -> torch.Tensor:
    X = x[ids]
    return X.to(device) if device is not None else X
