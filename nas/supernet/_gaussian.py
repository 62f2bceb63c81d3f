"""Networks with Zen-score's initialisation, built fast for many candidates in a row.

* :class:`GaussianPool` — one seeded sequence of N(0, 1) draws that every candidate reads from its
  start: a weight is a *view* of it, never a fresh draw (drawing tens of millions of numbers per
  candidate was a third of a default search's time).
* :class:`ZenModules` — block modules kept by (block spec, input shape) and reused by every later
  candidate that has the block (building modules was another third), each with the list of what
  Zen's initialisation touches, so that refilling a network walks short lists instead of every
  parameter of every module; the second copy of a network (see ``ZenScore``) is made of *twins*
  that share the first's parameters and have their own BatchNorm statistics, kept with the blocks.
* Pointwise convolutions run as one matrix product over the channels-last activations: PyTorch's
  one-thread path for a 1×1 convolution on fewer than 16 images multiplies image by image, reading
  the weights once per image — at 64 px the last stages' maps are 2×2, so that was weight traffic
  (~20% of Zen's forward time). The same numbers up to float rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from nas.model import Net

#: Gaussian draws per chunk of the pool (4 Mi floats, 16 MiB); each chunk has its own generator
POOL_CHUNK = 2**22


class GaussianPool:
    """Draws ``offset`` to ``offset + n`` of a seed's Gaussian sequence as views of one buffer.

    The sequence is made of fixed-size chunks, each from its own generator seeded by (seed, chunk
    index), so the values never depend on what was read before. The chunks sit side by side in one
    buffer, so a weight that spans two of them is a view too; the buffer grows by doubling (the old
    one stays alive as long as views of it do)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._buf = torch.empty(0)
        self._filled = 0  # chunks drawn

    def draws(self, offset: int, n: int) -> torch.Tensor:
        """The ``n`` draws from ``offset`` (a view: do not modify)."""
        self._fill_to((offset + n - 1) // POOL_CHUNK + 1)
        return self._buf[offset : offset + n]

    def _fill_to(self, chunks: int) -> None:
        if chunks <= self._filled:
            return
        if chunks * POOL_CHUNK > self._buf.numel():
            grown = torch.empty(max(chunks, 2 * self._filled) * POOL_CHUNK)
            grown[: self._filled * POOL_CHUNK] = self._buf[: self._filled * POOL_CHUNK]
            self._buf = grown
        for k in range(self._filled, chunks):
            seed = int(np.random.SeedSequence([self.seed, k]).generate_state(1)[0])
            gen = torch.Generator().manual_seed(seed)
            torch.randn(POOL_CHUNK, generator=gen, out=self._buf[k * POOL_CHUNK : (k + 1) * POOL_CHUNK])
        self._filled = chunks


class _PointwiseGemm(nn.Conv2d):
    """A 1×1, stride-1, ungrouped convolution computed as ``x·Wᵀ`` over channels-last pixels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.view(self.out_channels, self.in_channels)
        return nn.functional.linear(x.permute(0, 2, 3, 1), w, self.bias).permute(0, 3, 1, 2)


def _pointwise(m: nn.Module) -> bool:
    return (
        type(m) is nn.Conv2d
        and m.kernel_size == (1, 1)
        and m.stride == (1, 1)
        and m.padding == (0, 0)
        and m.dilation == (1, 1)
        and m.groups == 1
    )


@dataclass
class _Parts:
    """What Zen's initialisation touches in one module tree, in module order."""

    drawn: list[nn.Conv2d | nn.Linear] = field(default_factory=list)  # weights from the pool
    bns: list[nn.BatchNorm2d] = field(default_factory=list)
    on_meta: bool = True  # constant parameters and buffers not yet made real

    @classmethod
    def of(cls, tree: nn.Module) -> _Parts:
        parts = cls()
        for m in tree.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                parts.drawn.append(m)
            elif isinstance(m, nn.BatchNorm2d):
                parts.bns.append(m)
        return parts


def _materialise(tree: nn.Module) -> None:
    """Real tensors for what stays constant: BN scales and layer scales 1 (1e-5 when trained, which
    would hide the residual branches from the proxy), biases 0, buffers allocated."""
    for m in tree.modules():
        drawn = isinstance(m, (nn.Conv2d, nn.Linear))
        for name, p in m._parameters.items():
            if p is not None and p.is_meta and not (drawn and name == "weight"):  # a view of the pool comes
                value = torch.ones(p.shape) if name in ("weight", "gamma") else torch.zeros(p.shape)
                m._parameters[name] = nn.Parameter(value, requires_grad=False)
        for name, b in m._buffers.items():
            if b is not None and b.is_meta:
                m._buffers[name] = torch.empty(b.shape, dtype=b.dtype)


def _twin(module: nn.Module, bns: list[nn.BatchNorm2d]) -> nn.Module:
    """A copy of ``module`` sharing its parameters — the very dicts, so weights given to the module
    later are the twin's too — with buffers of its own; its BatchNorms are appended to ``bns`` in
    module order. Far cheaper than building the module."""
    twin = _shell(module, {k: None if m is None else _twin(m, bns) for k, m in module._modules.items()})
    if isinstance(twin, nn.BatchNorm2d):
        bns.append(twin)
    return twin


def _shell(module: nn.Module, children: dict[str, nn.Module | None]) -> nn.Module:
    """``module`` with other children: its attributes and parameter dict, buffers of its own."""
    shell = object.__new__(type(module))
    shell.__dict__ = dict(module.__dict__)
    shell._buffers = {k: None if b is None else torch.empty(b.shape, dtype=b.dtype) for k, b in module._buffers.items()}
    shell._modules = children
    return shell


class ZenModules:
    """Block modules by (block spec, input shape), kept across candidates, and the filling of a
    network with Zen's initialisation (conv/linear weights from a :class:`GaussianPool`, biases 0,
    BN affine (1, 0) with fresh running statistics, layer scales 1)."""

    def __init__(self) -> None:
        self._kept: dict[tuple[object, object], list[nn.Module]] = {}
        self._parts: dict[int, _Parts] = {}  # id of a kept module → its parts
        self._twins: dict[int, tuple[nn.Module, list[nn.BatchNorm2d]]] = {}  # id of a kept module → its twin

    def builder(self) -> Callable[[Any, Any], nn.Module]:
        """A block builder for one network (``Net(..., block_builder=...)`` under the meta device):
        the k-th request of a (spec, shape) gets the k-th module kept for it, built the first time,
        so no module appears twice in one network."""
        from nas.model import build_block

        taken: dict[tuple[object, object], int] = {}

        def build(spec: Any, inp: Any) -> nn.Module:
            key = (spec, inp)
            k = taken[key] = taken.get(key, -1) + 1
            kept = self._kept.setdefault(key, [])
            if k == len(kept):
                module = build_block(spec, inp)
                for m in module.modules():
                    if _pointwise(m):
                        m.__class__ = _PointwiseGemm
                kept.append(module)
                self._parts[id(module)] = _Parts.of(module)
            return kept[k]

        return build

    def head_builder(self) -> Callable[[Any, int, int, float], nn.Module]:
        """A head builder for one network: the head kept for (spec, channels, classes), built the first
        time (Zen reads the features before the head; its weights come after every block's)."""
        from nas.model.blocks import Head

        def build(spec: Any, channels: int, classes: int, dropout: float) -> nn.Module:
            key = ((spec, classes, dropout), channels)
            kept = self._kept.setdefault(key, [])
            if not kept:
                kept.append(Head(spec, channels, classes, dropout))
                self._parts[id(kept[0])] = _Parts.of(kept[0])
            return kept[0]

        return build

    def fill(self, net: Net, pool: GaussianPool) -> list[nn.BatchNorm2d]:
        """Initialise ``net``: its conv/linear weights are the pool's draws in module order, its
        BatchNorms get fresh statistics and momentum 0.1. Returns its BatchNorms in module order."""
        bns: list[nn.BatchNorm2d] = []
        offset = 0
        for tree in (net.stem, *net.blocks, net.head):
            parts = self._parts.get(id(tree)) or _Parts.of(tree)
            if parts.on_meta:
                _materialise(tree)
                parts.on_meta = False
            for m in parts.drawn:
                value = pool.draws(offset, m.weight.numel()).view(m.weight.shape)
                offset += m.weight.numel()
                m._parameters["weight"] = nn.Parameter(value, requires_grad=False)
            bns += parts.bns
        _fresh(bns, momentum=0.1)
        return bns

    def twin(self, net: Net) -> tuple[Net, list[nn.BatchNorm2d]]:
        """A second copy of a filled network: the same parameters, BatchNorms of its own with fresh
        statistics and momentum 1. Returns it and its BatchNorms in module order. A kept block's
        twin is kept with it (it shares the block's parameter dicts, so it follows every refill)."""
        bns: list[nn.BatchNorm2d] = []

        def of(tree: nn.Module) -> nn.Module:
            if id(tree) in self._twins:
                copy, tree_bns = self._twins[id(tree)]
            else:
                tree_bns = []
                copy = _twin(tree, tree_bns)
                if id(tree) in self._parts:
                    self._twins[id(tree)] = (copy, tree_bns)
            bns.extend(tree_bns)
            return copy

        stem = of(net.stem)
        blocks = _shell(net.blocks, {k: of(b) for k, b in net.blocks._modules.items() if b is not None})
        second = _shell(net, {"stem": stem, "blocks": blocks, "head": of(net.head)})
        _fresh(bns, momentum=1.0)
        return second, bns  # type: ignore[return-value]


def _fresh(bns: list[nn.BatchNorm2d], momentum: float) -> None:
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = momentum


__all__ = ["POOL_CHUNK", "GaussianPool", "ZenModules"]
