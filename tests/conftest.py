"""pytest configuration: skip CUDA cases without a GPU and a CUDA build, and keep
tests from leaking global RNG state into each other."""
import os
import random
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # `import helpers`

import smoothcert  # noqa: E402  (registers the operators)
from smoothcert import ops  # noqa: E402


def _cuda_usable() -> bool:
    return torch.cuda.is_available() and ops.cuda_version() >= 0


def pytest_collection_modifyitems(config, items):
    if _cuda_usable():
        return
    why = ("no CUDA GPU visible" if not torch.cuda.is_available()
           else "smoothcert was built without CUDA (cuda_version() == -1)")
    skip = pytest.mark.skip(reason=f"needs_cuda: {why}")
    for item in items:
        if "needs_cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _restore_rng_state():
    """Saves and restores the torch, CUDA, numpy and Python RNG states around each test."""
    torch_state = torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    np_state = np.random.get_state()
    py_state = random.getstate()
    yield
    torch.set_rng_state(torch_state)
    if cuda_states is not None:
        torch.cuda.set_rng_state_all(cuda_states)
    np.random.set_state(np_state)
    random.setstate(py_state)


@pytest.fixture(scope="session")
def digits_checkpoint(tmp_path_factory):
    """A smoothcert checkpoint of a small MLP trained for 3 epochs on digits at sigma 0.25
    (shared by the CLI tests of every family)."""
    from smoothcert import data, models
    from smoothcert.train import train_gaussian

    path = str(tmp_path_factory.mktemp("ckpt") / "mlp.pt")
    model = models.build_model("mlp", "digits")
    train_gaussian(model, data.load_dataset("digits", "train"), 0.25, epochs=3, progress=False)
    models.save_checkpoint(path, model, arch="mlp", dataset="digits", meta={"method": "gaussian", "sigma": 0.25})
    return path
