"""Training augmentation recipes, built from kornia's tensor augmentations (no torchvision).

An :class:`Augment` maps float images in [0, 1] (N×3×R×R) to augmented images of the same shape,
deterministically in the ``seed`` it is given: kornia draws from torch's global generator, so each
call runs inside :func:`torch.random.fork_rng` seeded with ``seed`` and leaves the caller's random
state untouched (no hidden global randomness, and a resumed training repeats the same draws).

Recipes (``AUGMENTATIONS``; more are registered by the distillation store):

- ``none``: identity.
- ``flip``: left-right flip with p = 0.5 (the paper's student recipe on a distillation store).
- ``crop-flip``: pad by reflection (1/8 of the side), random crop back to the side, flip (the
  CIFAR-style default for hard-label training at small resolutions).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from nas.data._dataset import DataError


class Augment(Protocol):
    """A recipe: ``(images in [0, 1], seed) -> augmented images in [0, 1]``, same shape."""

    name: str

    def __call__(self, x: torch.Tensor, seed: int) -> torch.Tensor: ...


class _Identity:
    name = "none"

    def __call__(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        return x


class KorniaAugment:
    """A kornia ``AugmentationSequential`` run under a seeded, forked torch generator."""

    def __init__(self, name: str, ops: torch.nn.Module):
        self.name = name
        self.ops = ops

    def __call__(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            # not torch.manual_seed: it also queues seeds for every accelerator type with a captured
            # stack trace, milliseconds per call, which a small model's training step notices
            torch.default_generator.manual_seed(seed)
            if devices:
                torch.cuda.manual_seed(seed)
            out = self.ops(x)
        return out.clamp_(0.0, 1.0)


def _flip(resolution: int) -> Augment:
    import kornia.augmentation as K

    return KorniaAugment("flip", K.AugmentationSequential(K.RandomHorizontalFlip(p=0.5)))


def _crop_flip(resolution: int) -> Augment:
    import kornia.augmentation as K

    pad = max(1, round(resolution / 8))
    ops = K.AugmentationSequential(
        K.RandomCrop((resolution, resolution), padding=pad, padding_mode="reflect"),
        K.RandomHorizontalFlip(p=0.5),
    )
    return KorniaAugment("crop-flip", ops)


#: name -> factory taking the image side (px)
AUGMENTATIONS: dict[str, Callable[[int], Augment]] = {
    "none": lambda resolution: _Identity(),
    "flip": _flip,
    "crop-flip": _crop_flip,
}


def make_augment(name: str, resolution: int) -> Augment:
    """The recipe ``name`` for ``resolution``-px images (one-line error for an unknown name)."""
    try:
        factory = AUGMENTATIONS[name]
    except KeyError:
        raise DataError(f"augmentation must be one of {', '.join(AUGMENTATIONS)} (got {name!r})") from None
    return factory(resolution)
