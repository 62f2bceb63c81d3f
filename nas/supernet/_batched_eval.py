"""Held-out accuracy of many subnets of one supernet at once: what :func:`subnet_accuracy` measures,
computed with less work.

Per member the measurement is unchanged: its layers inherit the supernet's weights, every BatchNorm's
statistics are re-estimated (cumulative average, batch statistics in training mode) on the same fixed
calibration batches, then top-1 accuracy is counted on the held-out split. Three things make it
cheaper:

* **Shared prefixes.** A group of members is laid out as a prefix tree of their layers (storage
  position, block, input shape). Members that agree on their first k layers compute identical
  activations — in the calibration pass (training-mode BatchNorm depends only on the batch and the
  layers before) and in the evaluation pass (their recalibrated statistics are identical too) — so
  each tree node runs once per batch for all the members below it.
* **The layers every member has** (the stem and any fixed blocks before the first searchable stage)
  are recalibrated once per scorer, and their outputs on the calibration and held-out batches are kept
  (up to ``cache_bytes``): later groups start from them.
* **Channels-last tensors** (``channels_last=True``): PyTorch's CPU convolutions and BatchNorm run
  2-3x faster on NHWC than on NCHW here. This changes floating-point rounding only.
* **BatchNorm folded for the evaluation** (``fold_bn=True``): once recalibrated, every conv → BN pair
  becomes one conv with a bias (the same affine map; rounding only), one pass less per layer.

Layers are extracted one by one (:meth:`Supernet.extract_layer`, no random init of a throw-away
model), ReLUs after a BatchNorm run in place (no new tensor: about a sixth less time here), and a leaf
layer without BatchNorm (a head of pool + classifier) is not run during calibration, whose logits
nobody reads.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from nas.data import Dataset, batches
from nas.model.blocks import ConvBNAct
from nas.spec import ArchSpec, BlockSpec, Shape, block_key
from nas.supernet._supernet import Supernet

#: Members whose layers are held in memory together (their prefix tree); bounds the extracted weights.
GROUP = 32
#: Held-out images per evaluation batch (as :func:`nas.supernet._evaluate.accuracy`).
EVAL_BATCH = 500
#: Largest total size of the kept outputs of the layers every member shares (calibration + held-out).
CACHE_BYTES = 1 << 30


@dataclass(eq=False)
class _Node:
    """One layer of one or more members: its module, the layers after it, the members it ends."""

    module: nn.Module
    bns: list[nn.modules.batchnorm._BatchNorm]
    children: dict[tuple[str, str], _Node] = field(default_factory=dict)
    ends: list[int] = field(default_factory=list)  # member indices whose logits this node outputs
    calibrate: bool = True  # whether any BatchNorm sits in this node or below it


def _bns(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _fold(module: nn.Module, channels_last: bool) -> None:
    """Fold every conv → BatchNorm pair of ``module`` (evaluation mode) into one conv with a bias."""
    for m in module.modules():
        if isinstance(m, ConvBNAct) and isinstance(m.bn, nn.BatchNorm2d):
            conv = fuse_conv_bn_eval(m.conv, m.bn)
            # torch's stub of Module.to lacks its memory_format keyword
            m.conv = conv.to(memory_format=torch.channels_last) if channels_last else conv  # type: ignore[call-overload]
            m.bn = nn.Identity()


def _reset(bns: list[nn.modules.batchnorm._BatchNorm]) -> None:
    """Fresh statistics, cumulative average (what :func:`nas.model.recalibrate_bn` does)."""
    for m in bns:
        m.reset_running_stats()
        m.momentum = None


class SubnetScorer:
    """Held-out accuracy (fraction in [0, 1]) of subnets of ``supernet``, BatchNorm recalibrated on
    ``calib`` (see the module docstring). Call it with a list of members; the order is kept."""

    def __init__(
        self,
        supernet: Supernet,
        data: Dataset,
        calib: Sequence[torch.Tensor],
        device: str | torch.device = "cpu",
        *,
        channels_last: bool = True,
        fold_bn: bool = True,
        group: int = GROUP,
        eval_batch: int = EVAL_BATCH,
        cache_bytes: int = CACHE_BYTES,
    ) -> None:
        self.supernet, self.data, self.device = supernet, data, device
        self.channels_last, self.fold_bn, self.group = channels_last, fold_bn, group
        self.eval_batch, self.cache_bytes = eval_batch, cache_bytes
        self.calib = [self._layout(x) for x in calib]
        self._n_val = len(data.val_y)
        self._prefix: list[_Node] | None = None
        self._kept: dict[str, list[torch.Tensor]] | None = None

    # -- tensors and modules ------------------------------------------------------------------

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def _node(self, key: str, spec: BlockSpec | None, inp: Shape) -> _Node:
        mod = self.supernet.extract_layer(key, spec, inp).to(self.device)
        if self.channels_last:
            # torch's stub of Module.to lacks its memory_format keyword
            mod = mod.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        for m in mod.modules():
            # The activation's input is its BatchNorm's (or folded conv's) fresh output, read by nothing else
            if isinstance(m, ConvBNAct) and isinstance(m.act, (nn.ReLU, nn.ReLU6)):
                m.act.inplace = True
        return _Node(mod, _bns(mod))

    def _val_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in batches(self.data, "val", self.eval_batch):
            yield self._layout(x), y.to(self.device)

    # -- the layers every member shares -------------------------------------------------------

    def _shared_steps(self) -> int:
        """How many leading layers of every member are the same: the stem and the fixed blocks
        before the first searchable stage."""
        n = 1
        for st in self.supernet.space.stages:
            if st.constant_blocks is None:
                break
            n += len(st.constant_blocks)
        return n

    @torch.no_grad()
    def _build_prefix(self, arch: ArchSpec) -> None:
        _, steps = self.supernet.layout(arch)
        self._prefix = [self._node(s.key, s.spec, s.inp) for s in steps[: self._shared_steps()]]
        bns = [b for n in self._prefix for b in n.bns]
        _reset(bns)
        calib_out, val_out = [], []
        for n in self._prefix:
            n.module.train()
        for x in self.calib:
            calib_out.append(self._run_prefix(x))
        for n in self._prefix:
            n.module.eval()
        for m in bns:
            m.momentum = 0.0  # frozen from now on, also when the prefix runs again in training mode
        labels = []
        for x, y in self._val_batches():
            val_out.append(self._run_prefix(x))
            labels.append(y)
        size = sum(t.numel() * t.element_size() for t in calib_out + val_out)
        self._kept = {"calib": calib_out, "val": val_out, "labels": labels} if size <= self.cache_bytes else None

    def _run_prefix(self, x: torch.Tensor) -> torch.Tensor:
        assert self._prefix is not None
        for n in self._prefix:
            x = n.module(x)
        return x

    def _prefix_calib(self) -> Iterator[torch.Tensor]:
        """Outputs of the shared layers on the calibration batches (training mode: batch statistics)."""
        if self._kept is not None:
            yield from self._kept["calib"]
            return
        assert self._prefix is not None
        for n in self._prefix:
            n.module.train()
        try:
            for x in self.calib:
                yield self._run_prefix(x)
        finally:
            for n in self._prefix:
                n.module.eval()

    def _prefix_val(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(outputs of the shared layers, labels) of the held-out batches (evaluation mode)."""
        if self._kept is not None:
            yield from zip(self._kept["val"], self._kept["labels"], strict=True)
            return
        for x, y in self._val_batches():
            yield self._run_prefix(x), y

    # -- groups of members --------------------------------------------------------------------

    def _tree(self, archs: Sequence[ArchSpec]) -> _Tree:
        """Prefix tree of the members' layers after the shared ones (extracts every node's module)."""
        tree = _Tree(len(archs))
        skip = self._shared_steps()
        for i, arch in enumerate(archs):
            _, steps = self.supernet.layout(arch)
            path: list[tuple[str, BlockSpec | None, Shape]] = [(s.key, s.spec, s.inp) for s in steps[skip:]]
            path.append(("head", None, Shape(1, 1, self.supernet.normalize(arch).body_out_shape.c)))
            level, node = tree.roots, None
            for key, spec, inp in path:
                ident = (key, block_key(spec, inp) if spec is not None else str(inp))
                node = level.get(ident)
                if node is None:
                    node = level[ident] = self._node(key, spec, inp)
                    tree.nodes.append(node)
                level = node.children
            assert node is not None
            node.ends.append(i)
        for n in reversed(tree.nodes):  # a node's children were created after it
            n.calibrate = bool(n.bns) or any(c.calibrate for c in n.children.values())
        return tree

    def _calibrate(self, level: dict[tuple[str, str], _Node], x: torch.Tensor) -> None:
        for n in level.values():
            if n.calibrate:
                self._calibrate(n.children, n.module(x))

    def _count(
        self, level: dict[tuple[str, str], _Node], x: torch.Tensor, y: torch.Tensor, correct: np.ndarray
    ) -> None:
        for n in level.values():
            out = n.module(x)
            if n.ends:
                correct[n.ends] += int((out.argmax(1) == y).sum())
            self._count(n.children, out, y, correct)

    @torch.no_grad()
    def _run(self, tree: _Tree) -> np.ndarray:
        """Recalibrate every node of ``tree``, then count each member's correct held-out predictions."""
        _reset([b for n in tree.nodes for b in n.bns])
        for n in tree.nodes:
            n.module.train()
        for x in self._prefix_calib():
            self._calibrate(tree.roots, x)
        for n in tree.nodes:
            n.module.eval()
            if self.fold_bn:
                _fold(n.module, self.channels_last)
        correct = np.zeros(tree.members, dtype=np.int64)
        for x, y in self._prefix_val():
            self._count(tree.roots, x, y, correct)
        return correct / max(1, self._n_val)

    def __call__(self, archs: Sequence[ArchSpec], workers: int = 1) -> np.ndarray:
        """Accuracies of ``archs`` (same order; members given twice are measured once). With
        ``workers > 1``, that many groups are measured at a time in threads of one torch thread each
        (small convolutions scale better across candidates than inside one); the result is the same."""
        out = np.empty(len(archs), dtype=np.float64)
        if not archs:
            return out
        if self._prefix is None:
            self._build_prefix(archs[0])
        first: dict[str, int] = {}
        for i, a in enumerate(archs):
            first.setdefault(self.supernet.normalize(a).arch, i)
        distinct = list(first.values())
        groups = [distinct[s : s + self.group] for s in range(0, len(distinct), self.group)]
        # Without kept prefix outputs every group would switch the shared modules' mode: one at a time.
        workers = max(1, min(workers, len(groups))) if self._kept is not None else 1
        scores: dict[int, float] = {}
        with _single_threaded(workers > 1), ThreadPoolExecutor(workers) as pool:
            run = pool.map if workers > 1 else map
            for w in range(0, len(groups), workers):
                wave = groups[w : w + workers]
                # Extraction touches the supernet's caches: in this thread; the measurement in the pool.
                trees = [self._tree([archs[i] for i in g]) for g in wave]
                for g, accs in zip(wave, run(self._run, trees), strict=True):
                    scores.update(zip(g, map(float, accs), strict=True))
        for i, a in enumerate(archs):
            out[i] = scores[first[self.supernet.normalize(a).arch]]
        return out


@dataclass(eq=False)
class _Tree:
    """The prefix tree of one group of members."""

    members: int
    roots: dict[tuple[str, str], _Node] = field(default_factory=dict)
    nodes: list[_Node] = field(default_factory=list)  # parents before children


@contextmanager
def _single_threaded(on: bool) -> Iterator[None]:
    """One torch thread per worker while ``on`` (several workers each with the full pool would oversubscribe)."""
    old = torch.get_num_threads()
    if on:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


__all__ = [
    "CACHE_BYTES",
    "EVAL_BATCH",
    "GROUP",
    "SubnetScorer",
]
