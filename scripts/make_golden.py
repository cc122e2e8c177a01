#!/usr/bin/env python3
"""Records what smoothcert computes today, so that a refactor can prove it changed nothing.

    python scripts/make_golden.py OUT.json            # write the record
    python scripts/make_golden.py OUT.json --check tests/golden/golden.json

The record holds, for the built-in ``digits`` data (no download):

* one short ``smoothcert train`` run per loss, noise, sigma policy and sigma mode: a SHA-256
  of every tensor of the checkpoint's state_dict, and its metadata (without paths);
* ``smoothcert certify`` of three inputs per family, sigma mode and certificate (and
  ``fit-sigma``'s sigma file): every TSV row without the ``time`` column, and the sidecar's
  configuration;
* the Python API (``certify``/``predict``/``certify_batch`` of each family, one conv model in
  both memory formats): every tensor of the result records.

Floats are written with ``float.hex`` (exact); large tensors as a SHA-256 of their bytes.
``--check`` compares with a committed record and names the first differences (exit 1).

Training is compared within a relative tolerance (:data:`TRAIN_RTOL`), not bit for bit: the
float sums of a training step follow the CPU's vector instructions (oneDNN and the BLAS pick
AVX2 or AVX-512 kernels), so the same code on another CPU trains weights a few ulps apart.
Checkpoint tensors therefore also carry a fingerprint (float64 sum and sum of absolute values)
that is compared instead of their hash. Everything else -- every certificate, every API
result -- stays bit for bit.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import io
import json
import os
import re
import sys
import tempfile
import warnings

import numpy as np
import torch

SMALL = 64  # tensors up to this many elements are written out, larger ones hashed
TRAIN_RTOL = 1e-4  # training's tolerance (module docstring); measured CPU-to-CPU gaps are ~1e-7


def tensor_record(t: torch.Tensor, fingerprint: bool = False):
    t = t.detach().cpu().contiguous()
    if t.numel() <= SMALL:
        vals = t.double().reshape(-1).tolist() if t.is_floating_point() else t.reshape(-1).tolist()
        if t.is_floating_point():
            vals = [float(v).hex() for v in vals]
        return {"dtype": str(t.dtype), "shape": list(t.shape), "values": vals}
    out = {"dtype": str(t.dtype), "shape": list(t.shape),
           "sha256": hashlib.sha256(t.numpy().tobytes()).hexdigest()}
    if fingerprint and t.is_floating_point():
        d = t.double()
        out["fingerprint"] = [float(d.sum()).hex(), float(d.abs().sum()).hex()]
    return out


def plain(v):
    """A JSON-able, exact form of ``v`` (result records, metadata)."""
    if isinstance(v, torch.Tensor):
        return tensor_record(v)
    if isinstance(v, np.ndarray):
        return tensor_record(torch.from_numpy(np.ascontiguousarray(v)))
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v) if f.name != "seconds"}
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, float):
        return float(v).hex()
    if isinstance(v, (np.floating,)):
        return float(v).hex()
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (str, int, bool)) or v is None:
        return v
    if hasattr(v, "__dict__"):
        return {"type": type(v).__name__, **{k: plain(x) for k, x in sorted(vars(v).items())}}
    return repr(v)


# metadata that names where or when a run happened, not what it computed
VOLATILE = {"command", "path", "out", "time", "seconds", "started", "finished", "hostname", "data_root",
            "model_path", "model_sha256", "created", "elapsed", "wall_s", "weights_sha256", "python",
            "torch", "smoothcert", "version", "platform"}


def scrub(v, tmp: str):
    """``v`` without what names where a run happened: paths under ``tmp`` and the hashes of
    files that record their own command line (checkpoints, sigma files)."""
    if isinstance(v, dict):
        return {k: scrub(x, tmp) for k, x in v.items()
                if k not in VOLATILE and not (k.endswith("sha256") and k != "data_sha256")}
    if isinstance(v, list):
        return [scrub(x, tmp) for x in v]
    if isinstance(v, str):
        return re.sub(r"sha256:[0-9a-f]{64}", "sha256:<file>", v.replace(tmp, "<tmp>"))
    return v


def cli(argv):
    from smoothcert import cli as smoothcert_cli
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = smoothcert_cli.main(argv)
    if rc != 0:
        raise SystemExit(f"smoothcert {' '.join(argv)} failed ({rc}):\n{err.getvalue()}")


def checkpoint_record(path: str, tmp: str):
    from smoothcert import models
    info = models.checkpoint_info(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    sd = state.get("state_dict", state.get("model", state)) if isinstance(state, dict) else state
    tensors = {k: tensor_record(v, fingerprint=True) for k, v in sorted(sd.items()) if isinstance(v, torch.Tensor)}
    meta = scrub(plain({k: v for k, v in info.items() if k not in ("state_dict",)}), tmp)
    extra = {}
    if isinstance(state, dict):
        for k, v in sorted(state.items()):
            if isinstance(v, torch.Tensor):
                extra[k] = tensor_record(v, fingerprint=True)
    return {"state_dict": tensors, "tensors": extra, "meta": meta}


def tsv_record(path: str, tmp: str):
    with open(path) as f:
        lines = [line.rstrip("\n").split("\t") for line in f]
    t = lines[0].index("time")
    rows = [line[:t] + line[t + 1:] for line in lines]
    rec = {"rows": rows}
    side = path + ".json"
    if os.path.exists(side):
        with open(side) as f:
            rec["config"] = scrub(json.load(f).get("config", {}), tmp)
    return rec


TRAIN_COMMON = ["--arch", "mlp", "--dataset", "digits", "--max-train", "128", "--batch", "64", "--lr", "0.05",
                "--no-progress"]

TRAIN_CASES = {
    "gaussian": ["--method", "gaussian", "--sigma", "0.25", "--epochs", "2"],
    "gaussian-step": ["--method", "gaussian", "--sigma", "0.25", "--epochs", "2", "--schedule", "step",
                      "--milestones", "1"],
    "smoothadv": ["--method", "smoothadv", "--sigma", "0.25", "--epochs", "1", "--m", "2", "--pgd-steps", "1",
                  "--epsilon", "0.3", "--warmup", "1"],
    "smoothadv-single": ["--method", "smoothadv", "--sigma", "0.25", "--epochs", "1", "--m", "2",
                         "--pgd-steps", "1", "--single-copy"],
    "macer": ["--method", "macer", "--sigma", "0.25", "--epochs", "1", "--k", "4"],
    "stability": ["--method", "stability", "--sigma", "0.25", "--epochs", "1"],
    "uniform": ["--method", "gaussian", "--noise", "uniform", "--sigma", "0.5", "--epochs", "1"],
    "stability-ssn": ["--method", "stability", "--noise", "ssn", "--sigma", "0.5", "--epochs", "1"],
    "dssn": ["--method", "gaussian", "--noise", "dssn", "--q", "16", "--sigma", "0.5", "--epochs", "1"],
    "pretrain-finetune": ["--method", "pretrain-finetune", "--sigma-min", "0.12", "--sigma-max", "0.5",
                          "--pretrain-epochs", "1", "--finetune-epochs", "1", "--select-samples", "32",
                          "--select-batch", "256", "--m", "2", "--pgd-steps", "1", "--epsilon", "0.3",
                          "--warmup", "1", "--single-copy"],
    "pretrain-finetune-gaussian": ["--method", "pretrain-finetune", "--loss", "gaussian", "--sigma-min", "0.12",
                                   "--sigma-max", "0.5", "--pretrain-epochs", "1", "--finetune-epochs", "1",
                                   "--select-samples", "16", "--select-batch", "256"],
}

CERT_COMMON = ["--dataset", "digits", "--n0", "16", "--n", "200", "--batch", "256", "--skip", "7", "--max", "21",
               "--no-progress"]

CERT_CASES = {
    "gaussian": ["--sigma", "0.25"],
    "gaussian-seed": ["--sigma", "0.25", "--seed", "5", "--alpha", "0.01"],
    "gaussian-bf16": ["--sigma", "0.25", "--dtype", "bfloat16"],
    "uniform": ["--noise", "uniform", "--sigma", "0.5"],
    "ssn": ["--noise", "ssn", "--sigma", "0.5"],
    "dssn": ["--noise", "dssn", "--sigma", "0.5", "--q", "16"],
    "dssn-offset": ["--noise", "dssn", "--sigma", "0.5", "--q", "16", "--offset-seed", "3"],
    "ddrs": ["--sigma", "0.25", "--sigma-mode", "ddrs"],
    "samplewise": ["--sigma", "0.25", "--sigma-mode", "samplewise", "--sigma-min", "0.1", "--sigma-max", "0.6",
                   "--select-samples", "16"],
    "samplewise-lp": ["--sigma", "0.25", "--sigma-mode", "samplewise", "--sigma-min", "0.1", "--sigma-max",
                      "0.6", "--select-samples", "16", "--regions", "lp"],
    "sos": ["--sigma", "0.25", "--certificate", "sos"],
    "dipole": ["--sigma", "0.25", "--certificate", "dipole"],
    "dipole-only": ["--sigma", "0.25", "--certificate", "dipole", "--no-first-order"],
}


def api_cases(model, X):
    """(name, thunk) pairs of the Python API on the trained digits model and inputs ``X`` [3, *S]."""
    from smoothcert import certify as C
    from smoothcert.sigma.optimize import OptimizeSigma

    K = 10
    cases = []

    def add(name, fn):
        cases.append((name, fn))

    add("Smooth.certify", lambda: C.Smooth(model, K, 0.25, seed=1).certify(X[0], 16, 300, 0.001, 100, index=4))
    add("Smooth.predict", lambda: C.Smooth(model, K, 0.25, seed=1).predict(X[1], 200, 0.01, 64, index=2))
    add("Smooth.certify_batch", lambda: C.Smooth(model, K, 0.25).certify_batch(X, 10, 250, 0.001, 128,
                                                                             indices=[3, 9, 1]))
    add("Smooth.certify_batch.big-n", lambda: C.Smooth(model, K, 0.5).certify_batch(X[:2], 10, 700, 0.001, 256))
    add("Smooth.predict_batch", lambda: C.Smooth(model, K, 0.25).predict_batch(X, 100, 0.001, 64))
    add("Smooth.certify_batch.sigma-per-input", lambda: C.Smooth(
        model, K, torch.tensor([0.2, 0.3, 0.4])).certify_batch(X, 10, 200, 0.001, 128))
    add("Smooth.certify_batch.clamp", lambda: C.Smooth(model, K, 0.5, clamp=(0.0, 1.0)).certify_batch(
        X, 10, 200, 0.001, 128))
    add("UniformSmooth.certify_batch", lambda: C.UniformSmooth(model, K, 0.5).certify_batch(X, 10, 200, 0.001, 128))
    add("SsnSmooth.certify_batch", lambda: C.SsnSmooth(model, K, 0.5).certify_batch(X, 10, 200, 0.001, 128))
    add("SplitSmooth.ssn", lambda: C.SplitSmooth(model, K, 0.5, q=16, deterministic=False, seed=2).certify_batch(
        X, 10, 200, 0.001, 128))
    add("SplitSmooth.dssn", lambda: C.SplitSmooth(model, K, 0.5, q=16, seed=3).certify_batch(X, batch_size=128))
    add("SplitSmooth.dssn.quantize", lambda: C.SplitSmooth(model, K, 0.5, q=16, quantize=True).certify(
        X[1], batch_size=100, index=8))
    add("AnisotropicSmooth.certify_batch", lambda: C.AnisotropicSmooth(
        model, K, 0.2 + 0.3 * torch.linspace(0, 1, X[0].numel()).view_as(X[0])).certify_batch(X, 10, 200, 0.001, 128))
    add("SecondOrderSmooth.certify_batch", lambda: C.SecondOrderSmooth(model, K, 0.25).certify_batch(
        X, 10, 200, 0.001, 128))
    add("DipoleSmooth.certify_batch", lambda: C.DipoleSmooth(model, K, 0.25).certify_batch(X, 10, 200, 0.001, 128))
    add("DataDependentSmooth.certify_batch", lambda: C.DataDependentSmooth(
        C.Smooth(model, K, 0.25), OptimizeSigma(steps=3, lr=0.01)).certify_batch(X, 10, 200, 0.001, 128))
    add("DataDependentSmooth.uniform", lambda: C.DataDependentSmooth(
        C.UniformSmooth(model, K, 0.5), OptimizeSigma(steps=2, lr=0.01)).certify_batch(X, 10, 200, 0.001, 128))
    return cases


class TinyConv(torch.nn.Module):
    """A conv model whose float arithmetic may depend on the memory format."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(7)
        self.conv = torch.nn.Conv2d(1, 6, 3, padding=1)
        self.fc = torch.nn.Linear(6 * 8 * 8, 10)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        self.eval()

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def api_record(fn):
    try:
        return plain(fn())
    except Exception as e:  # a failure is part of the behaviour
        return {"error": f"{type(e).__name__}: {e}"}


