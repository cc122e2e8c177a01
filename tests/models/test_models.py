"""Tests for smoothcert.models: normalisation, architectures, checkpoints."""

import os

import pytest
import torch
from torch import nn

from smoothcert import data, models
from smoothcert.models import resnets as archs


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
                                          ("mlp", "mnist"), ("lenet", "cifar10"), ("smallconv", "mnist-7x7"),
                                          ("mlp10", "swiss-roll")])
def test_build_model_logits(arch, dataset):
    model = models.build_model(arch, dataset)
    assert isinstance(model[0], models.NormalizeLayer)
    x = torch.rand(3, *data.input_shape(dataset))
    assert model(x).shape == (3, data.num_classes(dataset))


def test_small_conv_net_is_the_papers():
    net = models.SmallConvNet()
    assert models.count_parameters(net) == (4 * 4 + 4) + (144 * 100 + 100) + (100 * 10 + 10)
    assert net(torch.rand(2, 1, 7, 7)).shape == (2, 10)
    with pytest.raises(ValueError, match="at least 2x2"):
        models.SmallConvNet(input_hw=(1, 7))


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
    loaded, info = models.load_checkpoint(p, arch="mlp", dataset="digits", normalize="dataset")
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


# --------------------------------------------------------------------------------------
# Architectures from the randomized-smoothing literature (smoothcert.models.resnets)
# --------------------------------------------------------------------------------------

# Published parameter counts (10 classes for the CIFAR nets, 1000 for ResNet-50).
CIFAR_PARAMS = {"resnet20": 0.27e6, "resnet56": 0.85e6, "resnet110": 1.7e6,
                "resnet18": 11.2e6, "wrn40_2": 2.2e6}


def _rel_close(value, target, tol=0.03):
    return abs(value - target) <= tol * target


@pytest.mark.parametrize("arch", sorted(CIFAR_PARAMS))
def test_cifar_architectures_shape_and_size(arch):
    torch.manual_seed(0)
    model = models.build_model(arch, "cifar10").eval()
    assert isinstance(model[0], models.NormalizeLayer)
    n = models.count_parameters(model)
    assert _rel_close(n, CIFAR_PARAMS[arch]), (arch, n)
    with torch.no_grad():
        out = model(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 10) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("arch,dataset", [("resnet20", "mnist"), ("resnet20", "digits"),
                                          ("wrn40_2", "fashion-mnist"), ("resnet18", "mnist")])
def test_cifar_architectures_on_one_channel_inputs(arch, dataset):
    model = _built(arch, dataset).eval()
    with torch.no_grad():
        assert model(torch.rand(2, *data.input_shape(dataset))).shape == (2, 10)


def test_resnet50_imagenet_shape_and_size():
    torch.manual_seed(0)
    net = models.ARCHITECTURES["resnet50"](1000, 3, (224, 224)).eval()
    assert _rel_close(models.count_parameters(net), 25.6e6, 0.01)
    assert models.count_parameters(net) == 25_557_032  # the standard ResNet-50 count
    with torch.no_grad():
        out = net(torch.rand(1, 3, 224, 224))
    assert out.shape == (1, 1000) and torch.isfinite(out).all()


def test_resnet50_through_build_model_if_imagenet_known():
    if "imagenet" not in data.DATASET_STATS:
        pytest.skip("data.DATASET_STATS has no 'imagenet' yet")
    model = models.build_model("resnet50", "imagenet")
    assert isinstance(model[0], models.NormalizeLayer) and model[0].mean.shape == (3, 1, 1)
    assert model[1].head.fc.out_features == data.num_classes("imagenet")


def test_resnet50_structure():
    net = models.ResNet50(num_classes=7, in_channels=1)
    assert [len(s) for s in (net.layer1, net.layer2, net.layer3, net.layer4)] == [3, 4, 6, 3]
    stem_conv, pool = net.stem[0], net.stem[3]
    assert stem_conv.kernel_size == (7, 7) and stem_conv.stride == (2, 2)
    assert stem_conv.in_channels == 1 and isinstance(pool, nn.MaxPool2d)
    for stage, width in zip((net.layer1, net.layer2, net.layer3, net.layer4), (64, 128, 256, 512)):
        first = stage[0]
        assert first.conv3.out_channels == 4 * width
        assert isinstance(first.shortcut, nn.Sequential)  # projection in every first block
        assert first.conv1.stride == (1, 1)  # v1.5: the stride is on the 3x3 conv
        assert all(isinstance(b.shortcut, nn.Identity) for b in stage[1:])
    assert net.layer2[0].conv2.stride == (2, 2) and net.layer1[0].conv2.stride == (1, 1)
    assert net.head.fc.in_features == 2048 and net.head.fc.out_features == 7
    assert net(torch.rand(2, 1, 28, 28)).shape == (2, 7)  # adaptive pooling: any size


