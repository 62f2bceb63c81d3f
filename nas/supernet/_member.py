"""A supernet's member as a stand-alone model: inherited weights, BatchNorm recalibrated (what
``mnv4-nas supernet extract`` writes), with what a caller needs to run it (e.g. as a teacher)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from nas.model import recalibrate_bn
from nas.spec import ArchSpec


@dataclass(frozen=True)
class Member:
    """``model`` (eval mode, CPU) of ``arch`` at the supernet's training resolution and class count; it
    expects images normalised with ``mean``/``std`` (the supernet's training data statistics)."""

    model: nn.Module
    arch: ArchSpec
    classes: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resolution: int
    checkpoint: Path

    def identity(self) -> dict[str, Any]:
        """JSON-able identity: checkpoint path and sha256, its epochs, the member's arch string."""
        h = hashlib.sha256()
        with open(self.checkpoint, "rb") as fh:
            for block in iter(lambda: fh.read(2**20), b""):
                h.update(block)
        return {
            "checkpoint": str(self.checkpoint.resolve()),
            "checkpoint_sha256": h.hexdigest(),
            "arch": self.arch.arch,
        }


def member_model(checkpoint: str | Path, arch: ArchSpec) -> Member:
    """The member ``arch`` of the supernet ``checkpoint`` (a checkpoint or a few-shot manifest, whose
    shot holding ``arch`` is used) with inherited weights and BatchNorm statistics re-estimated on the
    supernet's training data, as :func:`nas.supernet.SupernetEstimator` scores it. One-line errors for
    a bad checkpoint or a non-member."""
    from nas.supernet._few_shot import FewShotEstimator
    from nas.supernet._load_estimator import load_supernet_estimator

    est = load_supernet_estimator(checkpoint)
    shot = est.shot_for(arch) if isinstance(est, FewShotEstimator) else est
    model = recalibrate_bn(shot.supernet.extract(arch), shot.calib).cpu().eval()
    d = shot.meta["data"]
    return Member(
        model=model,
        arch=shot.supernet.normalize(arch),
        classes=tuple(shot.meta["classes"]),
        mean=tuple(float(v) for v in d["mean"]),  # type: ignore[arg-type]
        std=tuple(float(v) for v in d["std"]),  # type: ignore[arg-type]
        resolution=int(shot.meta["resolution"]),
        checkpoint=shot.path,
    )


__all__ = [
    "Member",
    "member_model",
]
