"""Data sources: built-in shapes10, .npz, image folders; one-line errors for malformed inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nas.data import BUILTIN_CLASSES, DatasetSource, batches, load_data, make_augment, render_shapes
from nas.errors import NasError


def test_builtin_is_deterministic_balanced_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("MNV4NAS_CACHE", str(tmp_path))
    x1, y1 = render_shapes(3, 32, seed=7)
    x2, y2 = render_shapes(3, 32, seed=7)
    assert x1.shape == (30, 3, 32, 32) and x1.dtype == np.uint8
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert np.bincount(y1).tolist() == [3] * 10
    assert not np.array_equal(render_shapes(3, 32, seed=8)[0], x1)
    # Same scenes at another resolution: the labels (drawn before rendering) agree.
    assert np.array_equal(render_shapes(3, 48, seed=7)[1], y1)
    ds = load_data("builtin:13", 24)  # not loaded by any other test: not in the in-memory cache
    assert ds.classes == BUILTIN_CLASSES and ds.num_classes == 10
    assert len(ds.train_y) == 130 and len(ds.val_y) == 200
    assert ds.train_x.shape == (130, 3, 24, 24) and ds.train_x.dtype == torch.uint8
    assert any(p.suffix == ".npz" for p in tmp_path.iterdir())
    assert "10 classes" in ds.describe()


def _npz(path, images, labels, **extra):
    np.savez(path, images=images, labels=labels, **extra)
    return str(path)


def test_npz_layouts_resize_and_split(tmp_path):
    rng = np.random.default_rng(0)
    nhwc = rng.integers(0, 256, (40, 20, 20, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(4), 10)
    ds = load_data(_npz(tmp_path / "a.npz", nhwc, labels), 16, val_fraction=0.2)
    assert ds.train_x.shape == (32, 3, 16, 16) and ds.val_x.shape == (8, 3, 16, 16)
    assert sorted(torch.bincount(ds.val_y).tolist()) == [2, 2, 2, 2]
    nchw = nhwc.transpose(0, 3, 1, 2)
    ds2 = load_data(_npz(tmp_path / "b.npz", nchw, labels), 16, val_fraction=0.2)
    assert torch.equal(ds.train_x, ds2.train_x)
    gray = rng.integers(0, 256, (40, 12, 12), dtype=np.uint8)
    ds3 = load_data(
        _npz(
            tmp_path / "c.npz",
            gray,
            labels,
            val_images=gray[:8],
            val_labels=labels[:8],
            classes=np.array(["a", "b", "c", "d"]),
        ),
        12,
    )
    assert ds3.classes == ("a", "b", "c", "d") and len(ds3.val_y) == 8 and len(ds3.train_y) == 40
    assert torch.equal(ds3.train_x[:, 0], ds3.train_x[:, 2])
    floats = nhwc.astype(np.float32) / 255
    ds4 = load_data(_npz(tmp_path / "d.npz", floats, labels), 20, val_fraction=0.2)
    assert ds4.train_x.dtype == torch.uint8


@pytest.mark.parametrize(
    "images, labels, extra, msg",
    [
        (np.zeros((4, 8, 8, 5), np.uint8), np.zeros(4, np.int64), {}, "N×H×W×C or N×C×H×W"),
        (np.zeros((4, 8), np.uint8), np.zeros(4, np.int64), {}, "N×H×W×C or N×C×H×W"),
        (np.zeros((4, 8, 8, 3), np.int32), np.arange(4), {}, "must be uint8"),
        (np.zeros((4, 8, 8, 3), np.float32) + 2, np.arange(4), {}, "values must lie in [0, 1]"),
        (np.zeros((4, 8, 8, 3), np.uint8), np.zeros(3, np.int64), {}, "one label per image"),
        (np.zeros((4, 8, 8, 3), np.uint8), np.zeros(4, np.float32), {}, "integer class indices"),
        (np.zeros((4, 8, 8, 3), np.uint8), np.zeros(4, np.int64), {}, "at least 2"),
        (
            np.zeros((4, 8, 8, 3), np.uint8),
            np.arange(4) % 2,
            {"val_images": np.zeros((2, 9, 9, 3), np.uint8), "val_labels": np.arange(2)},
            "val_images are",
        ),
        (np.zeros((4, 8, 8, 3), np.uint8), np.arange(4) % 2, {"val_labels": np.arange(2)}, "go together"),
    ],
)
def test_npz_errors_are_one_line(tmp_path, images, labels, extra, msg):
    p = _npz(tmp_path / "bad.npz", images, labels, **extra)
    with pytest.raises(NasError) as exc:
        load_data(p, 16)
    assert msg in str(exc.value) and "\n" not in str(exc.value) and "bad.npz" in str(exc.value)


def test_npz_missing_array(tmp_path):
    p = tmp_path / "m.npz"
    np.savez(p, pics=np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(NasError, match="missing array 'images' .found: pics"):
        load_data(str(p), 16)


def _png(path, color, size=(20, 14)):
    Image.new("RGB", size, color).save(path)


def test_image_folder_with_and_without_splits(tmp_path):
    root = tmp_path / "imgs"
    for c, color in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        (root / c).mkdir(parents=True)
        for i in range(5):
            _png(root / c / f"{i}.png", color)
    (root / "dog" / "notes.txt").write_text("ignored")
    ds = load_data(str(root), 8, val_fraction=0.2)
    assert ds.classes == ("cat", "dog") and len(ds.train_y) == 8 and len(ds.val_y) == 2
    assert ds.train_x.shape == (8, 3, 8, 8)
    red = ds.train_x[ds.train_y == 0][0]
    assert int(red[0].float().mean()) == 255 and int(red[2].float().mean()) == 0
    split = tmp_path / "split"
    for part in ("train", "val"):
        for c in ("a", "b"):
            (split / part / c).mkdir(parents=True)
            _png(split / part / c / "x.jpg", (10, 200, 30), (9, 9))
    ds2 = load_data(str(split), 8)
    assert len(ds2.train_y) == 2 and len(ds2.val_y) == 2


def test_image_folder_errors_are_one_line(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    _png(flat / "a.png", (0, 0, 0))
    with pytest.raises(NasError, match="not an image-folder data set"):
        load_data(str(flat), 8)
    empty = tmp_path / "empty"
    (empty / "a").mkdir(parents=True)
    (empty / "b").mkdir()
    _png(empty / "a" / "1.png", (0, 0, 0))
    with pytest.raises(NasError, match=r"empty[/\\]b: empty class folder"):
        load_data(str(empty), 8)
    one = tmp_path / "one"
    (one / "a").mkdir(parents=True)
    _png(one / "a" / "1.png", (0, 0, 0))
    with pytest.raises(NasError, match="at least 2"):
        load_data(str(one), 8)
    broken = tmp_path / "broken"
    for c in ("a", "b"):
        (broken / c).mkdir(parents=True)
        _png(broken / c / "ok.png", (1, 2, 3))
    (broken / "b" / "bad.png").write_bytes(b"not an image")
    with pytest.raises(NasError) as exc:
        load_data(str(broken), 8)
    assert "bad.png: cannot read image" in str(exc.value) and "\n" not in str(exc.value)
    mismatch = tmp_path / "mm"
    for part, classes in (("train", ("a", "b")), ("val", ("a", "c"))):
        for c in classes:
            (mismatch / part / c).mkdir(parents=True)
            _png(mismatch / part / c / "x.png", (0, 0, 0))
    with pytest.raises(NasError, match="differ from the training split"):
        load_data(str(mismatch), 8)


@pytest.mark.parametrize("spec, msg", [("nope/missing", "no such file"), ("builtin:0", "1 to 100000")])
def test_bad_specs(tmp_path, spec, msg):
    with pytest.raises(NasError, match=msg):
        load_data(spec, 16)
    other = tmp_path / "x.csv"
    other.write_text("1,2")
    with pytest.raises(NasError, match="not a data set"):
        load_data(str(other), 16)


def test_sources_shard_batches_and_augment():
    ds = load_data("builtin:4", 16)
    src = DatasetSource(ds)
    shards = [list(src.epoch_batches(0, 8, rank=r, world=2)) for r in range(2)]
    assert [sum(len(b.y) for b in sh) for sh in shards] == [16, 16]  # 40 images: 20 per rank, full batches
    seen = [b.x for sh in shards for b in sh]
    assert all(x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1 for x in seen)
    again = [b.y for b in src.epoch_batches(0, 8, rank=1, world=2)]
    assert all(torch.equal(a.y, b) for a, b in zip(shards[1], again))  # the seed fixes the order
    x = seen[0]
    aug = make_augment("crop-flip", 16)
    out = aug(x, 1)
    assert out.shape == x.shape and torch.equal(out, aug(x, 1)) and not torch.equal(out, aug(x, 2))
    assert torch.equal(make_augment("none", 16)(x, 1), x)
    val = list(batches(ds, "val", 64))
    assert sum(len(y) for _, y in val) == len(ds.val_y)
