"""Build guard: the operator library is loaded, every op has its kernels, and a
machine with a visible GPU did not silently build CPU-only."""
import os
import subprocess
import sys

import pytest
import torch

import smoothcert
from smoothcert import ops

KERNEL_OPS = ("sample_noise", "sample_noise_backward", "sample_noise_pairs", "count_votes_", "dssn_batch", "ball_margin",
              "pair_distances")
OPS = KERNEL_OPS + ("cuda_version",)


def has_kernel(op: str, key: str) -> bool:
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"smoothcert::{op}", key)


def test_extension_loaded():
    assert smoothcert._C.__name__ == "smoothcert._C"
    path = smoothcert._C.__file__
    assert os.path.isfile(path)
    if os.name == "posix" and torch.__version__ >= (2, 6, 0):
        assert path.endswith(".abi3.so"), path  # built against the limited API (setup.py)


@pytest.mark.skipif("OpenMP" not in torch.__config__.parallel_info() or not sys.platform.startswith("linux"),
                    reason="torch is not an OpenMP build")
def test_kernels_built_with_openmp():
    """at::parallel_for is a header template: compiled without -fopenmp, the CPU
    kernels would silently run on one thread. The module must call into
    libgomp (the copy torch loaded)."""
    with open(smoothcert._C.__file__, "rb") as f:
        assert b"GOMP_parallel" in f.read()
    # In a fresh process: other packages (scikit-learn) load their own vendored copies, which
    # says nothing about ours.
    code = ("import torch, smoothcert\n"
            "gomp = {l.split()[-1] for l in open('/proc/self/maps') if 'libgomp' in l}\n"
            "print(len(gomp), sorted(gomp))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert out.split()[0] in ("0", "1"), f"two OpenMP runtimes loaded: {out}"


@pytest.mark.parametrize("op", OPS)
def test_ops_registered(op):
    packet = getattr(torch.ops.smoothcert, op)
    assert callable(packet.default)
    assert packet.default._schema.name == f"smoothcert::{op}"


def test_schemas():
    noise = str(torch.ops.smoothcert.sample_noise.default._schema)
    assert noise.startswith("smoothcert::sample_noise(Tensor x, Tensor ids, Tensor sigma, int samples")
    assert noise.endswith("-> Tensor")
    votes = torch.ops.smoothcert.count_votes_.default._schema
    assert [a.name for a in votes.arguments] == ["logits", "samples", "counts", "nonfinite"]
    assert votes.arguments[2].alias_info.is_write  # counts is mutated in place
    assert votes.arguments[3].alias_info.is_write  # and so is the optional nonfinite
    assert not votes.returns


@pytest.mark.parametrize("op", KERNEL_OPS)
def test_cpu_kernels_registered(op):
    assert has_kernel(op, "CPU")


def test_cuda_version_matches_registered_kernels():
    """cuda_version() is -1 exactly when no CUDA kernels were built."""
    v = ops.cuda_version()
    assert isinstance(v, int)
    cuda_kernels = [has_kernel(op, "CUDA") for op in KERNEL_OPS]
    assert len(set(cuda_kernels)) == 1
    assert (v == -1) == (not cuda_kernels[0])
    if v != -1:
        assert v >= 11000 and torch.version.cuda is not None


@pytest.mark.needs_cuda  # so scripts/gpu_check.py (pytest -m needs_cuda) runs it
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible")
def test_gpu_machine_builds_cuda_kernels():
    """Fails loudly (rather than skipping every CUDA test) if a GPU machine built CPU-only."""
    v = ops.cuda_version()
    assert v != -1, "a GPU is visible but smoothcert was built without CUDA; rebuild with nvcc on PATH"
    major, minor = (int(p) for p in torch.version.cuda.split(".")[:2])
    assert v == 1000 * major + 10 * minor
    for op in KERNEL_OPS:
        assert has_kernel(op, "CUDA"), op