@pytest.mark.parametrize("depth,n", [(20, 3), (56, 9), (110, 18)])
def test_cifar_resnet_structure(depth, n):
    net = models.ARCHITECTURES[f"resnet{depth}"](10, 3, (32, 32))
    assert isinstance(net, models.CifarResNet)
    stages = (net.layer1, net.layer2, net.layer3)
    assert [len(s) for s in stages] == [n, n, n]
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert len(convs) + len(linears) == depth  # 6n + 2 weighted layers (shortcuts not counted)
    assert net.stem[0].out_channels == 16
    for stage, width, stride in zip(stages, (16, 32, 64), (1, 2, 2)):
        assert stage[0].conv1.stride == (stride, stride)
        assert all(b.conv2.out_channels == width for b in stage)
        # projection shortcut (1x1 conv + BN) exactly where the shape changes
        assert isinstance(stage[0].shortcut, nn.Sequential) == (stride != 1)
        assert all(isinstance(b.shortcut, nn.Identity) for b in stage[1:])
    assert net.head.fc.in_features == 64


def test_resnet18_cifar_structure():
    net = models.ARCHITECTURES["resnet18"](10, 3, (32, 32))
    stem = net.stem[0]
    assert stem.kernel_size == (3, 3) and stem.stride == (1, 1) and stem.out_channels == 64
    assert not any(isinstance(m, nn.MaxPool2d) for m in net.modules())
    stages = (net.layer1, net.layer2, net.layer3, net.layer4)
    assert [len(s) for s in stages] == [2, 2, 2, 2]
    assert [s[0].conv1.stride[0] for s in stages] == [1, 2, 2, 2]
    assert [s[-1].conv2.out_channels for s in stages] == [64, 128, 256, 512]


def test_wide_resnet_structure():
    net = models.ARCHITECTURES["wrn40_2"](10, 3, (32, 32))
    assert isinstance(net, models.WideResNet)
    stages = (net.layer1, net.layer2, net.layer3)
    assert [len(s) for s in stages] == [6, 6, 6]
    assert net.stem.out_channels == 16
    assert [s[-1].conv2.out_channels for s in stages] == [32, 64, 128]
    assert [s[0].conv1.stride[0] for s in stages] == [1, 2, 2]
    # 16 -> 32 changes the width even at stride 1, so every first block projects
    assert all(isinstance(s[0].shortcut, nn.Conv2d) and s[0].shortcut.kernel_size == (1, 1)
               for s in stages)
    assert all(b.shortcut is None for s in stages for b in s[1:])
    assert not any(isinstance(m, nn.Dropout) for m in net.modules())  # dropout 0 by default
    assert isinstance(net.bn, nn.BatchNorm2d) and net.bn.num_features == 128  # final BN-ReLU
    drop = models.WideResNet(16, 1, dropout=0.3)
    assert sum(isinstance(m, nn.Dropout) for m in drop.modules()) == 6


def test_preact_block_order():
    # Pre-activation: with identity shortcut, zero conv2 weights make the block the identity.
    block = archs.PreActBlock(8, 8)
    nn.init.zeros_(block.conv2.weight)
    x = torch.randn(2, 8, 5, 5)
    assert torch.equal(block.eval()(x), x)
    # Post-activation BasicBlock ends with ReLU instead.
    basic = archs.BasicBlock(8, 8).eval()
    assert (basic(x) >= 0).all()


def test_invalid_depths_and_sizes():
    with pytest.raises(ValueError, match="6n"):
        models.CifarResNet(21)
    with pytest.raises(ValueError, match="6n"):
        models.WideResNet(41, 2)
    with pytest.raises(ValueError, match="at least"):
        models.ARCHITECTURES["resnet20"](10, 3, (4, 4))
    with pytest.raises(ValueError, match="at least"):
        models.ARCHITECTURES["resnet50"](10, 3, (8, 8))


def test_init_kaiming_and_bn():
    torch.manual_seed(0)
    net = models.ARCHITECTURES["resnet56"](10, 3, (32, 32))
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(torch.equal(b.weight, torch.ones_like(b.weight)) and
                       torch.equal(b.bias, torch.zeros_like(b.bias)) for b in bns)
    conv = net.layer3[1].conv1  # 64 -> 64, 3x3: Kaiming normal std sqrt(2 / fan)
    std = conv.weight.std().item()
    assert abs(std - (2.0 / (64 * 9)) ** 0.5) < 0.1 * std
    assert all(m.bias is None for m in net.modules() if isinstance(m, nn.Conv2d))


def test_new_architectures_registered_and_listed():
    for name in ("resnet20", "resnet56", "resnet110", "resnet18", "wrn40_2", "resnet50",
                 "mlp", "lenet"):
        assert name in models.ARCHITECTURES
    with pytest.raises(ValueError) as e:
        models.build_model("resnet999", "cifar10")
    assert "resnet20" in str(e.value) and "wrn40_2" in str(e.value)


def test_count_parameters():
    lin = nn.Linear(3, 4)
    assert models.count_parameters(lin) == 16
    shared = nn.Sequential(lin, nn.ReLU(), lin)
    assert models.count_parameters(shared) == 16  # shared weights counted once
    lin.bias.requires_grad_(False)
    assert models.count_parameters(lin) == 16
    assert models.count_parameters(lin, trainable_only=True) == 12
    # buffers (normalisation stats, BN running stats) are not parameters
    assert models.count_parameters(models.NormalizeLayer((0.5,), (0.5,))) == 0
    assert models.count_parameters(nn.BatchNorm2d(5)) == 10


