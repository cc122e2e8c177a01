"""Progress reporting that suits both a terminal and a log file.

On a terminal this is a tqdm bar. When the stream is not a terminal (CI logs,
``nohup``, ``> log``) a bar redrawn per batch would write one line per batch, so
instead a plain line is printed at most every ``interval`` seconds (default 10,
``SMOOTHCERT_PROGRESS_INTERVAL`` overrides it), plus one at the end.
"""
from __future__ import annotations

import os
import sys
import time
from typing import IO, Iterable, Iterator, Optional


def _is_tty(stream: IO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class LogProgress:
    """A tqdm-like counter (``update``, ``set_postfix``, ``close``, iteration) printing
    ``desc: done/total (pct) rate, ETA`` lines at most every ``interval`` seconds."""

    def __init__(self, iterable: Optional[Iterable] = None, *, total: Optional[int] = None, initial: int = 0,
                 desc: str = "", unit: str = "it", file: Optional[IO] = None, interval: float = 10.0):
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total, self.n, self.desc, self.unit = total, initial, desc, unit
        self.file = file or sys.stderr
        self.interval = interval
        self.postfix = ""
        self._start_n = initial
        self._t0 = self._last = time.monotonic()
        self._closed = False

    def __iter__(self) -> Iterator:
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def set_postfix(self, **kw) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in kw.items())

    def update(self, k: int = 1) -> None:
        self.n += k
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._print(now)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._print(time.monotonic())

    def _print(self, now: float) -> None:
        elapsed = now - self._t0
        done = self.n - self._start_n
        parts = [f"{self.desc}: {self.n}" + (f"/{self.total}" if self.total else "") + f" {self.unit}"]
        if self.total:
            parts.append(f"({100.0 * self.n / self.total:.0f}%)")
        parts.append(f"{elapsed:.0f} s")
        if done > 0 and elapsed > 0:
            parts.append(f"{done / elapsed:.3g} {self.unit}/s")
            if self.total and self.n < self.total:
                parts.append(f"ETA {(self.total - self.n) * elapsed / done:.0f} s")
        if self.postfix:
            parts.append(self.postfix)
        print(" ".join(parts), file=self.file, flush=True)


def progress(iterable: Optional[Iterable] = None, *, total: Optional[int] = None, initial: int = 0,
             desc: str = "", unit: str = "it", file: Optional[IO] = None):
    """A progress bar over ``iterable`` (or a counter to ``update``): tqdm on a terminal,
    :class:`LogProgress` lines every few seconds otherwise. Writes to stderr by default."""
    stream = file or sys.stderr
    if _is_tty(stream):
        from tqdm.auto import tqdm
        return tqdm(iterable, total=total, initial=initial, desc=desc, unit=unit, file=stream)
    interval = float(os.environ.get("SMOOTHCERT_PROGRESS_INTERVAL", "10"))
    return LogProgress(iterable, total=total, initial=initial, desc=desc, unit=unit, file=stream,
                       interval=interval)
