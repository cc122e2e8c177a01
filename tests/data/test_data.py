"""Tests for smoothcert.data on tiny synthetic files (idx, CIFAR pickles and PNGs, an
ImageFolder), sklearn's digits, and, when present, the workplace's real data."""

import gzip
import os
import pickle
import time

import numpy as np
import pytest
import torch
from PIL import Image

from smoothcert import data
from smoothcert.data.images import resize_center_crop

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


def test_pooled_7x7_variant(tmp_path):
    make_idx_dir(tmp_path)
    full = data.load_dataset("mnist", "test", root=str(tmp_path))
    s = data.load_dataset("mnist-7x7", "test", root=str(tmp_path))
    assert s.x.shape == (len(full), 1, 7, 7) and torch.equal(s.y, full.y) and s.name == "mnist-7x7/test"
    want = full.x.view(-1, 1, 7, 4, 7, 4).mean(dim=(3, 5))
    torch.testing.assert_close(s.x, want, rtol=0, atol=1e-6)
    assert data.input_shape("mnist-7x7") == (1, 7, 7) and data.DATASET_STATS["mnist-7x7"] == ((0.1307,), (0.2307,))


def test_swiss_roll_is_the_papers_split():
    tr, te = data.load_dataset("swiss-roll", "train"), data.load_dataset("swiss-roll", "test")
    assert tr.x.shape == (1000, 1, 1, 2) and te.x.shape == (100, 1, 1, 2) and tr.num_classes == 2
    from sklearn.datasets import make_swiss_roll
    pts, t = make_swiss_roll(n_samples=100, noise=1.0, random_state=2)
    assert torch.equal(te.x.view(100, 2), torch.from_numpy((pts[:, [0, 2]] / 10).astype(np.float32)))
    assert torch.equal(te.y, torch.from_numpy((t > 3 * np.pi).astype(np.int64)))
    assert torch.equal(data.load_dataset("swiss-roll", "train").x, tr.x)


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


# ------------------------------------------------------------------ idx in sub-folders

@pytest.mark.parametrize("name,sub,gz", [("mnist", "mnist", True), ("mnist", "MNIST/raw", False),
                                         ("fashion-mnist", "FashionMNIST/raw", True),
                                         ("fashion-mnist", "fashion-mnist", False)])
def test_idx_in_subfolder(tmp_path, name, sub, gz):
    d = tmp_path / sub
    d.mkdir(parents=True)
    ref = make_idx_dir(d, gz=gz)
    s = data.load_dataset(name, "test", root=str(tmp_path))
    assert torch.equal(s.y, torch.from_numpy(ref["test"][1].astype(np.int64)))
    assert s.x.shape == (N_TEST, 1, 28, 28)


def test_idx_root_wins_over_subfolder(tmp_path):
    (tmp_path / "mnist").mkdir()
    make_idx_dir(tmp_path / "mnist", seed=1)
    ref = make_idx_dir(tmp_path, seed=2, n_test=3)
    assert torch.equal(data.load_dataset("mnist", "test", tmp_path).y,
                       torch.from_numpy(ref["test"][1].astype(np.int64)))


def test_idx_nowhere(tmp_path):
    (tmp_path / "MNIST" / "raw").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"mnist: idx file t10k-images-idx3-ubyte\[\.gz\] not found") as e:
        data.load_dataset("mnist", "test", root=str(tmp_path))
    assert str(tmp_path) in str(e.value) and "MNIST/raw" in str(e.value)


def test_idx_wrong_image_size(tmp_path):
    make_idx_dir(tmp_path, gz=False)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", 0x803, (N_TEST, 8, 8), bytes(N_TEST * 64), False)
    with pytest.raises(ValueError, match="8x8, expected 28x28"):
        data.load_dataset("mnist", "test", root=str(tmp_path))


# ------------------------------------------------------------------ CIFAR-10 pickles

def write_cifar_batch(path, n, seed, labels=None, override=None):
    rng = np.random.default_rng(seed)
    d = {b"batch_label": b"x", b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
         b"labels": list(rng.integers(0, 10, n).tolist()) if labels is None else labels,
         b"filenames": [b"f.png"] * n}
    d.update(override or {})
    for k in [k for k, v in d.items() if v is None]:
        del d[k]
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=2)
    return d


def make_cifar_batches(d, n=3):
    d.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    return {nm: write_cifar_batch(d / nm, n + i, seed=i) for i, nm in enumerate(names)}


