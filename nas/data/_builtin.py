"""The built-in data set *shapes10*: ten classes of geometric shapes and textures, generated
deterministically (numpy only) and cached under ``$MNV4NAS_CACHE`` (default ``~/.cache/mnv4-nas``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from nas._io import write_atomic
from nas.data._dataset import Dataset, make_dataset

BUILTIN_CLASSES: tuple[str, ...] = (
    "disk",
    "ring",
    "square",
    "frame",
    "triangle",
    "plus",
    "cross",
    "hstripes",
    "vstripes",
    "checker",
)
BUILTIN_TRAIN_PER_CLASS = 1000
BUILTIN_VAL_PER_CLASS = 200
BUILTIN_SEED = 20240417


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


def _f32(*arrays: np.ndarray) -> list[np.ndarray]:
    """Float32 copies of ``arrays`` (typed as plain arrays: the caller rebinds its float64 names to them)."""
    return [a.astype(np.float32) for a in arrays]


def render_shapes(
    n_per_class: int,
    resolution: int,
    seed: int,
    *,
    contrast: tuple[float, ...] = (0.3, 0.45, 0.6),
    strokes: int = 1,
    noise: tuple[float, float] = (0.01, 0.05),
    texture: tuple[float, float] = (0.02, 0.1),
    scale: tuple[float, float] = (0.3, 0.6),
) -> tuple[np.ndarray, np.ndarray]:
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
    cx, cy, size, theta, aspect, bg, fg = _f32(cx, cy, size, theta, aspect, bg, fg)
    tex_f, tex_p, tex_a, stroke_xy, stroke_col = _f32(tex_f, tex_p, tex_a, stroke_xy, stroke_col)
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
        tex = np.sin(
            gx[None] * np.pi * tex_f[sl, 0, 0, None, None]
            + gy[None] * np.pi * tex_f[sl, 0, 1, None, None]
            + tex_p[sl, 0, None, None]
        )
        tex2 = np.sin(
            gx[None] * np.pi * tex_f[sl, 1, 0, None, None]
            - gy[None] * np.pi * tex_f[sl, 1, 1, None, None]
            + tex_p[sl, 1, None, None]
        )
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


def render_cached(n_per_class: int, resolution: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
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
        tx, ty = render_cached(train_per_class, resolution, BUILTIN_SEED)
        vx, vy = render_cached(builtin_val_per_class(train_per_class), resolution, BUILTIN_SEED + 1)
        src = "builtin" if train_per_class == BUILTIN_TRAIN_PER_CLASS else f"builtin:{train_per_class}"
        _BUILTIN_CACHE[key] = make_dataset(
            src,
            BUILTIN_CLASSES,
            resolution,
            torch.from_numpy(tx),
            torch.from_numpy(ty),
            torch.from_numpy(vx),
            torch.from_numpy(vy),
        )
    return _BUILTIN_CACHE[key]
