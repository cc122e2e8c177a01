"""A user's own data: ``--dataset image-folder`` and ``--dataset npz`` (tiny files in tmp_path),
every check that names a problem, and ``Split.fingerprint`` (the data's identity for resume)."""

import os
import pickle
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from smoothcert import data, models
from smoothcert.data import user_folder


def _png(path, arr, mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.asarray(arr, dtype=np.uint8), mode=mode).save(path)


def make_folder(root, n_per_class=(2, 3), hw=(5, 4), rgb=False, seed=0, classes=("cat", "ant")):
    """root/<class>/<i>.png with random uint8 pixels; returns {relative path: uint8 [H, W(, 3)]}."""
    rng = np.random.default_rng(seed)
    out = {}
    for c, n in zip(classes, n_per_class):
        for i in range(n):
            arr = rng.integers(0, 256, size=hw + ((3,) if rgb else ()), dtype=np.uint8)
            _png(os.path.join(root, c, f"{i}.png"), arr)
            out[f"{c}/{i}.png"] = arr
    return out


def _expected(pixels, classes):
    """(x [N, C, H, W] = uint8 / 255, y) in the loader's order: sorted classes, then file names."""
    xs, ys = [], []
    for k, c in enumerate(sorted(classes)):
        for rel in sorted(p for p in pixels if p.startswith(c + "/")):
            a = torch.from_numpy(pixels[rel])
            xs.append((a.permute(2, 0, 1) if a.ndim == 3 else a[None]).float() / 255)
            ys.append(k)
    return torch.stack(xs), torch.tensor(ys)


# ------------------------------------------------------------------ image folder

@pytest.mark.parametrize("rgb", [False, True])
def test_folder_lossless_round_trip(tmp_path, rgb):
    pixels = make_folder(tmp_path, rgb=rgb)
    s = data.load_dataset("image-folder", "test", root=tmp_path)
    x, y = _expected(pixels, ("cat", "ant"))
    assert s.x.dtype == torch.float32 and s.x.shape == (5, 3 if rgb else 1, 5, 4)
    assert torch.equal(s.x, x) and torch.equal(s.y, y)  # exactly uint8 / 255
    assert s.classes == ["ant", "cat"] and s.num_classes == 2 and s.name == "image-folder/test"
    assert s.input_shape == ((3 if rgb else 1), 5, 4)


def test_folder_without_split_folders_is_both_splits(tmp_path):
    make_folder(tmp_path)
    a, b = data.load_dataset("image-folder", "train", root=tmp_path), data.load_dataset("image-folder", "test",
                                                                                         root=tmp_path)
    assert torch.equal(a.x, b.x) and a.name == "image-folder/train"


def test_folder_split_folders(tmp_path):
    make_folder(tmp_path / "train", n_per_class=(3, 1), seed=1)
    make_folder(tmp_path / "test", n_per_class=(1, 1), seed=2)
    assert len(data.load_dataset("image-folder", "train", root=tmp_path)) == 4
    assert len(data.load_dataset("image-folder", "test", root=tmp_path)) == 2
    shutil.move(str(tmp_path / "test"), str(tmp_path / "val"))  # val/ stands in for test/
    assert len(data.load_dataset("image-folder", "test", root=tmp_path)) == 2
    shutil.rmtree(tmp_path / "val")
    with pytest.raises(FileNotFoundError, match=r"split folders train/ but none for --split test"):
        data.load_dataset("image-folder", "test", root=tmp_path)


def test_folder_split_class_mismatch(tmp_path):
    make_folder(tmp_path / "train")
    make_folder(tmp_path / "test", classes=("cat", "bee"))
    with pytest.raises(ValueError, match="class folders differ"):
        data.load_dataset("image-folder", "test", root=tmp_path)


def test_folder_size_mismatch_names_both_files(tmp_path):
    make_folder(tmp_path)
    _png(str(tmp_path / "cat" / "9.png"), np.zeros((6, 4)))
    with pytest.raises(ValueError, match=r"cat/9\.png: image is 4x6 .* but .*ant/0\.png is 4x5"):
        data.load_dataset("image-folder", "test", root=tmp_path)


