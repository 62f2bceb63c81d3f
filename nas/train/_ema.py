"""Exponential moving average of a model's weights (what timm's ``ModelEmaV3`` does)."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class ModelEma:
    """A copy of ``model`` whose floating-point parameters and buffers (BatchNorm statistics included)
    follow the model's as ``ema = decay * ema + (1 - decay) * model`` after every optimizer step; integer
    buffers are copied. Create it after the model is on its device (it aliases the model's tensors)."""

    def __init__(self, model: nn.Module, decay: float = 0.9998, *, warmup: bool = True) -> None:
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = float(decay)
        self.warmup = warmup
        self._float: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
        self._other: list[tuple[torch.Tensor, torch.Tensor]] = []
        # state_dict() tensors share storage with the modules, so these lists stay valid across steps
        for e, m in zip(self.module.state_dict().values(), model.state_dict().values(), strict=True):
            if e.is_floating_point():
                self._float[0].append(e)
                self._float[1].append(m)
            else:
                self._other.append((e, m))

    def decay_at(self, step: int) -> float:
        """Decay applied by the update after optimizer step ``step`` (1-based): the first copies the
        model; with warm-up the decay then grows as ``1 - (1 + s)^(-2/3)`` up to :attr:`decay`."""
        s = step - 1
        if s <= 0:
            return 0.0
        if not self.warmup:
            return self.decay
        return min(self.decay, 1.0 - (1.0 + s) ** (-2.0 / 3.0))

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Fold the model's current weights into the average (call after optimizer step ``step``)."""
        ema, model = self._float
        torch._foreach_lerp_(ema, model, 1.0 - self.decay_at(step))
        for e, m in self._other:
            e.copy_(m)

    def state_dict(self) -> dict[str, Any]:
        """The averaged model's state dict."""
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the average (in place, so the aliases stay valid)."""
        self.module.load_state_dict(state)
