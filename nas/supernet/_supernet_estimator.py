"""``--estimator supernet:CKPT``: accuracy of subnets inherited from a trained supernet.

Per architecture: the subnet inherits the shared weights, its BatchNorm statistics are re-estimated on
a fixed set of training images, then top-1 accuracy is measured on the held-out split. The
architectures of one ``score`` call are measured together (``SubnetScorer``: layers they share run
once, channels-last tensors); scores are cached per canonical arch string. Architectures may be given
at the search space's own resolution (what latency tables see); the supernet runs them at its
training resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from nas.data import Dataset, load_data
from nas.errors import NasError
from nas.space import SearchSpace
from nas.spec import ArchSpec
from nas.supernet._batched_eval import SubnetScorer
from nas.supernet._estimators import CachedEstimator
from nas.supernet._evaluate import BatchQuality, calibration_batches
from nas.supernet._train import controller_from_checkpoint, load_supernet
from nas.supernet._tunas import Controller


class SupernetEstimator(CachedEstimator):
    """Held-out accuracy (fraction in [0, 1]) of subnets of a trained supernet checkpoint."""

    def __init__(
        self,
        path: str | Path,
        *,
        data: Dataset | None = None,
        calib_batches: int = 32,
        calib_batch_size: int = 128,
        device: str = "cpu",
        threads: int | None = None,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.device = device
        self.threads = threads
        self.supernet, self.meta, ckpt = load_supernet(self.path, device)
        self._controller_state = {"controller": ckpt.get("controller"), "meta": self.meta}
        d = self.meta["data"]
        if data is None:
            try:
                data = load_data(
                    d["spec"],
                    int(self.meta["resolution"]),
                    val_fraction=float(d["val_fraction"]),
                    seed=int(d["split_seed"]),
                )
            except NasError as exc:
                raise NasError(f"{self.path}: cannot reload the training data ({exc})") from None
        if list(data.classes) != list(self.meta["classes"]):
            raise NasError(f"{self.path}: the data's classes differ from the ones the supernet was trained on")
        self.data = data
        # 4096 images by default: with 512, which images were drawn moved a coarse-phase supernet's
        # Kendall τ against stand-alone training between 0.64 and 0.70; with 4096 it stays within 0.01.
        self.calib = calibration_batches(data, calib_batches, calib_batch_size, 0, device)
        self.scorer = SubnetScorer(self.supernet, data, self.calib, device)
        n_img = sum(len(b) for b in self.calib)
        self.name = f"supernet:{self.path}"
        self.meaning = (
            f"top-1 accuracy (fraction 0-1) on the {len(data.val_y)} held-out images of {d['spec']} at "
            f"{self.meta['resolution']} px of the subnet inheriting the weights of {self.path.name} "
            f"({self.meta['epochs_done']} epochs, {self.meta['config']['sampler']}); BatchNorm recalibrated on "
            f"{n_img} training images per subnet"
        )

    @property
    def search_space(self) -> SearchSpace:
        """The space the supernet was trained on (at its own resolution)."""
        return self.supernet.search_space

    def normalize(self, arch: ArchSpec) -> ArchSpec:
        """``arch`` at the supernet's training resolution and class count."""
        return self.supernet.normalize(arch)

    def score(self, archs: Sequence[ArchSpec]) -> np.ndarray:
        """Held-out accuracies of ``archs``; the ones not cached yet are measured together."""
        todo = list({a.arch: a for a in archs if a.arch not in self._cache}.values())
        if todo:
            old = torch.get_num_threads()
            if self.threads:
                torch.set_num_threads(self.threads)
            try:
                accs = self.scorer(todo)
            finally:
                torch.set_num_threads(old)
            self._cache.update((a.arch, float(v)) for a, v in zip(todo, accs, strict=True))
        return super().score(archs)

    def _score_one(self, arch: ArchSpec) -> float:
        return float(self.score([arch])[0])

    def tunas_quality(self, batch_size: int = 256, seed: int = 0) -> BatchQuality:
        """TuNAS per-step quality: accuracy on the next held-out batch, BN batch statistics (cheap, noisy)."""
        return BatchQuality(self.supernet, self.data, batch_size, seed, self.device)

    def controller(self) -> Controller | None:
        """The TuNAS controller trained jointly with the weights (``sampler = tunas``), else None."""
        return controller_from_checkpoint(self._controller_state, self.supernet.search_space)


__all__ = ["SupernetEstimator"]
