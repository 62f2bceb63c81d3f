"""Training augmentation recipes, built from kornia's tensor augmentations (no torchvision).

An :class:`Augment` maps float images in [0, 1] (N×3×R×R) to augmented images of the same shape,
deterministically in the ``seed`` it is given: kornia draws from torch's global generator, so each
call runs inside :func:`torch.random.fork_rng` seeded with ``seed`` and leaves the caller's random
state untouched (no hidden global randomness, and a resumed training repeats the same draws).

Recipes (``AUGMENTATIONS``):

- ``none``: identity.
- ``flip``: left-right flip with p = 0.5 (the paper's student recipe on a distillation store).
- ``crop-flip``: pad by reflection (1/8 of the side), random crop back to the side, flip (the
  CIFAR-style default for hard-label training at small resolutions).
- ``inception-randaug``: the paper's distillation data set D1 — Inception crop (random area
  fraction in ``INCEPTION_SCALE``, aspect ratio 3/4 to 4/3, resized back to the side), flip, then
  RandAugment "l2m9" (two operations at magnitude 9 of 10; kornia counts magnitudes out of 30, so
  ``m=27``). kornia draws RandAugment's operations once per call, so they are drawn per group of
  ``RANDAUG_GROUP`` images (a whole batch sharing one pair would make its copies alike).
- ``mixup``: the paper's D2 (Patient Teacher's function matching) — Inception crop and flip, then
  "extreme" mixup: every image is mixed with a random image of the same batch, the partner's weight
  drawn uniformly from [0, 1] (Beta(1, 1), kornia's ``RandomMixUpV2``). The teacher labels the mixed
  image; a store keeps the first image's hard label.
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
        return _seeded(x, seed, self.ops)


def _seeded(x: torch.Tensor, seed: int, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``fn(x)`` with torch's generators forked and seeded by ``seed``; the result clamped to [0, 1]."""
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        # not torch.manual_seed: it also queues seeds for every accelerator type with a captured
        # stack trace, milliseconds per call, which a small model's training step notices
        torch.default_generator.manual_seed(seed)
        if devices:
            torch.cuda.manual_seed(seed)
        out = fn(x)
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


#: Area fraction range of the Inception crop. ImageNet's (0.08, 1) at 224 px keeps at least a
#: 63-px patch; at 32 px it would keep 9 px, too little of the object for a teacher to label, so
#: small images use (0.25, 1): at least half the side (16 of 32 px).
INCEPTION_SCALE = (0.25, 1.0)
#: RandAugment operations per image and their magnitude out of 10 (the paper's "l2m9").
RANDAUG_OPS, RANDAUG_MAGNITUDE = 2, 9
#: Images that share one draw of RandAugment's operations (see the module docstring).
RANDAUG_GROUP = 8


def _inception_crop(resolution: int) -> torch.nn.Module:
    import kornia.augmentation as K

    return K.AugmentationSequential(
        K.RandomResizedCrop((resolution, resolution), scale=INCEPTION_SCALE, ratio=(3 / 4, 4 / 3)),
        K.RandomHorizontalFlip(p=0.5),
    )


class InceptionRandAugment:
    """Inception crop + flip + RandAugment l2m9 (operations drawn per group of ``group`` images)."""

    name = "inception-randaug"

    def __init__(self, resolution: int, group: int = RANDAUG_GROUP):
        import kornia.augmentation as K
        from kornia.augmentation.auto import RandAugment

        self.crop = _inception_crop(resolution)
        # kornia's annotation leaves out its policy augmentations (RandAugment), which it accepts.
        self.randaug = K.AugmentationSequential(RandAugment(n=RANDAUG_OPS, m=RANDAUG_MAGNITUDE * 3))  # type: ignore[arg-type]
        self.group = group

    def _ops(self, x: torch.Tensor) -> torch.Tensor:
        x = self.crop(x)
        return torch.cat([self.randaug(g) for g in x.split(self.group)])

    def __call__(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        return _seeded(x, seed, self._ops)


def _mixup(resolution: int) -> Augment:
    import kornia.augmentation as K

    mix = K.RandomMixUpV2(lambda_val=(0.0, 1.0), p=1.0, data_keys=["input"])
    return KorniaAugment("mixup", torch.nn.Sequential(_inception_crop(resolution), mix))


#: name -> factory taking the image side (px)
AUGMENTATIONS: dict[str, Callable[[int], Augment]] = {
    "none": lambda resolution: _Identity(),
    "flip": _flip,
    "crop-flip": _crop_flip,
    "inception-randaug": InceptionRandAugment,
    "mixup": _mixup,
}


def make_augment(name: str, resolution: int) -> Augment:
    """The recipe ``name`` for ``resolution``-px images (one-line error for an unknown name)."""
    try:
        factory = AUGMENTATIONS[name]
    except KeyError:
        raise DataError(f"augmentation must be one of {', '.join(AUGMENTATIONS)} (got {name!r})") from None
    return factory(resolution)
