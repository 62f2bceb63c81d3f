"""The in-memory data set every trainer reads: uint8 N×3×R×R splits, statistics, batching."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from nas.errors import NasError


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


def stats(x: torch.Tensor) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    f = x[: min(len(x), 5000)].to(torch.float64) / 255.0
    mean = f.mean(dim=(0, 2, 3))
    std = f.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)  # type: ignore[return-value]


def make_dataset(
    source: str,
    classes: tuple[str, ...],
    res: int,
    tx: torch.Tensor,
    ty: torch.Tensor,
    vx: torch.Tensor,
    vy: torch.Tensor,
) -> Dataset:
    mean, std = stats(tx)
    return Dataset(source, classes, res, tx.contiguous(), ty.long(), vx.contiguous(), vy.long(), mean, std)


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
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


def batches(data: Dataset, split: str, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(normalised images, labels) batches of one split, in order (evaluation; training reads a
    :class:`~nas.data.TrainSource` and augments with :func:`~nas.data.make_augment`)."""
    x, y = (data.train_x, data.train_y) if split == "train" else (data.val_x, data.val_y)
    for s in range(0, len(y), batch_size):
        yield data.normalize(x[s : s + batch_size]), y[s : s + batch_size]