def test_folder_channel_mismatch(tmp_path):
    make_folder(tmp_path)
    _png(str(tmp_path / "cat" / "9.png"), np.zeros((5, 4, 3)))
    with pytest.raises(ValueError, match=r"cat/9\.png: image has 3 channel\(s\) \(RGB\) but .*ant/0\.png has 1"):
        data.load_dataset("image-folder", "test", root=tmp_path)


def test_folder_empty_and_loose_images(tmp_path):
    with pytest.raises(ValueError, match="no class sub-folders"):
        data.load_dataset("image-folder", "test", root=tmp_path)
    _png(str(tmp_path / "a.png"), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="1 images lie directly in it"):
        data.load_dataset("image-folder", "test", root=tmp_path)


def test_folder_class_folders_without_images(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match=r"hold no images .*ignored 1 other files such as .*notes\.txt"):
        data.load_dataset("image-folder", "test", root=tmp_path)


def test_folder_ignores_non_image_and_hidden_files(tmp_path):
    pixels = make_folder(tmp_path)
    (tmp_path / "cat" / "labels.csv").write_text("a,b")
    (tmp_path / "cat" / ".DS_Store").write_bytes(b"\0\1")
    (tmp_path / ".cache").mkdir()
    s = data.load_dataset("image-folder", "test", root=tmp_path)
    assert torch.equal(s.x, _expected(pixels, ("cat", "ant"))[0]) and s.classes == ["ant", "cat"]


def test_folder_nested_files_are_found(tmp_path):
    make_folder(tmp_path)
    _png(str(tmp_path / "ant" / "more" / "z.png"), np.full((5, 4), 7))
    s = data.load_dataset("image-folder", "test", root=tmp_path)
    assert len(s) == 6 and s.y.tolist() == [0, 0, 0, 0, 1, 1]
    assert torch.equal(s.x[3, 0], torch.full((5, 4), 7.0) / 255)  # ant/more/z.png sorts after ant/2.png


@pytest.mark.parametrize("content", [b"not an image", b""])
def test_folder_undecodable_file_is_named(tmp_path, content):
    make_folder(tmp_path)
    (tmp_path / "cat" / "broken.png").write_bytes(content)
    with pytest.raises(ValueError, match=r"cat/broken\.png: cannot decode image"):
        data.load_dataset("image-folder", "test", root=tmp_path)


def test_folder_truncated_png_is_named(tmp_path):
    make_folder(tmp_path, hw=(40, 40))
    path = tmp_path / "cat" / "1.png"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])  # the header still opens; decoding fails
    with pytest.raises(ValueError, match=r"cat/1\.png: cannot decode image"):
        data.load_dataset("image-folder", "test", root=tmp_path)


def test_folder_alpha_and_palette(tmp_path):
    rgb = np.random.default_rng(3).integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    opaque = np.concatenate([rgb, np.full((5, 4, 1), 255, np.uint8)], axis=2)
    _png(str(tmp_path / "a" / "rgba.png"), opaque, "RGBA")
    Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=8).save(tmp_path / "a" / "pal.png")
    s = data.load_dataset("image-folder", "test", root=tmp_path)
    assert s.x.shape == (2, 3, 5, 4)
    expect_pal = np.array(Image.open(tmp_path / "a" / "pal.png").convert("RGB"))
    assert torch.equal(s.x[0], torch.from_numpy(expect_pal).permute(2, 0, 1).float() / 255)
    assert torch.equal(s.x[1], torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)  # alpha dropped
    see_through = opaque.copy()
    see_through[0, 0, 3] = 10
    _png(str(tmp_path / "a" / "rgba.png"), see_through, "RGBA")
    with pytest.raises(ValueError, match=r"rgba\.png: image has transparent pixels"):
        data.load_dataset("image-folder", "test", root=tmp_path)


def test_folder_refuses_16_bit(tmp_path):
    os.makedirs(tmp_path / "a")
    Image.fromarray(np.full((3, 3), 1000, dtype=np.uint16)).save(tmp_path / "a" / "deep.png")
    with pytest.raises(ValueError, match=r"deep\.png: image mode I.* is not read"):
        data.load_dataset("image-folder", "test", root=tmp_path)


def test_folder_jpeg(tmp_path):
    os.makedirs(tmp_path / "a")
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(tmp_path / "a" / "x.jpg", quality=95)
    s = data.load_dataset("image-folder", "test", root=tmp_path)
    assert s.x.shape == (1, 3, 8, 8) and 0 <= float(s.x.min()) <= float(s.x.max()) <= 1


