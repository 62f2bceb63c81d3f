"""Image-classification data for supernet training: an image-folder directory, an ``.npz`` file, or
the built-in procedurally generated data set.

Everything is decoded once, resized to the training resolution and held in memory as ``uint8``
N×3×R×R tensors (CPU-scale data sets at 32–64 px fit easily). Malformed inputs raise one-line
:class:`~nas.errors.NasError`\\ s naming the file.

``builtin`` (``builtin:N`` for N training images per class, default 1000) — *shapes10*: ten classes
of geometric shapes and textures (disk, ring, square, frame, triangle, plus, cross, horizontal
stripes, vertical stripes, checkerboard) drawn at a random position, size and tilt in a random
colour over a random smoothly varying background, with low-contrast cases, distractor strokes and
pixel noise. It is generated deterministically (fixed seed, numpy only) at the requested resolution
on first use and cached under ``$MNV4NAS_CACHE`` (default ``~/.cache/mnv4-nas``), so nothing is
downloaded; ``min(200, max(20, N // 2))`` held-out images per class form the validation split.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nas._io import write_atomic
from nas.errors import NasError

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
BUILTIN_CLASSES: tuple[str, ...] = (
    "disk", "ring", "square", "frame", "triangle", "plus", "cross", "hstripes", "vstripes", "checker",
)  # fmt: skip
BUILTIN_TRAIN_PER_CLASS = 1000
BUILTIN_VAL_PER_CLASS = 200
BUILTIN_SEED = 20240417
VAL_DIR_NAMES: tuple[str, ...] = ("val", "valid", "validation", "test")


class DataError(NasError):
    """A malformed data set (names the file or folder)."""


@dataclass
class Dataset:
    """Train and held-out splits as uint8 N×3×R×R tensors with int64 labels."""

    source: str
    classes: tuple[str, ...]
    resolution: int
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    def describe(self) -> str:
        """One line: source, classes, split sizes, resolution."""
        return (
            f"{self.source}: {self.num_classes} classes, {len(self.train_y)} train / {len(self.val_y)} held-out images "
            f"at {self.resolution}x{self.resolution}"
        )

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images → float, per-channel standardised with the training split's statistics."""
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
        return (x.to(torch.float32) / 255.0 - mean) / std


def _stats(x: torch.Tensor) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    f = x[: min(len(x), 5000)].to(torch.float64) / 255.0
    mean = f.mean(dim=(0, 2, 3))
    std = f.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)  # type: ignore[return-value]


def _make(source: str, classes: tuple[str, ...], res: int, tx: torch.Tensor, ty: torch.Tensor, vx: torch.Tensor,
          vy: torch.Tensor) -> Dataset:  # fmt: skip
    mean, std = _stats(tx)
    return Dataset(source, classes, res, tx.contiguous(), ty.long(), vx.contiguous(), vy.long(), mean, std)


