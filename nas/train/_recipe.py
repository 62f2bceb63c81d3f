"""The training recipe every loop shares: optimizer, schedule, loss, clipping, EMA, precision, augmentation."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from nas.data import AUGMENTATIONS
from nas.inputs import InputError, check_finite, check_int, check_seed

OPTIMIZERS: tuple[str, ...] = ("adamw", "sgd")
#: ``auto``: bf16 autocast on a CUDA device that supports it, else fp16 with a gradient scaler; off on CPU
AMP_MODES: tuple[str, ...] = ("auto", "off", "bf16", "fp16")


@dataclass(frozen=True)
class Recipe:
    """Hyper-parameters of a training run (JSON-able; stored in checkpoints, a resume must match them)."""

    epochs: int = 30
    batch_size: int = 128  #: per process
    optimizer: str = "adamw"  #: adamw, or sgd (Nesterov momentum)
    lr: float = 2e-3  #: peak learning rate (linear warm-up, then cosine to 0)
    momentum: float = 0.9  #: sgd only
    weight_decay: float = 0.01  #: on conv/linear weights only (decoupled for adamw)
    lr_warmup: float = 0.025  #: fraction of the training steps with a linear learning-rate ramp
    label_smoothing: float = 0.1  #: hard labels only (soft targets are used as they are)
    grad_clip: float = 5.0  #: global gradient-norm clip (0 = off)
    augment: str = "crop-flip"  #: a recipe of :data:`nas.data.AUGMENTATIONS`
    ema: bool = True  #: keep an exponential moving average of the weights (timm ModelEmaV3)
    ema_decay: float = 0.9998
    #: EMA decay ramps up as ``1 - (1 + step)^(-2/3)`` until it reaches ``ema_decay`` (timm's
    #: ``--model-ema-warmup``), so short trainings get a useful average
    ema_warmup: bool = True
    amp: str = "auto"  #: mixed precision: auto, off, bf16, fp16 (CUDA only)
    zero_head: bool = True  #: stand-alone: classifier starts at zero (chance-level loss), as in the supernet
    #: NHWC ("channels-last") weights and activations: PyTorch then runs oneDNN convolutions on the CPU
    #: instead of its slow NCHW path (2-2.6x faster training steps on this project's 2-core machines);
    #: the same numbers up to float rounding
    channels_last: bool = True
    seed: int = 0

    def check(self, name: Callable[[str], str] = lambda field: field) -> None:
        """Raise a one-line :class:`~nas.inputs.InputError` on an invalid value; ``name(field)`` is how
        the message names a field (e.g. the CLI flag)."""
        check_int(self.epochs, name("epochs"), lo=1)
        check_int(self.batch_size, name("batch_size"), lo=2)
        check_seed(self.seed, name("seed"))
        _choice(self.optimizer, OPTIMIZERS, name("optimizer"))
        _choice(self.augment, tuple(AUGMENTATIONS), name("augment"))
        _choice(self.amp, AMP_MODES, name("amp"))
        check_finite(self.lr, name("lr"), lo=0, hi=10, lo_open=True)
        check_finite(self.momentum, name("momentum"), lo=0, hi=1, hi_open=True)
        check_finite(self.weight_decay, name("weight_decay"), lo=0)
        check_finite(self.lr_warmup, name("lr_warmup"), lo=0, hi=1, hi_open=True)
        check_finite(self.label_smoothing, name("label_smoothing"), lo=0, hi=1, hi_open=True)
        check_finite(self.grad_clip, name("grad_clip"), lo=0)
        check_finite(self.ema_decay, name("ema_decay"), lo=0, hi=1, lo_open=True, hi_open=True)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (what checkpoints and ``run.json`` record)."""
        return dataclasses.asdict(self)


def _choice(value: str, allowed: tuple[str, ...], name: str) -> None:
    if value not in allowed:
        raise InputError(f"{name} must be one of {', '.join(allowed)} (got {value!r})")


def lr_at(recipe: Recipe, step: int, total: int) -> float:
    """Learning rate at ``step`` of ``total``: linear warm-up over ``lr_warmup`` of the steps, then cosine to 0."""
    warm = int(recipe.lr_warmup * total)
    if step < warm:
        return recipe.lr * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return recipe.lr * 0.5 * (1 + math.cos(math.pi * t))


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """[decayed, not decayed]: weight decay on conv/linear weights (tensors of 2+ dims) only, never on
    biases, normalisation parameters, layer scales or what ``model.no_weight_decay()`` names."""
    skip: set[str] = set(getattr(model, "no_weight_decay", lambda: set())())
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.dim() > 1 and name not in skip else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: torch.nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """AdamW or SGD (Nesterov) over :func:`param_groups`."""
    groups = param_groups(model, recipe.weight_decay)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=recipe.lr, betas=(0.9, 0.999))


def amp_dtype(recipe: Recipe, device: torch.device, name: str = "amp") -> torch.dtype | None:
    """The autocast dtype of ``recipe.amp`` on ``device`` (None: full precision); ``name`` names the
    setting in the error for bf16/fp16 without CUDA."""
    if recipe.amp == "off" or (recipe.amp == "auto" and device.type != "cuda"):
        return None
    if device.type != "cuda":
        raise InputError(f"{name} {recipe.amp} needs a CUDA device (this run is on {device.type})")
    if recipe.amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if recipe.amp == "bf16" else torch.float16