def test_folder_root_errors(tmp_path):
    with pytest.raises(ValueError, match="needs a folder: pass --data-root"):
        data.load_dataset("image-folder", "test")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load_dataset("image-folder", "test", root=tmp_path / "nope")
    (tmp_path / "f.npz").write_bytes(b"x")
    with pytest.raises(ValueError, match="is a file, not a folder.*--dataset npz"):
        data.load_dataset("image-folder", "test", root=tmp_path / "f.npz")


def test_folder_lazy_matches_eager(tmp_path, monkeypatch):
    make_folder(tmp_path, rgb=True)
    eager = data.load_dataset("image-folder", "test", root=tmp_path)
    monkeypatch.setattr(user_folder, "EAGER_LIMIT_BYTES", 0)
    lazy = data.load_dataset("image-folder", "test", root=tmp_path)
    assert isinstance(lazy.x, data.LazyImages) and lazy.x.shape == eager.x.shape
    assert torch.equal(lazy.x[:], eager.x) and torch.equal(lazy.x[3], eager.x[3])
    assert lazy.x.relative_path(0) == "ant/0.png"


# ------------------------------------------------------------------ npz

def _npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def _load(path, split="test"):
    return data.load_dataset("npz", split, root=path)


def test_npz_uint8_hw_round_trip(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, size=(4, 5, 6), dtype=np.uint8)
    s = _load(_npz(tmp_path / "d.npz", x=x, y=np.array([0, 2, 1, 2])))
    assert s.x.shape == (4, 1, 5, 6) and torch.equal(s.x, torch.from_numpy(x)[:, None].float() / 255)
    assert s.num_classes == 3 and s.y.dtype == torch.int64 and s.classes is None and s.name == "npz/test"


def test_npz_float_nchw(tmp_path):
    x = np.random.default_rng(1).random((3, 2, 4, 4))  # float64 in [0, 1)
    s = _load(_npz(tmp_path / "d.npz", x=x, y=np.array([1, 0, 1], np.uint8)))
    assert s.x.dtype == torch.float32 and torch.equal(s.x, torch.from_numpy(x.astype(np.float32)))
    assert s.input_shape == (2, 4, 4)


def test_npz_split_keys_win_over_x_y(tmp_path):
    z = np.zeros((2, 1, 2, 2), np.uint8)
    p = _npz(tmp_path / "d.npz", x=z, y=np.array([0, 0]), x_test=z[:1] + 255, y_test=np.array([1]))
    assert _load(p, "test").x.max() == 1.0 and len(_load(p, "test")) == 1
    assert len(_load(p, "train")) == 2  # no x_train/y_train: x/y serve it
    q = _npz(tmp_path / "e.npz", x_train=z, y_train=np.array([0, 1]))
    with pytest.raises(ValueError, match=r"no inputs for --split test: .*keys found: x_train, y_train"):
        _load(q, "test")


def test_npz_missing_keys_listed(tmp_path):
    p = _npz(tmp_path / "d.npz", images=np.zeros((2, 2, 2)), labels=np.zeros(2, int))
    with pytest.raises(ValueError, match="expected keys x and y .*keys found: images, labels"):
        _load(p)
    q = _npz(tmp_path / "e.npz", x=np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="has 'x' but no 'y'; keys found: x"):
        _load(q)


def test_npz_object_array_refused(tmp_path):
    x = np.empty(2, dtype=object)
    x[0], x[1] = {"a": 1}, [1, 2]
    p = _npz(tmp_path / "d.npz", x=x, y=np.array([0, 1]))  # np.savez pickles object arrays
    with pytest.raises(ValueError, match=r"array 'x' holds Python objects \(dtype=object\)"):
        _load(p)