@pytest.mark.parametrize("sub", ["", "cifar-10-batches-py"])
def test_cifar_pickles(tmp_path, sub):
    ref = make_cifar_batches(tmp_path / sub if sub else tmp_path)
    tr, te = data.load_dataset("cifar10", "train", tmp_path), data.load_dataset("cifar10", "test", tmp_path)
    train_refs = [ref[f"data_batch_{i}"] for i in range(1, 6)]
    assert tr.x.shape == (sum(len(r[b"labels"]) for r in train_refs), 3, 32, 32)
    assert tr.x.dtype == torch.float32 and tr.y.dtype == torch.int64 and tr.name == "cifar10/train"
    assert tr.y.tolist() == sum((r[b"labels"] for r in train_refs), [])
    t = ref["test_batch"]
    assert te.y.tolist() == t[b"labels"] and len(te) == len(t[b"labels"])
    # Row layout: 1024 R, 1024 G, 1024 B, each row-major 32x32.
    i, c, h, w = 1, 2, 5, 7
    assert te.x[i, c, h, w].item() == pytest.approx(t[b"data"][i, c * 1024 + h * 32 + w] / 255.0)
    assert 0.0 <= te.x.min() and te.x.max() <= 1.0


@pytest.mark.parametrize("override,match", [
    ({b"labels": None}, r"keys b'data' and b'labels'"),
    ({b"data": np.zeros((4, 3000), np.uint8)}, r"b'data' must be uint8 \[n, 3072\], found uint8 \(4, 3000\)"),
    ({b"data": np.zeros((4, 3072), np.float32)}, r"must be uint8 \[n, 3072\], found float32"),
    ({b"labels": [1, 2, 3]}, r"b'labels' must be 4 integers"),
    ({b"labels": [0, 1, 10, 2]}, r"labels out of range: found 0\.\.10, expected 0\.\.9"),
])
def test_cifar_pickle_malformed(tmp_path, override, match):
    make_cifar_batches(tmp_path)
    write_cifar_batch(tmp_path / "test_batch", 4, seed=9, override=override)
    with pytest.raises(ValueError, match=match) as e:
        data.load_dataset("cifar10", "test", tmp_path)
    assert "test_batch" in str(e.value)


def test_cifar_pickle_not_a_dict_truncated_or_hostile(tmp_path):
    make_cifar_batches(tmp_path)
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump([1, 2], f)
    with pytest.raises(ValueError, match="must be a dict"):
        data.load_dataset("cifar10", "test", tmp_path)
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)})[:30])
    with pytest.raises(ValueError, match="test_batch: not a readable CIFAR-10 pickle batch"):
        data.load_dataset("cifar10", "test", tmp_path)

    class Hostile:
        def __reduce__(self):
            return (print, ("loading a data file ran code",))
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": Hostile()}))
    with pytest.raises(ValueError, match="refusing to load builtins.print"):
        data.load_dataset("cifar10", "test", tmp_path)


def test_cifar_missing_train_batch(tmp_path):
    make_cifar_batches(tmp_path)
    os.remove(tmp_path / "data_batch_3")
    with pytest.raises(FileNotFoundError, match="train batches data_batch_3 not found") as e:
        data.load_dataset("cifar10", "train", tmp_path)
    assert str(tmp_path) in str(e.value)
    assert len(data.load_dataset("cifar10", "test", tmp_path)) == 8


def test_cifar_needs_root_and_data(tmp_path):
    with pytest.raises(ValueError, match="cifar10 needs a data directory: pass --data-root"):
        data.load_dataset("cifar10", "test")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load_dataset("cifar10", "test", tmp_path / "nope")
    (tmp_path / "other").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no data found in .*data_batch_1.*cifar10_<index>_<label>\.png"):
        data.load_dataset("cifar10", "test", tmp_path)


# ------------------------------------------------------------------ CIFAR-10 PNG folder

def write_png(path, arr):
    Image.fromarray(arr).save(path)


