"""Teachers: anything that maps images to class probabilities (:class:`Teacher`)."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F


@runtime_checkable
class Teacher(Protocol):
    """Class probabilities for images; used to build distillation stores and to distil online."""

    @property
    def num_classes(self) -> int:
        """Width of the probability rows it returns."""
        ...

    @property
    def resolution(self) -> int | None:
        """Image side it expects (px); ``None`` if any side works."""
        ...

    def probs(self, images: torch.Tensor) -> torch.Tensor:
        """float images in [0, 1], N×3×R×R → float32 N×C probabilities (rows sum to 1). The teacher
        normalises the images itself, with the statistics it was trained with."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-able identity (kind, source file, classes, resolution), recorded where it is used."""
        ...


class ModuleTeacher:
    """A torch classifier (logits out) with the per-channel statistics it was trained with."""

    def __init__(self, model: torch.nn.Module, mean: tuple[float, float, float], std: tuple[float, float, float],
                 num_classes: int, resolution: int | None, source: str = "module", temperature: float = 1.0):  # fmt: skip
        self.model = model.eval()
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self._num_classes = int(num_classes)
        self._resolution = resolution
        self.source = source
        self.temperature = float(temperature)

    @property
    def num_classes(self) -> int:
        return self._num_classes

    @property
    def resolution(self) -> int | None:
        return self._resolution

    @torch.no_grad()
    def probs(self, images: torch.Tensor) -> torch.Tensor:
        dev = next(self.model.parameters()).device
        x = (images.to(dev, torch.float32) - self.mean.to(dev)) / self.std.to(dev)
        return F.softmax(self.model(x).float() / self.temperature, dim=1)

    def describe(self) -> dict[str, Any]:
        return {"kind": "module", "source": self.source, "num_classes": self.num_classes,
                "resolution": self.resolution, "temperature": self.temperature}  # fmt: skip
