"""Tests for smoothcert.models: normalisation, architectures, checkpoints."""

import os

import pytest
import torch
from torch import nn

from smoothcert import data, models


def test_normalize_layer_math():
    layer = models.NormalizeLayer((0.5, 0.25, 0.0), (0.5, 2.0, 1.0))
    assert layer.mean.shape == (3, 1, 1) and layer.std.shape == (3, 1, 1)
    assert set(layer.state_dict()) == {"mean", "std"}
    assert not list(layer.parameters())
    x = torch.rand(4, 3, 5, 5)
    y = layer(x)
    assert torch.allclose(y[:, 0], (x[:, 0] - 0.5) / 0.5)
    assert torch.allclose(y[:, 1], (x[:, 1] - 0.25) / 2.0)
    assert torch.allclose(y[:, 2], x[:, 2])
    with pytest.raises(ValueError):
        models.NormalizeLayer((0.5,), (0.0,))


@pytest.mark.parametrize("arch,dataset", [("mlp", "digits"), ("lenet", "mnist"),
                                          ("mlp", "mnist"), ("lenet", "cifar10")])
def test_build_model_logits(arch, dataset):
    model = models.build_model(arch, dataset)
    assert isinstance(model[0], models.NormalizeLayer)
    x = torch.rand(3, *data.input_shape(dataset))
    assert model(x).shape == (3, 10)


def test_architectures_direct():
    assert models.TinyMLP()(torch.rand(2, 1, 8, 8)).shape == (2, 10)
    net = models.LeNet()
    assert net.classifier[0].in_features == 400
    assert net(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_unknown_arch():
    with pytest.raises(ValueError) as e:
        models.build_model("resnet999", "mnist")
    assert "lenet" in str(e.value) and "mlp" in str(e.value)


def _built(arch="mlp", dataset="digits", seed=0):
    torch.manual_seed(seed)
    return models.build_model(arch, dataset)


def test_checkpoint_roundtrip(tmp_path):
    model = _built("lenet", "mnist")
    meta = {"method": "gaussian", "sigma": 0.25, "epochs": 3, "argv": ["train", "--x"],
            "nested": {"ok": True, "none": None}}
    path = tmp_path / "sub" / "m.pt"
    models.save_checkpoint(str(path), model, arch="lenet", dataset="mnist", meta=meta)
    assert path.exists() and not os.path.exists(str(path) + ".tmp")
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == models.CHECKPOINT_FORMAT and "0.mean" in raw["state_dict"]
    loaded, info = models.load_checkpoint(path)
    assert not loaded.training
    assert info["meta"] == meta and info["arch"] == "lenet" and info["dataset"] == "mnist"
    assert info["num_classes"] == 10
    x = torch.rand(5, 1, 28, 28)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_meta_must_be_plain(tmp_path):
    with pytest.raises(TypeError, match="meta"):
        models.save_checkpoint(tmp_path / "m.pt", _built(), arch="mlp", dataset="digits",
                               meta={"bad": torch.zeros(1)})
    with pytest.raises(ValueError, match="build_model"):
        models.save_checkpoint(tmp_path / "m.pt", _built()[1], arch="mlp", dataset="digits")


def test_not_smoothcert_checkpoint(tmp_path):
    p = tmp_path / "other.pt"
    torch.save({"foo": 1, "bar": [2]}, p)
    with pytest.raises(ValueError) as e:
        models.load_checkpoint(p)
    assert "format" in str(e.value) and "foo" in str(e.value)


def test_missing_and_unknown_arch_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        models.load_checkpoint(tmp_path / "nope.pt")
    p = tmp_path / "weird.pt"
    torch.save({"format": models.CHECKPOINT_FORMAT, "arch": "resnet999", "dataset": "mnist",
                "num_classes": 10, "state_dict": {}, "meta": {}}, p)
    with pytest.raises(ValueError, match="unknown architecture"):
        models.load_checkpoint(p)


@pytest.mark.parametrize("whole", [True, False])
def test_raw_state_dict_with_explicit_arch(tmp_path, whole):
    model = _built().eval()
    p = tmp_path / "raw.pt"
    torch.save((model if whole else model[1]).state_dict(), p)
    with pytest.raises(ValueError, match="arch="):
        models.load_checkpoint(p)
    loaded, info = models.load_checkpoint(p, arch="mlp", dataset="digits")
    assert info["arch"] == "mlp" and info["format"] is None and not loaded.training
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_register_architecture():
    @models.register_architecture("linear")
    def _lin(num_classes, in_channels, hw):
        return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * hw[0] * hw[1], num_classes))
    try:
        assert models.build_model("linear", "digits")(torch.rand(2, 1, 8, 8)).shape == (2, 10)
    finally:
        models.ARCHITECTURES.pop("linear")
