"""Tests for smoothcert.data on synthetic idx files and sklearn's digits."""

import gzip
import os

import numpy as np
import pytest
import torch

from smoothcert import data

N_TRAIN, N_TEST = 6, 4


def write_idx(path, magic, dims, payload, gz):
    raw = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims) + payload
    opener = gzip.open if gz else open
    with opener(str(path) + (".gz" if gz else ""), "wb") as f:
        f.write(raw)


def make_idx_dir(root, gz=True, dotted=False, n_train=N_TRAIN, n_test=N_TEST, seed=0):
    """Write the four MNIST-style idx files; returns {split: (images uint8, labels uint8)}."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        imgs = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        lbls = rng.integers(0, 10, size=n, dtype=np.uint8)
        sep = "." if dotted else "-"
        write_idx(root / f"{prefix}-images{sep}idx3-ubyte", 0x803, (n, 28, 28), imgs.tobytes(), gz)
        write_idx(root / f"{prefix}-labels{sep}idx1-ubyte", 0x801, (n,), lbls.tobytes(), gz)
        out[split] = (imgs, lbls)
    return out


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("split", ["train", "test"])
def test_mnist_idx_roundtrip(tmp_path, gz, split):
    ref = make_idx_dir(tmp_path, gz=gz)
    s = data.load_dataset("mnist", split, root=str(tmp_path))
    imgs, lbls = ref[split]
    assert s.x.shape == (len(imgs), 1, 28, 28) and s.x.dtype == torch.float32
    assert s.y.dtype == torch.int64 and len(s) == len(imgs)
    assert torch.equal(s.x, torch.from_numpy(imgs.astype(np.float32) / 255).unsqueeze(1))
    assert torch.equal(s.y, torch.from_numpy(lbls.astype(np.int64)))
    assert 0.0 <= s.x.min() and s.x.max() <= 1.0
    assert s.num_classes == 10 and s.name == f"mnist/{split}"


def test_dotted_names_and_fashion(tmp_path):
    ref = make_idx_dir(tmp_path, gz=False, dotted=True)
    s = data.load_dataset("fashion-mnist", "test", root=tmp_path)
    assert torch.equal(s.y, torch.from_numpy(ref["test"][1].astype(np.int64)))
    assert s.name == "fashion-mnist/test"


def test_mnist_requires_root():
    with pytest.raises(ValueError, match="--data-root"):
        data.load_dataset("mnist", "train")


def test_missing_file_names_file_and_dir(tmp_path):
    make_idx_dir(tmp_path)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(FileNotFoundError) as e:
        data.load_dataset("mnist", "test", root=str(tmp_path))
    assert "t10k-labels-idx1-ubyte" in str(e.value) and str(tmp_path) in str(e.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load_dataset("mnist", "test", root=str(tmp_path / "nope"))


def test_bad_magic(tmp_path):
    make_idx_dir(tmp_path, gz=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", 0x803, (N_TRAIN,), bytes(N_TRAIN), False)
    with pytest.raises(ValueError) as e:
        data.load_dataset("mnist", "train", root=str(tmp_path))
    msg = str(e.value)
    assert "train-labels-idx1-ubyte" in msg and "0x00000803" in msg and "0x00000801" in msg


def test_truncated_payload(tmp_path):
    make_idx_dir(tmp_path, gz=True)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", 0x803, (N_TEST, 28, 28), bytes(100), True)
    with pytest.raises(ValueError) as e:
        data.load_dataset("mnist", "test", root=str(tmp_path))
    msg = str(e.value)
    assert "t10k-images-idx3-ubyte" in msg and "truncated" in msg
    assert str(N_TEST * 784) in msg and "100" in msg


def test_truncated_gzip_stream(tmp_path):
    make_idx_dir(tmp_path, gz=True)
    p = tmp_path / "t10k-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:20])
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte"):
        data.load_dataset("mnist", "test", root=str(tmp_path))


def test_count_mismatch(tmp_path):
    make_idx_dir(tmp_path, gz=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", 0x801, (N_TRAIN - 1,), bytes(N_TRAIN - 1), False)
    with pytest.raises(ValueError) as e:
        data.load_dataset("mnist", "train", root=str(tmp_path))
    msg = str(e.value)
    assert "mismatch" in msg and "train-labels-idx1-ubyte" in msg and "train-images-idx3-ubyte" in msg


def test_labels_out_of_range(tmp_path):
    make_idx_dir(tmp_path, gz=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", 0x801, (N_TRAIN,), bytes([12] * N_TRAIN), False)
    with pytest.raises(ValueError, match="out of range"):
        data.load_dataset("mnist", "train", root=str(tmp_path))


def test_digits_split():
    tr, te = data.load_dataset("digits", "train"), data.load_dataset("digits", "test")
    assert tr.x.shape == (1297, 1, 8, 8) and te.x.shape == (500, 1, 8, 8)
    assert len(tr) == 1297 and len(te) == 500
    assert tr.x.dtype == torch.float32 and tr.y.dtype == torch.int64
    for s in (tr, te):
        assert 0.0 <= s.x.min() and s.x.max() <= 1.0 and s.x.max() == 1.0
        assert set(s.y.tolist()) == set(range(10)) and s.num_classes == 10
    again = data.load_dataset("digits", "test", root="/ignored")
    assert torch.equal(again.x, te.x) and torch.equal(again.y, te.y)
    allx = torch.cat([tr.x, te.x])
    assert abs(allx.mean().item() - data.DATASET_STATS["digits"][0][0]) < 1e-4
    assert abs(allx.std(unbiased=False).item() - data.DATASET_STATS["digits"][1][0]) < 1e-4


def test_unknown_name_and_split():
    with pytest.raises(ValueError, match="digits"):
        data.load_dataset("imagenet-9000", "train")
    with pytest.raises(ValueError, match="split"):
        data.load_dataset("digits", "val")


def test_shapes_and_stats():
    assert data.input_shape("digits") == (1, 8, 8)
    assert data.input_shape("mnist") == (1, 28, 28)
    assert data.input_shape("cifar10") == (3, 32, 32)
    assert data.num_classes("fashion-mnist") == 10
    for name, (mean, std) in data.DATASET_STATS.items():
        assert len(mean) == len(std) == data.input_shape(name)[0]
    with pytest.raises(ValueError, match="unknown dataset"):
        data.input_shape("nope")


def test_register_dataset():
    @data.register_dataset("toy", shape=(1, 2, 2), classes=3)
    def _toy(split, root):
        return data.Split(torch.zeros(5, 1, 2, 2), torch.zeros(5, dtype=torch.int64), 3, "toy/" + split)
    try:
        assert len(data.load_dataset("toy", "train")) == 5
        assert data.input_shape("toy") == (1, 2, 2) and data.num_classes("toy") == 3
    finally:
        data.DATASETS.pop("toy")
        data._INFO.pop("toy")