def _split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train indices, held-out indices): ``fraction`` of every class, at least one image."""
    rng = np.random.default_rng(seed)
    tr, va = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        n_val = max(1, int(round(len(idx) * fraction))) if len(idx) > 1 else 0
        va.append(idx[:n_val])
        tr.append(idx[n_val:])
    return np.sort(np.concatenate(tr)), np.sort(np.concatenate(va))


# ----------------------------------------------------------------------------------------------
# resizing
# ----------------------------------------------------------------------------------------------


def resize_uint8(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Resize uint8 N×3×H×W images to R×R: centre-crop to a square, then antialiased bilinear."""
    n, _, h, w = x.shape
    if h != w:
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        x = x[:, :, top : top + s, left : left + s]
    if x.shape[-1] == resolution:
        return x.contiguous()
    out = torch.empty(n, 3, resolution, resolution, dtype=torch.uint8)
    for i in range(0, n, 512):
        f = x[i : i + 512].to(torch.float32)
        r = F.interpolate(f, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
        out[i : i + 512] = r.round().clamp(0, 255).to(torch.uint8)
    return out


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


def _read_folder(root: Path, resolution: int, classes: tuple[str, ...] | None = None) -> tuple[tuple[str, ...], torch.Tensor, torch.Tensor]:  # fmt: skip
    from PIL import Image, ImageOps, UnidentifiedImageError

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
                im = ImageOps.exif_transpose(im).convert("RGB")
                im = ImageOps.fit(im, (resolution, resolution), Image.Resampling.BILINEAR)
                arr = np.asarray(im, dtype=np.uint8)
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise DataError(f"{f}: cannot read image ({type(exc).__name__}: {exc})") from None
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
        return _make(str(root), classes, resolution, tx, ty, vx, vy)
    classes, x, y = _read_folder(root, resolution)
    tr, va = _split(y.numpy(), val_fraction, seed)
    return _make(str(root), classes, resolution, x[tr], y[tr], x[va], y[va])


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


def load_npz(path: Path, resolution: int, val_fraction: float, seed: int) -> Dataset:
    """``images`` + ``labels`` (split here), optionally ``val_images`` + ``val_labels`` and ``classes``."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read .npz ({type(exc).__name__}: {exc})") from None
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
        tr, va = _split(y.numpy(), val_fraction, seed)
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
    return _make(str(path), names, resolution, resize_uint8(x, resolution), y, resize_uint8(vx, resolution), vy)


# ----------------------------------------------------------------------------------------------
# built-in data (shapes10)
# ----------------------------------------------------------------------------------------------


def _shape_mask(k: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Foreground (bool) of class ``k`` at local coordinates ``u, v`` (the shape spans about [-1, 1])."""
    au, av = np.abs(u), np.abs(v)
    box = np.maximum(au, av)
    if k == 0:
        return u**2 + v**2 < 0.81
    if k == 1:
        r2 = u**2 + v**2
        return (r2 > 0.3) & (r2 < 0.9)
    if k == 2:
        return box < 0.75
    if k == 3:
        return (box > 0.5) & (box < 0.85)
    if k == 4:
        return (v > -0.75) & (v < 0.8) & (au < (v + 0.75) * 0.55)
    if k == 5:
        return ((au < 0.22) & (av < 0.9)) | ((av < 0.22) & (au < 0.9))
    if k == 6:
        ud, vd = np.abs(u + v) / np.sqrt(2), np.abs(u - v) / np.sqrt(2)
        return ((ud < 0.22) & (vd < 0.95)) | ((vd < 0.22) & (ud < 0.95))
    if k == 7:
        return (box < 0.9) & (np.sin(v * np.pi * 2.6) > 0)
    if k == 8:
        return (box < 0.9) & (np.sin(u * np.pi * 2.6) > 0)
    return (box < 0.9) & (np.sin(u * np.pi * 2.2) * np.sin(v * np.pi * 2.2) > 0)


def render_shapes(n_per_class: int, resolution: int, seed: int, *, contrast: tuple[float, ...] = (0.3, 0.45, 0.6),
                  strokes: int = 1, noise: tuple[float, float] = (0.01, 0.05), texture: tuple[float, float] = (0.02, 0.1),
                  scale: tuple[float, float] = (0.3, 0.6)) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``n_per_class`` images of each built-in class (uint8 N×3×R×R, labels), deterministic in ``seed``.

    Random parameters are drawn before rendering and do not depend on ``resolution``, so the same
    seed gives the same scenes at every resolution. The keywords set the difficulty: foreground
    contrast levels (RGB distance / √3, equally likely), distractor strokes per image, pixel-noise σ
    range, background-texture amplitude range and shape-size range (fraction of the half-image).
    """
    rng = np.random.default_rng(seed)
    k = len(BUILTIN_CLASSES)
    n = n_per_class * k
    labels = np.repeat(np.arange(k), n_per_class)
    labels = labels[rng.permutation(n)]
    cx, cy = rng.uniform(-0.45, 0.45, (2, n))
    size = rng.uniform(scale[0], scale[1], n)
    theta = rng.uniform(-0.45, 0.45, n)
    aspect = rng.uniform(0.8, 1.25, n)
    bg = rng.uniform(0.0, 1.0, (n, 3))
    # Foreground colour at a chosen distance from the background, moving each channel towards the
    # farther end of [0, 1] so that clipping never erases the shape.
    level = rng.choice(np.asarray(contrast), size=n)
    direction = np.abs(rng.normal(size=(n, 3)))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    fg = np.clip(bg + np.where(bg > 0.5, -1, 1) * direction * level[:, None] * np.sqrt(3), 0, 1)
    tex_f = rng.uniform(0.5, 2.5, (n, 2, 2))
    tex_p = rng.uniform(0, 2 * np.pi, (n, 2))
    tex_a = rng.uniform(texture[0], texture[1], (n, 3))
    n_strokes = strokes
    stroke_xy = rng.uniform(-1, 1, (n, n_strokes, 4))
    stroke_col = rng.uniform(0, 1, (n, n_strokes, 3))
    noise_sigma = rng.uniform(noise[0], noise[1], n)
    noise_seed = int(rng.integers(2**31))
    f32 = np.float32
    cx, cy, size, theta, aspect, bg, fg = (a.astype(f32) for a in (cx, cy, size, theta, aspect, bg, fg))
    tex_f, tex_p, tex_a, stroke_xy, stroke_col = (a.astype(f32) for a in (tex_f, tex_p, tex_a, stroke_xy, stroke_col))
    noise_sigma = noise_sigma.astype(f32)

    ss = 2  # supersampling for antialiased edges
    p = resolution * ss
    grid = ((np.arange(p) + 0.5) / p * 2 - 1).astype(np.float32)
    gy, gx = np.meshgrid(grid, grid, indexing="ij")
    out = np.empty((n, 3, resolution, resolution), dtype=np.uint8)
    noise_rng = np.random.default_rng(noise_seed + resolution)
    for s in range(0, n, 256):
        e = min(n, s + 256)
        sl = slice(s, e)
        m = e - s
        dx = (gx[None] - cx[sl, None, None]) / size[sl, None, None]
        dy = (gy[None] - cy[sl, None, None]) / size[sl, None, None]
        ct, st = np.cos(theta[sl])[:, None, None], np.sin(theta[sl])[:, None, None]
        u = (ct * dx + st * dy) * aspect[sl, None, None]
        v = (-st * dx + ct * dy) / aspect[sl, None, None]
        mask = np.zeros((m, p, p), dtype=np.float32)
        lab = labels[sl]
        for c in np.unique(lab):
            sel = lab == c
            mask[sel] = _shape_mask(int(c), u[sel], v[sel])
        tex = np.sin(gx[None] * np.pi * tex_f[sl, 0, 0, None, None] + gy[None] * np.pi * tex_f[sl, 0, 1, None, None]
                     + tex_p[sl, 0, None, None])  # fmt: skip
        tex2 = np.sin(gx[None] * np.pi * tex_f[sl, 1, 0, None, None] - gy[None] * np.pi * tex_f[sl, 1, 1, None, None]
                      + tex_p[sl, 1, None, None])  # fmt: skip
        img = bg[sl, :, None, None] + tex_a[sl, :, None, None] * (tex[:, None] + tex2[:, None]) / 2
        img = img * (1 - mask[:, None]) + fg[sl, :, None, None] * mask[:, None]
        for j in range(n_strokes):
            x0, y0, x1, y1 = (stroke_xy[sl, j, q, None, None] for q in range(4))
            # distance of each pixel to the segment (x0, y0)-(x1, y1)
            vx, vy = x1 - x0, y1 - y0
            t = np.clip(((gx[None] - x0) * vx + (gy[None] - y0) * vy) / (vx**2 + vy**2 + 1e-9), 0, 1)
            d = np.hypot(gx[None] - x0 - t * vx, gy[None] - y0 - t * vy)
            line = (d < 0.03).astype(np.float32)
            img = img * (1 - line[:, None]) + stroke_col[sl, j, :, None, None] * line[:, None]
        img = img.reshape(m, 3, resolution, ss, resolution, ss).mean(axis=(3, 5))
        img = img + noise_rng.standard_normal(size=img.shape, dtype=f32) * noise_sigma[sl, None, None, None]
        out[sl] = np.clip(np.round(img * 255), 0, 255).astype(np.uint8)
    return out, labels.astype(np.int64)


_BUILTIN_CACHE: dict[tuple[int, int], Dataset] = {}
BUILTIN_VERSION = 2


def cache_dir() -> Path:
    """Where generated data is cached (``$MNV4NAS_CACHE`` or ``~/.cache/mnv4-nas``)."""
    return Path(os.environ.get("MNV4NAS_CACHE") or Path.home() / ".cache" / "mnv4-nas")


def _render_cached(n_per_class: int, resolution: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    path = cache_dir() / f"shapes10-v{BUILTIN_VERSION}-s{seed}-n{n_per_class}-r{resolution}.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            return z["x"], z["y"]
    except (OSError, ValueError, KeyError):
        pass
    x, y = render_shapes(n_per_class, resolution, seed)
    try:
        write_atomic(path, lambda f: np.savez(f, x=x, y=y))
    except OSError:  # a read-only home only costs regeneration next time
        pass
    return x, y


def builtin_val_per_class(train_per_class: int) -> int:
    """Held-out images per class of ``builtin:N``."""
    return min(BUILTIN_VAL_PER_CLASS, max(20, train_per_class // 2))


def load_builtin(resolution: int, train_per_class: int = BUILTIN_TRAIN_PER_CLASS) -> Dataset:
    """The built-in shapes10 data set (see the module docstring) at ``resolution``."""
    key = (resolution, train_per_class)
    if key not in _BUILTIN_CACHE:
        tx, ty = _render_cached(train_per_class, resolution, BUILTIN_SEED)
        vx, vy = _render_cached(builtin_val_per_class(train_per_class), resolution, BUILTIN_SEED + 1)
        src = "builtin" if train_per_class == BUILTIN_TRAIN_PER_CLASS else f"builtin:{train_per_class}"
        _BUILTIN_CACHE[key] = _make(src, BUILTIN_CLASSES, resolution, torch.from_numpy(tx), torch.from_numpy(ty),
                                    torch.from_numpy(vx), torch.from_numpy(vy))  # fmt: skip
    return _BUILTIN_CACHE[key]


# ----------------------------------------------------------------------------------------------
# entry point and batching
# ----------------------------------------------------------------------------------------------


def load_data(spec: str, resolution: int, *, val_fraction: float = 0.1, seed: int = 0) -> Dataset:
    """A data set from ``builtin[:N]``, an ``.npz`` file or an image-folder directory, at ``resolution`` px.

    Without an explicit held-out split, ``val_fraction`` of each class (stratified, ``seed``) is held out.
    """
    if not 8 <= resolution <= 1024:
        raise DataError(f"resolution must be in [8, 1024] (got {resolution})")
    if not 0 < val_fraction < 1:
        raise DataError(f"held-out fraction must be in (0, 1) (got {val_fraction})")
    m = re.fullmatch(r"builtin(?::(\d+))?", spec.strip())
    if m:
        n = int(m.group(1)) if m.group(1) else BUILTIN_TRAIN_PER_CLASS
        if not 1 <= n <= 100_000:
            raise DataError(f"builtin:N takes 1 to 100000 training images per class (got {n})")
        return load_builtin(resolution, n)
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(f"{spec}: no such file or directory (data is 'builtin', an .npz file or an image folder)")
    if path.is_dir():
        return load_folder(path, resolution, val_fraction, seed)
    if path.suffix.lower() == ".npz":
        return load_npz(path, resolution, val_fraction, seed)
    raise DataError(f"{spec}: not a data set (expected 'builtin', an .npz file or an image-folder directory)")


def augment(x: torch.Tensor, generator: torch.Generator, pad_fraction: float = 0.125) -> torch.Tensor:
    """Random translation (pad by reflection, random crop) and horizontal flip of float N×3×R×R."""
    n, _, r, _ = x.shape
    pad = max(1, int(round(r * pad_fraction)))
    xp = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    ar = torch.arange(r)
    rows = (oy[:, None] + ar[None]).view(n, 1, r, 1).expand(n, 3, r, r + 2 * pad)
    cols = (ox[:, None] + ar[None]).view(n, 1, 1, r).expand(n, 3, r, r)
    out = xp.gather(2, rows).gather(3, cols)
    flip = torch.rand(n, generator=generator) < 0.5
    out[flip] = out[flip].flip(-1)
    return out


def batches(data: Dataset, split: str, batch_size: int, *, generator: torch.Generator | None = None,
            train: bool = False, rank: int = 0, world: int = 1, drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:  # fmt: skip
    """(normalised images, labels) batches of one split; shuffled and augmented when ``train``.

    With ``world > 1`` every rank gets a disjoint shard of the same (seeded) permutation.
    """
    x, y = (data.train_x, data.train_y) if split == "train" else (data.val_x, data.val_y)
    n = len(y)
    order = torch.randperm(n, generator=generator) if train else torch.arange(n)
    if world > 1:
        per = n // world
        order = order[rank * per : (rank + 1) * per]
    stop = len(order) - (len(order) % batch_size if drop_last and len(order) >= batch_size else 0)
    for s in range(0, stop, batch_size):
        idx = order[s : s + batch_size]
        xb = data.normalize(x[idx])
        if train:
            assert generator is not None
            xb = augment(xb, generator)
        yield xb, y[idx]