def build(out: str) -> dict:
    torch.set_num_threads(1)  # the models' float sums may depend on the thread count
    warnings.simplefilter("ignore")
    from smoothcert import certify as C, data, models

    record = {"train": {}, "certify": {}, "api": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in TRAIN_CASES.items():
            ckpt = os.path.join(tmp, f"{name}.pt")
            cli(["train", *TRAIN_COMMON, *extra, "--out", ckpt])
            record["train"][name] = checkpoint_record(ckpt, tmp)
        base = os.path.join(tmp, "gaussian.pt")
        cli(["train", *TRAIN_COMMON, "--method", "gaussian", "--sigma", "0.25", "--epochs", "1",
             "--sigma-mode", "ddrs", "--ddrs-lr", "0.01", "--init", base, "--out", os.path.join(tmp, "ds2.pt")])
        record["train"]["ddrs-init"] = checkpoint_record(os.path.join(tmp, "ds2.pt"), tmp)
        table = os.path.join(tmp, "table.pt")
        torch.save(0.1 + 0.4 * torch.rand(128, generator=torch.Generator().manual_seed(3)), table)
        cli(["train", *TRAIN_COMMON, "--method", "gaussian", "--sigma-table", table, "--epochs", "1",
             "--out", os.path.join(tmp, "table-model.pt")])
        record["train"]["sigma-table"] = checkpoint_record(os.path.join(tmp, "table-model.pt"), tmp)

        for name, extra in CERT_CASES.items():
            ckpt = os.path.join(tmp, "uniform.pt" if name in ("uniform",) else
                                "stability-ssn.pt" if name == "ssn" else "dssn.pt" if name.startswith("dssn")
                                else "pretrain-finetune.pt" if name.startswith("samplewise") else "gaussian.pt")
            tsv = os.path.join(tmp, f"{name}.tsv")
            cli(["certify", "--model", ckpt, *CERT_COMMON, *extra, "--out", tsv])
            record["certify"][name] = tsv_record(tsv, tmp)
        fit = os.path.join(tmp, "fit")
        cli(["fit-sigma", "--model", base, "--dataset", "digits", "--out", fit, "--c0", "0.5",
             "--sub-epochs", "1", "--samples", "4", "--val", "60", "--fit-count", "120", "--eval-n0", "8",
             "--eval-n", "64", "--no-progress"])
        sfile = os.path.join(fit, "c0_0.5", "sigma.pt")
        record["certify"]["fit-sigma.sigma"] = scrub(plain(torch.load(sfile, map_location="cpu", weights_only=True)),
                                                     tmp)
        for name, extra in {"anisotropic": [], "anisotropic-two-sided": ["--two-sided"]}.items():
            tsv = os.path.join(tmp, f"{name}.tsv")
            cli(["certify", "--model", base, *CERT_COMMON, "--sigma-file", sfile, *extra, "--out", tsv])
            record["certify"][name] = tsv_record(tsv, tmp)

        model = models.load_checkpoint(base)[0].eval()
        X = data.load_dataset("digits", "test").x[[0, 5, 17]].float()
        for name, fn in api_cases(model, X):
            record["api"][name] = api_record(fn)
        conv = TinyConv()
        for cl in (False, True):
            record["api"][f"Smooth.conv.channels_last={cl}"] = api_record(
                lambda: C.Smooth(conv, 10, 0.25, channels_last=cl).certify_batch(X, 10, 300, 0.001, 128))
    with open(out, "w") as f:
        json.dump(record, f, indent=1, sort_keys=True)
        f.write("\n")
    return record


def _close(a, b, rtol: float) -> bool:
    """Two hex floats within ``rtol`` of each other (exactly equal when ``rtol`` is 0)."""
    try:
        x, y = float.fromhex(a), float.fromhex(b)
    except (TypeError, ValueError):
        return False
    return x == y or abs(x - y) <= rtol * max(abs(x), abs(y))


def differences(a, b, path="", out=None, limit=20, rtol=0.0):
    """Where record ``a`` differs from the golden ``b``; under ``/train`` floats may differ by
    :data:`TRAIN_RTOL` and a fingerprinted tensor's hash is not compared."""
    out = [] if out is None else out
    if len(out) >= limit:
        return out
    if path == "/train":
        rtol = TRAIN_RTOL
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b))
        if rtol and "fingerprint" in a and "fingerprint" in b:
            keys = [k for k in keys if k != "sha256"]
        for k in keys:
            if k not in a or k not in b:
                out.append(f"{path}/{k}: only in {'new' if k in a else 'golden'}")
            else:
                differences(a[k], b[k], f"{path}/{k}", out, limit, rtol)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            differences(x, y, f"{path}[{i}]", out, limit, rtol)
    elif a != b and not (rtol and _close(a, b, rtol)):
        out.append(f"{path}: {json.dumps(b)[:200]} (golden) != {json.dumps(a)[:200]} (now)")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="where to write the record (JSON)")
    p.add_argument("--check", default=None, help="a committed record to compare with")
    args = p.parse_args(argv)
    rec = json.loads(json.dumps(build(args.out)))
    if args.check:
        with open(args.check) as f:
            golden = json.load(f)
        diff = differences(rec, golden)
        if diff:
            print("differs from", args.check, *diff, sep="\n  ", file=sys.stderr)
            return 1
        print("identical to", args.check)
    return 0


if __name__ == "__main__":
    sys.exit(main())
