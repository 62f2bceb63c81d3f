"""Accuracy of subnets and stand-alone models: BatchNorm recalibration and held-out evaluation."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

from nas.data import Dataset, TrainSource, batches
from nas.model import recalibrate_bn
from nas.spec import ArchSpec
from nas.supernet._supernet import Supernet


def calibration_batches(
    data: Dataset, n_batches: int = 8, batch_size: int = 64, seed: int = 0, device: str | torch.device = "cpu"
) -> list[torch.Tensor]:
    """Fixed training images (no augmentation) for BatchNorm recalibration: ``n_batches`` × ``batch_size``."""
    g = torch.Generator().manual_seed(seed)
    n = min(len(data.train_y), n_batches * batch_size)
    idx = torch.randperm(len(data.train_y), generator=g)[:n]
    x = data.normalize(data.train_x[idx])
    return [x[i : i + batch_size].to(device) for i in range(0, n, batch_size)]


def source_calibration_batches(
    source: TrainSource, n_batches: int = 8, batch_size: int = 64, seed: int = 0, device: str | torch.device = "cpu"
) -> list[torch.Tensor]:
    """:func:`calibration_batches` from any training source: its first ``n_batches`` batches in the order
    ``seed`` fixes (un-augmented, normalised with its statistics; smaller batches when it is small)."""
    bs = max(2, min(batch_size, source.train_size()))
    mean = torch.tensor(source.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(source.std, dtype=torch.float32).view(1, 3, 1, 1)
    it = source.epoch_batches(seed, bs)
    try:
        return [((b.x - mean) / std).to(device) for b in itertools.islice(it, n_batches)]
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()


@torch.no_grad()
def accuracy(
    model: Callable[[torch.Tensor], torch.Tensor],
    data: Dataset,
    split: str = "val",
    batch_size: int = 500,
    device: str | torch.device = "cpu",
) -> float:
    """Top-1 accuracy (fraction) of ``model`` (already in eval mode) on a split."""
    correct = total = 0
    for x, y in batches(data, split, batch_size):
        pred = model(x.to(device)).argmax(1).cpu()
        correct += int((pred == y).sum())
        total += len(y)
    return correct / max(1, total)


def standalone_accuracy(
    model: nn.Module, data: Dataset, calib: list[torch.Tensor] | None = None, device: str | torch.device = "cpu"
) -> float:
    """Held-out accuracy of a model; with ``calib`` its BatchNorm statistics are re-estimated first."""
    model = model.to(device)
    if calib is not None:
        recalibrate_bn(model, calib)
    return accuracy(model.eval(), data, "val", device=device)


def subnet_accuracy(
    supernet: Supernet, arch: ArchSpec, data: Dataset, calib: list[torch.Tensor], device: str | torch.device = "cpu"
) -> float:
    """Held-out accuracy of the subnet ``arch`` inherited from ``supernet``, BatchNorm recalibrated on ``calib``."""
    return standalone_accuracy(supernet.extract(arch), data, calib, device)


class BatchQuality:
    """TuNAS's per-step quality: accuracy of each subnet on the next held-out batch, BatchNorm in
    batch-statistics mode (running statistics untouched). Cycles through a seeded shuffle of the
    held-out split."""

    def __init__(
        self,
        supernet: Supernet,
        data: Dataset,
        batch_size: int = 256,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        self.supernet, self.data, self.batch_size, self.device = supernet, data, batch_size, device
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Restart the batch sequence from ``seed`` (training reseeds every epoch, for exact resumes)."""
        self._gen = torch.Generator().manual_seed(seed)
        self._it: Iterator[tuple[torch.Tensor, torch.Tensor]] = iter(())

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next held-out batch (reshuffled after each pass)."""
        for _ in range(2):
            try:
                x, y = next(self._it)
                return x.to(self.device), y.to(self.device)
            except StopIteration:
                order = torch.randperm(len(self.data.val_y), generator=self._gen)
                self._it = (
                    (
                        self.data.normalize(self.data.val_x[order[i : i + self.batch_size]]),
                        self.data.val_y[order[i : i + self.batch_size]],
                    )
                    for i in range(0, len(order), self.batch_size)
                )
        raise RuntimeError("empty held-out split")  # pragma: no cover

    @torch.no_grad()
    def __call__(self, archs: list[ArchSpec]) -> np.ndarray:
        was = self.supernet.training
        self.supernet.train()
        out = []
        try:
            for a in archs:
                x, y = self.next_batch()
                out.append(float((self.supernet(x, a, track_bn=False).argmax(1) == y).float().mean()))
        finally:
            self.supernet.train(was)
        return np.asarray(out, dtype=np.float64)


__all__ = [
    "BatchQuality",
    "accuracy",
    "calibration_batches",
    "source_calibration_batches",
    "standalone_accuracy",
    "subnet_accuracy",
]