def _bn_buffers(model):
    return {k: v.clone() for k, v in model.state_dict().items()
            if "running" in k or "num_batches" in k}


def test_batchnorm_train_vs_eval():
    torch.manual_seed(0)
    model = models.build_model("resnet20", "cifar10")
    x = torch.rand(4, 3, 32, 32)
    before = _bn_buffers(model)
    assert before
    model.train()
    y = model(x)
    y.sum().backward()  # gradients flow through every parameter
    assert all(p.grad is not None for p in model.parameters())
    after = _bn_buffers(model)
    assert any(not torch.equal(before[k], after[k]) for k in before)  # stats updated
    # in train mode a sample's output depends on the rest of the batch
    with torch.no_grad():
        assert not torch.allclose(model(x)[:1], model(torch.cat([x[:1], x[:1] * 0.1])[:2])[:1])
    model.eval()
    frozen = _bn_buffers(model)
    with torch.no_grad():
        full = model(x)
        alone = model(x[:1])
    assert torch.allclose(full[:1], alone, atol=1e-5)  # eval: per-sample, uses running stats
    assert all(torch.equal(frozen[k], v) for k, v in _bn_buffers(model).items())


def test_checkpoint_roundtrip_resnet20(tmp_path):
    torch.manual_seed(0)
    model = models.build_model("resnet20", "cifar10")
    model.train()
    with torch.no_grad():  # move the BN running statistics off their initial values
        for _ in range(2):
            model(torch.rand(4, 3, 32, 32))
    model.eval()
    meta = {"method": "gaussian", "sigma": 0.5, "epochs": 90, "lr": 0.1,
            "command": ["smoothcert", "train", "--arch", "resnet20", "--sigma", "0.5"]}
    path = tmp_path / "r20.pt"
    models.save_checkpoint(path, model, arch="resnet20", dataset="cifar10", meta=meta)
    loaded, info = models.load_checkpoint(path)
    assert not loaded.training and info["arch"] == "resnet20" and info["meta"] == meta
    sd, sd2 = model.state_dict(), loaded.state_dict()
    assert sd.keys() == sd2.keys() and all(torch.equal(sd[k], sd2[k]) for k in sd)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert models.checkpoint_info(path) == info


def test_checkpoint_info(tmp_path):
    meta = {"method": "macer", "sigma": 0.25, "epochs": 3, "command": "smoothcert train",
            "nested": {"gamma": 8.0, "none": None}}
    path = tmp_path / "m.pt"
    models.save_checkpoint(str(path), _built(), arch="mlp", dataset="digits", meta=meta)
    info = models.checkpoint_info(str(path))
    assert info == {"format": models.CHECKPOINT_FORMAT, "arch": "mlp", "dataset": "digits",
                    "num_classes": 10, "meta": meta, "tensors": {}}
    models.save_checkpoint(path, _built(), arch="mlp", dataset="digits", tensors={"sigma_table": torch.ones(3)})
    info = models.checkpoint_info(path)
    assert info["meta"] == {} and torch.equal(info["tensors"]["sigma_table"], torch.ones(3))
    with pytest.raises(TypeError, match="tensors must map names to tensors"):
        models.save_checkpoint(path, _built(), arch="mlp", dataset="digits", tensors={"x": [1.0]})


def test_checkpoint_info_does_not_build_the_model(tmp_path):
    # An architecture unknown to this installation can still be inspected.
    p = tmp_path / "future.pt"
    torch.save({"format": models.CHECKPOINT_FORMAT, "arch": "vit_b16", "dataset": "imagenet21k",
                "num_classes": 21843, "state_dict": {"w": torch.zeros(3)},
                "meta": {"sigma": 1.0}}, p)
    info = models.checkpoint_info(p)
    assert info["arch"] == "vit_b16" and info["meta"] == {"sigma": 1.0}
    assert "state_dict" not in info


class _NotAllowed:
    """Not on torch's weights_only allow-list."""


def test_checkpoint_info_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        models.checkpoint_info(tmp_path / "nope.pt")
    raw = tmp_path / "raw.pt"
    torch.save(_built().state_dict(), raw)
    with pytest.raises(ValueError, match="not a smoothcert checkpoint"):
        models.checkpoint_info(raw)
    other = tmp_path / "other.pt"
    torch.save({"format": "someone-else-v3", "arch": "x"}, other)
    with pytest.raises(ValueError, match="unsupported checkpoint format"):
        models.checkpoint_info(other)
    broken = tmp_path / "broken.pt"
    torch.save({"format": models.CHECKPOINT_FORMAT, "arch": "mlp"}, broken)
    with pytest.raises(ValueError, match="missing keys"):
        models.checkpoint_info(broken)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="weights-only"):
        models.checkpoint_info(text)
    evil = tmp_path / "evil.pt"
    torch.save({"format": models.CHECKPOINT_FORMAT, "obj": _NotAllowed()}, evil)
    with pytest.raises(ValueError, match="weights-only"):
        models.checkpoint_info(evil)
