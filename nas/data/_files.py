"""Image-folder and ``.npz`` data sets, decoded once and resized to the training resolution."""

from __future__ import annotations

import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from nas.data._dataset import DataError, Dataset, make_dataset, resize_uint8, stratified_split

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
VAL_DIR_NAMES: tuple[str, ...] = ("val", "valid", "validation", "test")


# ----------------------------------------------------------------------------------------------
# image folders
# ----------------------------------------------------------------------------------------------


def _class_dirs(root: Path) -> list[Path]:
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subdirs:
        raise DataError(
            f"{root}: not an image-folder data set (expected one sub-folder per class, each holding images)"
        )
    return subdirs


def _images_in(d: Path) -> list[Path]:
    files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DataError(f"{d}: empty class folder (no images with extension {', '.join(IMAGE_EXTENSIONS)})")
    return files


def _read_folder(
    root: Path, resolution: int, classes: tuple[str, ...] | None = None
) -> tuple[tuple[str, ...], torch.Tensor, torch.Tensor]:
    from PIL import Image, ImageOps, UnidentifiedImageError

    # Everything a broken or hostile image file makes PIL raise (a decompression bomb included).
    bad_image = (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        OSError,
        ValueError,
        SyntaxError,
        struct.error,
        EOFError,
        IndexError,
        zlib.error,
        MemoryError,
    )

    dirs = _class_dirs(root)
    names = tuple(d.name for d in dirs)
    if classes is not None and names != classes:
        raise DataError(f"{root}: class folders {list(names)} differ from the training split's {list(classes)}")
    if len(dirs) < 2:
        raise DataError(f"{root}: found 1 class folder ({dirs[0].name}); classification needs at least 2")
    files = [(f, label) for label, d in enumerate(dirs) for f in _images_in(d)]
    x = torch.empty(len(files), 3, resolution, resolution, dtype=torch.uint8)
    y = torch.empty(len(files), dtype=torch.int64)
    for i, (f, label) in enumerate(files):
        try:
            with Image.open(f) as im:
                rgb = ImageOps.exif_transpose(im).convert("RGB")
                rgb = ImageOps.fit(rgb, (resolution, resolution), Image.Resampling.BILINEAR)
                arr = np.asarray(rgb, dtype=np.uint8)
        except bad_image as exc:
            msg = " ".join(str(exc).split())[:160]
            raise DataError(f"{f}: cannot read image ({type(exc).__name__}: {msg})") from None
        if arr.ndim != 3 or arr.shape[2] != 3:  # pragma: no cover - convert("RGB") guarantees it
            raise DataError(f"{f}: unexpected image shape {arr.shape}")
        x[i] = torch.from_numpy(arr.copy()).permute(2, 0, 1)
        y[i] = label
    return names, x, y


def load_folder(root: Path, resolution: int, val_fraction: float, seed: int) -> Dataset:
    """``root/<class>/*.png`` (split here) or ``root/train/<class>/…`` + ``root/val/<class>/…``."""
    sub = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    val_dir = next((sub[n] for n in VAL_DIR_NAMES if n in sub), None)
    if "train" in sub and val_dir is not None:
        classes, tx, ty = _read_folder(sub["train"], resolution)
        _, vx, vy = _read_folder(val_dir, resolution, classes)
        return make_dataset(str(root), classes, resolution, tx, ty, vx, vy)
    classes, x, y = _read_folder(root, resolution)
    tr, va = stratified_split(y.numpy(), val_fraction, seed)
    return make_dataset(str(root), classes, resolution, x[tr], y[tr], x[va], y[va])


# ----------------------------------------------------------------------------------------------
# npz
# ----------------------------------------------------------------------------------------------


