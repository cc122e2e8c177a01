"""What a new user does on the first day, end to end: a network class of their own, trained
briefly on their own images, exported, then certified from the command line by export file and
by factory, on an image folder and on an ``.npz``; the rows equal the Python API's."""
import csv
import textwrap

import numpy as np
import pytest
import torch

from smoothcert import Smooth, data
from smoothcert.cli.main import main

NET = textwrap.dedent('''
    import torch
    from torch import nn


    class TinyNet(nn.Module):
        """The user's own network: it normalises in its own forward (so --normalize none)."""

        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

        def forward(self, x):
            return self.body((x - 0.3) / 0.4)


    def make():
        return TinyNet()
''')

SIGMA, N0, N, ALPHA, BATCH, SEED = 0.25, 16, 256, 0.001, 64, 3


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    """The user's module, weights, export, image folder and npz, from scikit-learn's digits."""
    from PIL import Image
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("user")
    (root / "newuser_nets.py").write_text(NET)
    digits = load_digits()
    pixels = np.round(digits.images * (255 / 16)).astype(np.uint8)  # [1797, 8, 8]
    labels = digits.target.astype(np.int64)
    train, test = slice(0, 1500), slice(1500, 1530)

    import importlib.util
    spec = importlib.util.spec_from_file_location("newuser_nets_fixture", root / "newuser_nets.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.manual_seed(0)
    net = mod.make()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    x = torch.from_numpy(pixels[train]).float().div(255).unsqueeze(1)
    y = torch.from_numpy(labels[train])
    for _ in range(15):  # Gaussian augmentation, as the user's own script would do it
        for b in range(0, len(x), 100):
            xb, yb = x[b:b + 100], y[b:b + 100]
            loss = torch.nn.functional.cross_entropy(net(xb + SIGMA * torch.randn_like(xb)), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    torch.save(net.state_dict(), root / "weights.pt")
    ep = torch.export.export(net, (torch.rand(2, 1, 8, 8),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(ep, str(root / "net.pt2"))

    folder = root / "images"
    for k, (img, lab) in enumerate(zip(pixels[test], labels[test])):
        d = folder / f"class_{lab}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img, mode="L").save(d / f"{k:03d}.png")
    np.savez(root / "test.npz", x=pixels[test], y=labels[test], num_classes=10)
    return root, net


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _api(net, name, root):
    split = data.load_dataset(name, "test", root=str(root))
    idx = torch.arange(len(split))
    res = Smooth(net, 10, SIGMA, seed=SEED).certify_batch(split.x[idx], N0, N, ALPHA, BATCH, indices=idx)
    return split, res


@pytest.mark.parametrize("source", ["export", "factory"])
@pytest.mark.parametrize("dataset", ["image-folder", "npz"])
def test_own_model_and_data_from_the_cli_equal_the_api(user, tmp_path, monkeypatch, source, dataset):
    root, net = user
    monkeypatch.chdir(root)  # the factory's module is in the user's working directory
    where = root / ("images" if dataset == "image-folder" else "test.npz")
    model = (["--model", str(root / "net.pt2")] if source == "export"
             else ["--model-factory", "newuser_nets:make", "--weights", str(root / "weights.pt")])
    out = tmp_path / "r.tsv"
    code = main(["certify", *model, "--normalize", "none", "--dataset", dataset, "--data-root", str(where),
                 "--sigma", str(SIGMA), "--n0", str(N0), "--n", str(N), "--alpha", str(ALPHA),
                 "--batch", str(BATCH), "--seed", str(SEED), "--no-progress", "--device", "cpu",
                 "--out", str(out)])
    assert code == 0
    split, res = _api(net, dataset, where)
    rows = _rows(out)
    assert [int(r["idx"]) for r in rows] == list(range(len(split)))
    assert [int(r["label"]) for r in rows] == split.y.tolist()
    assert [int(r["predict"]) for r in rows] == res.prediction.tolist()
    assert [float(r["radius"]) for r in rows] == res.radius.tolist()  # bit for bit: repr round-trips
    assert sum(int(r["correct"]) for r in rows) >= 20, "the briefly trained net should mostly be right"


def test_folder_and_npz_are_the_same_inputs(user):
    root, _ = user
    a = data.load_dataset("image-folder", "test", root=str(root / "images"))
    b = data.load_dataset("npz", "test", root=str(root / "test.npz"))
    # The folder orders by class then file name; the npz keeps the file order.
    order = sorted(range(len(b)), key=lambda i: (int(b.y[i]), i))
    assert torch.equal(a.x, b.x[order]) and torch.equal(a.y, b.y[order])
