"""Timing helpers shared by the bench scripts (ratios taken in one run, interleaved)."""
from __future__ import annotations

import argparse
import json
import platform
import time

import torch

import smoothcert


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed_interleaved(fns, device, repeat, warmups=None):
    """Best wall time of each function, timed in interleaved rounds (a, b, c,
    a, b, c, ...) so that drifting machine load affects all alike. ``warmups``
    (default: ``fns``) are run once first (allocations, oneDNN/cuDNN set-up);
    a cheaper warm-up keeps a full Monte-Carlo round at n = 100,000 out of it."""
    for fn in warmups or fns:
        fn()
    sync(device)
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            sync(device)
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


def write_json(path: str, device: str, results, **extra) -> None:
    """Results plus the environment they were measured in."""
    env = {"torch": torch.__version__, "smoothcert": smoothcert.__version__, "threads": torch.get_num_threads(),
           "python": platform.python_version(), "machine": platform.machine(),
           "gpu": torch.cuda.get_device_name() if device == "cuda" else None, **extra}
    with open(path, "w") as f:
        json.dump({"env": env, "results": results}, f, indent=2)


def bench_args(doc: str) -> argparse.Namespace:
    """The options every bench takes: --device, --quick (the test suite's smoke run), --repeat, --json."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true", help="tiny sizes (the test suite's smoke run)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", default=None)
    return p.parse_args()