def make_cifar_pngs(d, items, seed=0):
    """items: [(index, label)]; writes cifar10_<index>_<label>.png, returns {index: uint8 [32, 32, 3]}."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = {}
    for idx, label in items:
        out[idx] = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        write_png(d / f"cifar10_{idx:02d}_{label}.png", out[idx])
    return out


def test_cifar_png_folder(tmp_path):
    ref = make_cifar_pngs(tmp_path / "cifar10-pngs", [(10, 1), (2, 5), (0, 3), (1, 9)])
    (tmp_path / "cifar10-pngs" / "README.txt").write_text("ignored")
    s = data.load_dataset("cifar10", "test", tmp_path)
    assert s.y.tolist() == [3, 9, 5, 1]  # numeric index order: 0, 1, 2, 10
    assert s.x.shape == (4, 3, 32, 32) and s.x.dtype == torch.float32
    want = torch.from_numpy(ref[10].transpose(2, 0, 1).astype(np.float32) / 255)
    assert torch.equal(s.x[3], want)
    with pytest.raises(FileNotFoundError, match="test split only"):
        data.load_dataset("cifar10", "train", tmp_path)


def test_cifar_pickles_preferred_over_pngs(tmp_path):
    make_cifar_pngs(tmp_path, [(0, 1)])
    make_cifar_batches(tmp_path / "cifar-10-batches-py")
    assert len(data.load_dataset("cifar10", "test", tmp_path)) == 8


def test_cifar_png_malformed(tmp_path):
    make_cifar_pngs(tmp_path, [(0, 1), (1, 2)])
    write_png(tmp_path / "cifar10_02_3.png", np.zeros((32, 30, 3), np.uint8))
    with pytest.raises(ValueError, match=r"cifar10_02_3\.png: image is 30x32, expected 32x32"):
        data.load_dataset("cifar10", "test", tmp_path)
    os.remove(tmp_path / "cifar10_02_3.png")
    make_cifar_pngs(tmp_path, [(3, 12)])
    with pytest.raises(ValueError, match=r"cifar10_03_12\.png: label 12 out of range"):
        data.load_dataset("cifar10", "test", tmp_path)
    os.remove(tmp_path / "cifar10_03_12.png")
    make_cifar_pngs(tmp_path, [(1, 4)])  # cifar10_01_4.png next to cifar10_01_2.png
    with pytest.raises(ValueError, match="duplicate image index"):
        data.load_dataset("cifar10", "test", tmp_path)
    os.remove(tmp_path / "cifar10_01_4.png")
    (tmp_path / "cifar10_05_0.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"cifar10_05_0\.png: cannot decode"):
        data.load_dataset("cifar10", "test", tmp_path)


# ------------------------------------------------------------------ ImageNet (ImageFolder, lazy)

# (class, file, (H, W), mode): sizes on both sides of 256 and 224, landscape and portrait.
IMAGENET_FILES = [("n01", "a.JPEG", (300, 260), "RGB"), ("n01", "b.png", (400, 180), "RGB"),
                  ("n02", "c.jpeg", (256, 256), "L"), ("n03", "d.PNG", (230, 500), "RGB"),
                  ("n03", "e.JPEG", (224, 224), "RGB")]


def make_imagenet(root, splits=("train", "val"), seed=0):
    rng = np.random.default_rng(seed)
    for split in splits:
        for cls, name, (h, w), mode in IMAGENET_FILES:
            d = root / split / cls
            d.mkdir(parents=True, exist_ok=True)
            shape = (h, w, 3) if mode == "RGB" else (h, w)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(d / name)
        (root / split / "n02" / "notes.txt").write_text("not an image")


def test_imagenet_lazy_folder(tmp_path):
    make_imagenet(tmp_path)
    s = data.load_dataset("imagenet", "test", tmp_path)
    x = s.x
    assert isinstance(x, data.LazyImages) and s.name == "imagenet/test" and s.num_classes == 1000
    assert x.shape == (5, 3, 224, 224) and len(x) == len(s) == 5
    assert s.y.tolist() == [0, 0, 1, 2, 2] and s.y.dtype == torch.int64
    assert [os.path.basename(p) for p in x.paths] == ["a.JPEG", "b.png", "c.jpeg", "d.PNG", "e.JPEG"]
    one = x[1]
    assert one.shape == (3, 224, 224) and one.dtype == torch.float32
    assert 0.0 <= one.min() and one.max() <= 1.0
    # The crop of b.png (400x180 HxW) equals Pillow's resize to 256 + center crop, done by hand.
    with Image.open(x.paths[1]) as im:
        assert im.size == (180, 400)
        by_hand = im.resize((256, int(256 * 400 / 180)), Image.BILINEAR).crop((16, 172, 240, 396))
    assert torch.equal(one, torch.from_numpy(np.asarray(by_hand).transpose(2, 0, 1).astype(np.float32) / 255))
    assert torch.equal(x[2][0], x[2][2])  # grayscale becomes 3 equal channels
    for idx, want in [(slice(1, 4), [1, 2, 3]), ([4, 0], [4, 0]), (torch.tensor([3, 1]), [3, 1]),
                      (np.array([2]), [2]), (slice(None, None, -2), [4, 2, 0]),
                      (torch.tensor([True, False, False, False, True]), [0, 4])]:
        got = x[idx]
        assert got.shape == (len(want), 3, 224, 224)
        for k, i in enumerate(want):
            assert torch.equal(got[k], x[i])
    assert torch.equal(x[-1], x[4]) and torch.equal(x[torch.tensor(2)], x[2]) and torch.equal(x[np.int64(0)], x[0])
    assert x[[]].shape == (0, 3, 224, 224)
    with pytest.raises(IndexError):
        x[5]
    with pytest.raises(TypeError):
        x[torch.zeros(2, 2, dtype=torch.long)]
    assert len(data.load_dataset("imagenet", "train", tmp_path)) == 5


def test_resize_center_crop_sizes():
    for w, h in [(300, 260), (180, 400), (224, 224), (1000, 230), (257, 256)]:
        im = Image.new("RGB", (w, h), (10, 200, 30))
        out = resize_center_crop(im)
        assert out.size == (224, 224)
        assert np.all(np.asarray(out) == np.array([10, 200, 30], np.uint8))


def test_imagenet_errors(tmp_path):
    with pytest.raises(ValueError, match="imagenet needs a data directory: pass --data-root"):
        data.load_dataset("imagenet", "test")
    with pytest.raises(FileNotFoundError, match=r"image folder .*val.* does not exist"):
        data.load_dataset("imagenet", "test", tmp_path)
    (tmp_path / "val").mkdir()
    with pytest.raises(ValueError, match=r"empty ImageFolder .*val.*: no class sub-folders"):
        data.load_dataset("imagenet", "test", tmp_path)
    Image.new("RGB", (8, 8)).save(tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG")
    with pytest.raises(ValueError, match="images lie directly in it"):
        data.load_dataset("imagenet", "test", tmp_path)
    (tmp_path / "val" / "n01").mkdir()
    with pytest.raises(ValueError, match="class folders hold no images"):
        data.load_dataset("imagenet", "test", tmp_path)


def test_imagenet_class_mismatch_and_corrupt_file(tmp_path):
    make_imagenet(tmp_path)
    (tmp_path / "train" / "n04").mkdir()
    with pytest.raises(ValueError, match=r"class folders differ .*only in the first: \['n04'\]"):
        data.load_dataset("imagenet", "test", tmp_path)
    os.rmdir(tmp_path / "train" / "n04")
    (tmp_path / "val" / "n02" / "c.jpeg").write_bytes(b"truncated")
    s = data.load_dataset("imagenet", "test", tmp_path)  # lazy: found only when read
    with pytest.raises(ValueError, match=r"c\.jpeg: cannot decode image"):
        s.x[1:3]


def test_certify_dataset_accepts_lazy_images(tmp_path):
    from smoothcert.certify import Smooth
    from smoothcert.drivers import certify_dataset

    make_imagenet(tmp_path, splits=("val",))
    s = data.load_dataset("imagenet", "test", tmp_path)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(48, 1000))
    rows = []
    for x, out in [(s.x, "lazy.tsv"), (s.x[:], "dense.tsv")]:
        smooth = Smooth(model.eval(), 1000, 0.25, seed=0)
        certify_dataset(smooth, x, s.y, [0, 2, 4], n0=4, n=12, alpha=0.001, batch_size=16,
                        out=str(tmp_path / out), config={}, progress=False)
        rows.append([line.split("\t")[:5] for line in open(tmp_path / out)])
    assert rows[0] == rows[1] and len(rows[0]) == 4


# ------------------------------------------------------------------ the workplace's real data

REAL = "/work/shared/data"


@pytest.mark.skipif(not os.path.isdir(REAL), reason=f"{REAL} absent")
def test_real_mnist_and_cifar_pngs():
    t0 = time.perf_counter()
    m = data.load_dataset("mnist", "test", REAL)  # finds REAL/mnist
    assert m.x.shape == (10000, 1, 28, 28) and m.y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert abs(m.x.mean().item() - 0.1325) < 1e-3
    c = data.load_dataset("cifar10", "test", REAL)  # finds REAL/cifar10-test20
    assert c.x.shape == (20, 3, 32, 32)
    assert c.y.tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6]
    assert 0.0 <= c.x.min() and c.x.max() <= 1.0
    assert time.perf_counter() - t0 < 3.0
