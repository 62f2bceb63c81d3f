"""Networks with Zen-score's initialisation, built fast for many candidates in a row.

* :class:`GaussianPool` — one seeded sequence of N(0, 1) draws that every candidate reads from its
  start: a weight is a *view* of it, never a fresh draw (drawing tens of millions of numbers per
  candidate was a third of a default search's time).
* :class:`ZenModules` — block modules kept by (block spec, input shape) and reused by every later
  candidate that has the block (building modules was another third), each with the list of what
  Zen's initialisation touches, so that refilling a network walks short lists instead of every
  parameter of every module.
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


class ZenModules:
    """Block modules by (block spec, input shape), kept across candidates, and the filling of a
    network with Zen's initialisation (conv/linear weights from a :class:`GaussianPool`, biases 0,
    BN affine (1, 0) with fresh running statistics, layer scales 1)."""

    def __init__(self) -> None:
        self._kept: dict[tuple[object, object], list[nn.Module]] = {}
        self._parts: dict[int, _Parts] = {}  # id of a kept module → its parts

    def builder(self) -> Callable[[Any, Any], nn.Module]:
        """A block builder for one candidate (``Net(..., block_builder=...)`` under the meta device):
        the k-th request of a (spec, shape) gets the k-th module kept for it, built the first time,
        so no module appears twice in what one builder builds."""
        from nas.model import build_block

        taken: dict[tuple[object, object], int] = {}

        def build(spec: Any, inp: Any) -> nn.Module:
            key = (spec, inp)
            k = taken[key] = taken.get(key, -1) + 1
            kept = self._kept.setdefault(key, [])
            if k == len(kept):
                kept.append(build_block(spec, inp))
                self._parts[id(kept[k])] = _Parts.of(kept[k])
            return kept[k]

        return build

    def fill(
        self, net: Net, pool: GaussianPool | None, weights: list[torch.Tensor] | None, momentum: float
    ) -> list[torch.Tensor]:
        """Initialise ``net``: its conv/linear weights are the pool's draws in module order (or
        ``weights``, another copy's), its BatchNorms get fresh statistics and ``momentum``. Returns
        the weights used."""
        used: list[torch.Tensor] = []
        offset = 0
        for tree in (net.stem, *net.blocks, net.head):
            parts = self._parts.get(id(tree)) or _Parts.of(tree)  # the head is built anew each time
            if parts.on_meta:
                _materialise(tree)
                parts.on_meta = False
            for m in parts.drawn:
                if weights is None:
                    assert pool is not None
                    value = pool.draws(offset, m.weight.numel()).view(m.weight.shape)
                    offset += m.weight.numel()
                else:
                    value = weights[len(used)]
                used.append(value)
                m._parameters["weight"] = nn.Parameter(value, requires_grad=False)
            for bn in parts.bns:
                bn.reset_running_stats()
                bn.momentum = momentum
        return used

    def bns(self, net: Net) -> list[nn.BatchNorm2d]:
        """``net``'s BatchNorms in module order."""
        return [
            bn
            for tree in (net.stem, *net.blocks, net.head)
            for bn in (self._parts.get(id(tree)) or _Parts.of(tree)).bns
        ]


__all__ = ["POOL_CHUNK", "GaussianPool", "ZenModules"]