def test_npz_pickle_and_garbage_files_refused(tmp_path):
    class Boom:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    bad = tmp_path / "evil.npz"
    with open(bad, "wb") as f:
        pickle.dump(Boom(), f)
    with pytest.raises(ValueError, match="cannot read as an .npz without pickle"):
        _load(str(bad))
    assert not (tmp_path / "pwned").exists()
    np.save(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(ValueError, match="single .npy array, not an .npz"):
        _load(str(tmp_path / "a.npy"))
    good = _npz(tmp_path / "g.npz", x=np.zeros((50, 8, 8)), y=np.zeros(50, int))
    raw = open(good, "rb").read()
    (tmp_path / "t.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"t\.npz"):
        _load(str(tmp_path / "t.npz"))


def test_npz_length_mismatch(tmp_path):
    with pytest.raises(ValueError, match="3 inputs but 2 labels in y"):
        _load(_npz(tmp_path / "d.npz", x=np.zeros((3, 2, 2)), y=np.zeros(2, int)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_npz_non_finite(tmp_path, bad):
    x = np.zeros((2, 1, 3, 3), np.float32)
    x[1, 0, 2, 1] = bad
    with pytest.raises(ValueError, match=r"1 non-finite values \(NaN or inf\), the first at x\[1, 0, 2, 1\]"):
        _load(_npz(tmp_path / "d.npz", x=x, y=np.zeros(2, int)))


def test_npz_range(tmp_path):
    with pytest.raises(ValueError, match=r"values in \[0, 255\], expected \[0, 1\] \(values in \[0, 255\]\? store "
                                         r"uint8 or divide by 255\)"):
        _load(_npz(tmp_path / "d.npz", x=np.array([[[0.0, 255.0]]] * 2), y=np.zeros(2, int)))
    with pytest.raises(ValueError, match=r"values in \[-0.5, 0.5\].*normalised inputs"):
        _load(_npz(tmp_path / "e.npz", x=np.array([[[-0.5, 0.5]]] * 2), y=np.zeros(2, int)))


def test_npz_bad_input_dtype(tmp_path):
    with pytest.raises(ValueError, match="x has dtype int64; store uint8"):
        _load(_npz(tmp_path / "d.npz", x=np.zeros((2, 2, 2), np.int64), y=np.zeros(2, int)))


@pytest.mark.parametrize("y,match", [
    (np.array([0.0, 1.0]), r"y has dtype float64, expected integer labels .*y.astype\(np.int64\)"),
    (np.array([0, -1]), "1 negative labels, the first -1 at index 1"),
    (np.eye(2, dtype=np.int64), r"one-hot labels\? store y.argmax\(1\)"),
    (np.zeros((2, 1, 1), int), r"y must be integer labels \[N\], found shape \(2, 1, 1\)"),
])
def test_npz_bad_labels(tmp_path, y, match):
    with pytest.raises(ValueError, match=match):
        _load(_npz(tmp_path / "d.npz", x=np.zeros((2, 2, 2)), y=y))


@pytest.mark.parametrize("shape", [(2, 4), (2, 1, 2, 2, 1), (4,)])
def test_npz_wrong_ndim(tmp_path, shape):
    with pytest.raises(ValueError, match=r"x must be \[N, C, H, W\] or \[N, H, W\], found shape"):
        _load(_npz(tmp_path / "d.npz", x=np.zeros(shape), y=np.zeros(shape[0], int)))


@pytest.mark.parametrize("c", [1, 3])
def test_npz_channels_last_refused(tmp_path, c):
    with pytest.raises(ValueError, match=r"looks channels-last \[N, H, W, C\].*x.transpose\(0, 3, 1, 2\)"):
        _load(_npz(tmp_path / "d.npz", x=np.zeros((2, 8, 8, c), np.uint8), y=np.zeros(2, int)))


def test_npz_empty(tmp_path):
    with pytest.raises(ValueError, match=r"x is empty \(shape \(0, 1, 2, 2\)\)"):
        _load(_npz(tmp_path / "d.npz", x=np.zeros((0, 2, 2)), y=np.zeros(0, int)))


def test_npz_num_classes_and_names(tmp_path):
    x, y = np.zeros((2, 2, 2)), np.array([0, 1])
    s = _load(_npz(tmp_path / "a.npz", x=x, y=y, num_classes=10))
    assert s.num_classes == 10
    s = _load(_npz(tmp_path / "b.npz", x=x, y=y, classes=np.array(["no", "yes", "maybe"])))
    assert s.num_classes == 3 and s.classes == ["no", "yes", "maybe"]
    with pytest.raises(ValueError, match=r"y\[1\] is 1, but the file has 1 classes"):
        _load(_npz(tmp_path / "c.npz", x=x, y=y, num_classes=1))
    with pytest.raises(ValueError, match="num_classes is 4 but classes names 3"):
        _load(_npz(tmp_path / "d.npz", x=x, y=y, num_classes=4, classes=np.array(["a", "b", "c"])))
    with pytest.raises(ValueError, match="num_classes must be one positive integer"):
        _load(_npz(tmp_path / "e.npz", x=x, y=y, num_classes=2.5))


def test_npz_root_errors(tmp_path):
    with pytest.raises(ValueError, match="npz needs a file: pass --data-root FILE.npz"):
        data.load_dataset("npz", "test")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _load(str(tmp_path / "none.npz"))
    with pytest.raises(ValueError, match="is a folder.*--dataset image-folder"):
        _load(str(tmp_path))


# ------------------------------------------------------------------ registry

@pytest.mark.parametrize("name", ["npz", "image-folder"])
def test_user_datasets_have_no_registry_shape_or_stats(name):
    assert name in data.USER_DATASETS and name in data.DATASETS
    with pytest.raises(ValueError, match="your own data: its input shape and class count come from the files"):
        data.input_shape(name)
    with pytest.raises(ValueError, match="come from the files"):
        data.num_classes(name)
    with pytest.raises(ValueError, match="your own data.*--normalize MEAN,STD"):
        data.dataset_stats(name)
    with pytest.raises(ValueError, match="come from the files"):
        models.build_model("lenet", name)  # clear, not a KeyError


def test_dataset_stats_of_registry_datasets():
    assert data.dataset_stats("mnist") == ((0.1307,), (0.3081,))
    with pytest.raises(ValueError, match="no normalisation statistics for dataset 'nope'"):
        data.dataset_stats("nope")


def test_check_model_classes(tmp_path):
    x, y = np.zeros((2, 2, 2)), np.array([0, 2])
    inferred = _load(_npz(tmp_path / "a.npz", x=x, y=y))
    assert inferred.classes_from_labels and inferred.num_classes == 3
    inferred.check_model_classes(10)  # max(y) + 1 is a lower bound: a 10-class model fits
    with pytest.raises(ValueError, match=r"npz/test: label 2 \(index 1\) is out of range for a model with 2 outputs"):
        inferred.check_model_classes(2)
    stated = _load(_npz(tmp_path / "b.npz", x=x, y=y, num_classes=3))
    assert not stated.classes_from_labels
    stated.check_model_classes(3)
    with pytest.raises(ValueError, match="the data has 3 classes but the model has 10 outputs"):
        stated.check_model_classes(10)
    make_folder(tmp_path / "img")
    with pytest.raises(ValueError, match="image-folder/test: the data has 2 classes but the model has 10"):
        data.load_dataset("image-folder", "test", root=tmp_path / "img").check_model_classes(10)


def test_fit_sigma_standardized_units_on_own_data(tmp_path, capsys):
    from smoothcert.cli.main import main

    models.save_checkpoint(str(tmp_path / "m.pt"), models.build_model("mlp", "digits"), arch="mlp", dataset="digits")
    p = _npz(tmp_path / "d.npz", x=np.zeros((4, 8, 8), np.uint8), y=np.arange(4))
    rc = main(["fit-sigma", "--model", str(tmp_path / "m.pt"), "--dataset", "npz", "--data-root", p,
               "--units", "standardized", "--out", str(tmp_path / "out"), "--no-progress", "--device", "cpu"])
    assert rc == 2 and "no normalisation statistics" in capsys.readouterr().err  # was a KeyError traceback


def test_register_from_data_takes_no_shape():
    with pytest.raises(ValueError, match="takes no shape"):
        data.register_dataset("toy-user", shape=(1, 2, 2), classes=2, from_data=True)(lambda s, r: None)
    assert "toy-user" not in data.DATASETS


# ------------------------------------------------------------------ fingerprint

def test_fingerprint_same_data_same_digest_one_pixel_differs(tmp_path):
    make_folder(tmp_path / "a", rgb=True)
    make_folder(tmp_path / "b", rgb=True)  # same seed: a copy at another --data-root
    fa = data.load_dataset("image-folder", "test", root=tmp_path / "a").fingerprint(range(5))
    fb = data.load_dataset("image-folder", "test", root=tmp_path / "b").fingerprint(range(5))
    assert fa == fb and len(fa) == 64
    arr = np.asarray(Image.open(tmp_path / "b" / "cat" / "1.png")).copy()
    arr[2, 3, 1] ^= 1
    _png(str(tmp_path / "b" / "cat" / "1.png"), arr)
    s = data.load_dataset("image-folder", "test", root=tmp_path / "b")
    assert s.fingerprint(range(5)) != fa
    assert s.fingerprint([0, 1]) == data.load_dataset("image-folder", "test",
                                                      root=tmp_path / "a").fingerprint([0, 1])  # not selected


def test_fingerprint_covers_labels_indices_and_order():
    x = torch.rand(6, 1, 2, 2)
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    s = data.Split(x, y, 2, "t")
    base = s.fingerprint([0, 2, 4])
    assert base == data.Split(x.clone(), y.clone(), 2, "u").fingerprint(torch.tensor([0, 2, 4]))
    assert base == s.fingerprint(np.array([0, 2, 4], np.int32))
    assert s.fingerprint([0, 4, 2]) != base and s.fingerprint([0, 2]) != base
    assert data.Split(x, 1 - y, 2, "t").fingerprint([0, 2, 4]) != base
    assert data.Split(x.view(6, 1, 1, 4), y, 2, "t").fingerprint([0, 2, 4]) != base  # shape counts
    assert s.fingerprint() == s.fingerprint(range(6))
    with pytest.raises(ValueError, match="out of range for 6 inputs"):
        s.fingerprint([0, 6])
    with pytest.raises(ValueError, match="indices must be a 1-D sequence of integers"):
        s.fingerprint([0.0, 1.0])


def test_fingerprint_is_of_float32_values(tmp_path):
    """The same pixels from a PNG folder and from a uint8 npz are the same inputs."""
    pixels = make_folder(tmp_path / "img")
    x, y = _expected(pixels, ("cat", "ant"))
    u8 = (x * 255).round().to(torch.uint8).numpy()
    s = _load(_npz(tmp_path / "d.npz", x=u8, y=y.numpy()))
    img = data.load_dataset("image-folder", "test", root=tmp_path / "img")
    assert s.fingerprint() == img.fingerprint()


def test_fingerprint_imagenet_is_by_files_relative_to_the_split(tmp_path):
    for root in ("a", "b"):
        for k, wnid in enumerate(("n01", "n02")):
            os.makedirs(tmp_path / root / "val" / wnid)
            Image.fromarray(np.full((10, 12, 3), 40 * k, np.uint8)).save(tmp_path / root / "val" / wnid / "x.JPEG")
    fa = data.load_dataset("imagenet", "test", root=tmp_path / "a")
    assert isinstance(fa.x, data.LazyImages) and fa.classes == ["n01", "n02"]
    assert fa.x.relative_path(1) == "n02/x.JPEG"
    assert fa.fingerprint() == data.load_dataset("imagenet", "test", root=tmp_path / "b").fingerprint()
    with open(tmp_path / "b" / "val" / "n02" / "x.JPEG", "ab") as f:
        f.write(b"\0")  # a byte the decoder may ignore still changes the file
    assert fa.fingerprint() != data.load_dataset("imagenet", "test", root=tmp_path / "b").fingerprint()


def test_fingerprint_lazy_hashes_file_bytes(tmp_path, monkeypatch):
    monkeypatch.setattr(user_folder, "EAGER_LIMIT_BYTES", 0)
    make_folder(tmp_path / "a")
    make_folder(tmp_path / "b")
    load = lambda d: data.load_dataset("image-folder", "test", root=tmp_path / d)  # noqa: E731
    fa = load("a").fingerprint([1, 4])  # order: ant/0, ant/1, ant/2, cat/0, cat/1
    assert isinstance(load("a").x, data.LazyImages) and fa == load("b").fingerprint([1, 4])
    arr = np.asarray(Image.open(tmp_path / "b" / "cat" / "0.png")).copy()
    arr[0, 0] ^= 1
    _png(str(tmp_path / "b" / "cat" / "0.png"), arr)  # index 3
    assert load("b").fingerprint([1, 4]) == fa  # not selected
    assert load("b").fingerprint([1, 3, 4]) != load("a").fingerprint([1, 3, 4])
    os.rename(tmp_path / "a" / "cat" / "1.png", tmp_path / "a" / "cat" / "7.png")  # still index 4, same bytes
    assert load("a").fingerprint([1, 4]) != fa  # the relative path is part of the identity