def _images_array(path: Path, key: str, a: np.ndarray) -> torch.Tensor:
    if a.ndim == 3:  # N×H×W grayscale
        a = a[:, None]
    if a.ndim != 4:
        raise DataError(f"{path}: {key} must be N×H×W×C or N×C×H×W with C = 1 or 3 (got shape {a.shape})")
    if a.shape[3] in (1, 3):
        a = a.transpose(0, 3, 1, 2)
    elif a.shape[1] not in (1, 3):
        raise DataError(f"{path}: {key} must be N×H×W×C or N×C×H×W with C = 1 or 3 (got shape {a.shape})")
    if a.shape[0] == 0 or a.shape[2] < 4 or a.shape[3] < 4:
        raise DataError(f"{path}: {key} has shape {a.shape}; need at least one image of at least 4x4 pixels")
    if a.dtype == np.uint8:
        t = torch.from_numpy(np.ascontiguousarray(a))
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
            raise DataError(f"{path}: {key} is floating point; values must lie in [0, 1] (or store uint8)")
        t = torch.from_numpy(np.ascontiguousarray(np.round(a * 255))).to(torch.uint8)
    else:
        raise DataError(f"{path}: {key} must be uint8 (or floats in [0, 1]); got dtype {a.dtype}")
    return t.expand(-1, 3, -1, -1) if t.shape[1] == 1 else t


def _labels_array(path: Path, key: str, a: np.ndarray, n: int) -> torch.Tensor:
    if a.ndim != 1 or len(a) != n:
        raise DataError(f"{path}: {key} must be a 1-D array with one label per image ({n}); got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.integer) or (len(a) and a.min() < 0):
        raise DataError(f"{path}: {key} must hold non-negative integer class indices (got dtype {a.dtype})")
    return torch.from_numpy(a.astype(np.int64))


#: Most bytes one array of an .npz may hold once loaded.
MAX_ARRAY_BYTES = 16 * 2**30


def _check_members(path: Path) -> None:
    """Read every ``.npy`` header of an .npz before any array: an object array, or an array that
    declares more bytes than its member holds (a lying or truncated header), is refused unallocated."""
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with zf.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    read = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read(fh)
                name = info.filename.removesuffix(".npy")
                if dtype.hasobject:
                    raise DataError(
                        f"{path}: array {name!r} holds Python objects (refused: only numeric arrays are read)"
                    )
                nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if nbytes > min(info.file_size, MAX_ARRAY_BYTES):
                    raise DataError(
                        f"{path}: array {name!r} declares shape {shape} ({nbytes} bytes) but its "
                        f"member holds {info.file_size} bytes"
                    )
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, struct.error) as exc:
        msg = " ".join(str(exc).split())[:160]
        raise DataError(f"{path}: cannot read .npz ({type(exc).__name__}: {msg})") from None


def load_npz(path: Path, resolution: int, val_fraction: float, seed: int) -> Dataset:
    """``images`` + ``labels`` (split here), optionally ``val_images`` + ``val_labels`` and ``classes``."""
    _check_members(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
        msg = " ".join(str(exc).split())[:160]
        raise DataError(f"{path}: cannot read .npz ({type(exc).__name__}: {msg})") from None
    for k in ("images", "labels"):
        if k not in arrays:
            raise DataError(f"{path}: missing array {k!r} (found: {', '.join(sorted(arrays)) or 'none'})")
    x = _images_array(path, "images", arrays["images"])
    y = _labels_array(path, "labels", arrays["labels"], len(x))
    if ("val_images" in arrays) != ("val_labels" in arrays):
        raise DataError(f"{path}: val_images and val_labels go together")
    if "val_images" in arrays:
        vx = _images_array(path, "val_images", arrays["val_images"])
        vy = _labels_array(path, "val_labels", arrays["val_labels"], len(vx))
        if vx.shape[2:] != x.shape[2:]:
            raise DataError(f"{path}: val_images are {tuple(vx.shape[2:])} px, images {tuple(x.shape[2:])} px")
    else:
        tr, va = stratified_split(y.numpy(), val_fraction, seed)
        x, vx, y, vy = x[tr], x[va], y[tr], y[va]
    n_cls = int(max(int(y.max()), int(vy.max()) if len(vy) else 0)) + 1
    if len(torch.unique(y)) < 2:
        raise DataError(f"{path}: labels hold {len(torch.unique(y))} class; classification needs at least 2")
    if "classes" in arrays:
        names = tuple(str(c) for c in arrays["classes"].tolist())
        if len(names) < n_cls:
            raise DataError(f"{path}: {len(names)} class names but labels go up to {n_cls - 1}")
    else:
        names = tuple(str(i) for i in range(n_cls))
    return make_dataset(str(path), names, resolution, resize_uint8(x, resolution), y, resize_uint8(vx, resolution), vy)
