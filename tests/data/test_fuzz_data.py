"""Fuzzing training data: ``.npz`` arrays of any shape and dtype, damaged archives and images. Each is a
data set or a one-line DataError, never another exception, a huge allocation or a blocked read."""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas.data import DataError, load_data

FUZZ = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
DTYPES = [np.uint8, np.int64, np.float32, np.float64, np.bool_, np.int8, np.complex64]


@FUZZ
@given(
    st.lists(st.integers(0, 9), min_size=1, max_size=5),
    st.sampled_from(DTYPES),
    st.lists(st.integers(-2, 3), min_size=0, max_size=12),
    st.sampled_from(DTYPES),
    st.booleans(),
)
def test_npz_arrays(tmp_path_factory, shape, dtype, labels, label_dtype, with_val):
    rng = np.random.default_rng(0)
    x = (rng.random(shape) * (255 if dtype == np.uint8 else 1)).astype(dtype)
    y = np.asarray(labels).astype(label_dtype)
    arrays = {"images": x, "labels": y}
    if with_val:
        arrays.update(val_images=x, val_labels=y)
    p = tmp_path_factory.mktemp("d") / "d.npz"
    np.savez(p, **arrays)
    try:
        ds = load_data(str(p), 8, val_fraction=0.25)
    except DataError as exc:
        assert "\n" not in str(exc) and str(p) in str(exc)
        return
    assert ds.num_classes >= 2 and len(ds.train_y) > 0


def _npz_with_header(path, shape, descr="|u1", data=b"\0" * 16):
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    header += " " * (63 - (len(header) + 10) % 64) + "\n"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("images.npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data)
        buf = io.BytesIO()
        np.save(buf, np.arange(4))
        z.writestr("labels.npy", buf.getvalue())


@pytest.mark.parametrize(
    "kind, msg",
    [
        ("huge-shape", "declares shape"),
        ("object", "Python objects"),
        ("truncated", "cannot read .npz"),
        ("not-zip", "cannot read .npz"),
        ("fifo", "regular file"),
        ("empty-spec", "empty"),
        ("bomb", "DecompressionBomb"),
        ("garbage-png", "cannot read image"),
        ("truncated-png", "cannot read image"),
    ],
)
def test_damaged_data(tmp_path, kind, msg):
    p = tmp_path / "d.npz"
    if kind == "huge-shape":
        _npz_with_header(p, (1000000, 1000, 1000, 1))  # would allocate 10^12 bytes
    elif kind == "object":
        _npz_with_header(p, (4,), descr="|O")
    elif kind == "truncated":
        np.savez(p, images=np.zeros((8, 8, 8, 3), np.uint8), labels=np.arange(8) % 2)
        p.write_bytes(p.read_bytes()[:300])
    elif kind == "not-zip":
        p.write_bytes(bytes(range(256)) * 4)
    elif kind == "fifo":
        os.mkfifo(p)  # refused before anything opens it
    elif kind == "empty-spec":
        p = ""
    else:
        p = _image_folder(tmp_path, kind)
    with pytest.raises(DataError, match=msg) as exc:
        load_data(str(p), 8)
    assert "\n" not in str(exc.value)


def _png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _image_folder(root, kind: str):
    from PIL import Image

    d = root / "imgs"
    for c in ("a", "b"):
        (d / c).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (10, 10), (i * 40, 0, 0)).save(d / c / f"{i}.png")
    bad = {
        "bomb": _png(40_000, 40_000),
        "garbage-png": b"not a png",
        "truncated-png": (d / "a" / "0.png").read_bytes()[:40],
    }[kind]
    (d / "b" / "zz.png").write_bytes(bad)
    os.mkfifo(d / "a" / "fifo.png")  # not a regular file: skipped, never opened
    return d


def test_a_fifo_among_images_is_skipped(tmp_path):
    from PIL import Image

    d = tmp_path / "imgs"
    for c in ("a", "b"):
        (d / c).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (10, 10), (i * 40, 0, 0)).save(d / c / f"{i}.png")
    os.mkfifo(d / "a" / "fifo.png")
    assert load_data(str(d), 8).num_classes == 2
