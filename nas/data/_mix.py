"""Several distillation stores mixed by ratio (the paper's D1+D2+D3 at 1:1:2), and ``STORE[:RATIO]`` arguments.

One epoch of a mix is as many examples as its stores hold together (so a mix of stores reads like
their union, and an epoch count means the same as on a single store). Every batch takes from each
store its share of the batch (ratio / sum of ratios, apportioned so that the shares are exact over
the epoch and within one example in every batch). A store whose share of the epoch exceeds its size
is read again in a new order once exhausted; a store with a smaller share is only partly read, a
different part each epoch (each store's order is drawn from the epoch seed).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.data._load import open_store
from nas.data._source import Batch, TrainSource
from nas.data._store import DistillStore, StoreError, seeded_rng
from nas.errors import NasError
from nas.inputs import check_finite


def parse_store_arg(text: str, name: str = "--distill") -> tuple[Path, float]:
    """``"STORE"`` or ``"STORE:RATIO"`` → (path, ratio); a bare path means ratio 1. The ratio must be a
    finite number > 0. A path that itself contains ':' is taken whole when it exists as given."""
    if not text.strip():
        raise StoreError(f"{name}: empty value (expected STORE or STORE:RATIO)")
    whole = Path(text).expanduser()
    if whole.exists() or ":" not in text:
        return whole, 1.0
    path, _, tail = text.rpartition(":")
    try:
        ratio = float(tail)
    except ValueError:
        raise StoreError(
            f"{name} {text}: no such store, and {tail!r} after the last ':' is not a ratio (STORE[:RATIO], RATIO > 0)"
        ) from None
    check_finite(ratio, f"{name} {text}: the ratio", lo=0, lo_open=True)
    if not path:
        raise StoreError(f"{name} {text}: no store path before ':'")
    return Path(path).expanduser(), ratio


def _apportion(batch_size: int, weights: np.ndarray, carry: np.ndarray) -> np.ndarray:
    """Examples per store in one batch: ``batch_size * weights`` plus what earlier batches owe, rounded
    down, the remaining places to the largest remainders; ``carry`` is updated in place."""
    quota = batch_size * weights + carry
    n = np.floor(quota).astype(np.int64)
    short = batch_size - int(n.sum())
    if short > 0:
        n[np.argsort(-(quota - n), kind="stable")[:short]] += 1
    carry[:] = quota - n
    return n


class _Reader:
    """Exact counts of examples from one store's stream, re-reading it in a new order when exhausted."""

    def __init__(self, store: DistillStore, seed: int, salt: int, rank: int, world: int):
        self.store, self.seed, self.salt, self.rank, self.world = store, seed, salt, rank, world
        self.cycle = 0
        self.read = 0  # examples read in the current cycle
        self.chunks: Iterator[tuple[torch.Tensor, ...]] = iter(())
        self.held: list[tuple[torch.Tensor, ...]] = []
        self.have = 0

    def take(self, n: int) -> tuple[torch.Tensor, ...]:
        while self.have < n:
            c = next(self.chunks, None)
            if c is None:
                if self.cycle and not self.read:
                    raise StoreError(
                        f"{self.store.path}: {self.store.examples} examples cannot be shared by {self.world} processes"
                    )
                self.read = 0
                self.chunks = self.store.stream(
                    int(seeded_rng(self.seed, self.salt, self.cycle).integers(2**62)), rank=self.rank, world=self.world
                )
                self.cycle += 1
                continue
            self.held.append(c)
            self.have += len(c[1])
            self.read += len(c[1])
        x, y, p = (torch.cat([h[i] for h in self.held]) for i in range(3))
        self.held = [(x[n:], y[n:], p[n:])]
        self.have -= n
        return x[:n], y[:n], p[:n]


class MixedSource:
    """A :class:`~nas.data.TrainSource` over several stores mixed by ratio (see the module docstring).

    ``mean``/``std`` are the statistics of the mixture (each store's source statistics weighted by its
    share), which is what the student is normalised with and deployment must apply.
    """

    def __init__(self, stores: Sequence[tuple[DistillStore, float]]):
        self.stores = [s for s, _ in stores]
        r = np.array([w for _, w in stores], dtype=np.float64)
        self.ratios = r
        self.weights = r / r.sum()
        first = self.stores[0]
        for s in self.stores[1:]:
            if s.classes != first.classes:
                raise StoreError(
                    f"{s.path}: its classes differ from {first.path}'s; stores in a mix must share classes"
                )
            if s.resolution != first.resolution:
                raise StoreError(
                    f"{s.path}: {s.resolution} px images, {first.path} has {first.resolution} px; "
                    "stores in a mix must share the resolution"
                )
        m = np.array([s.mean for s in self.stores])
        sd = np.array([s.std for s in self.stores])
        mean = self.weights @ m
        var = self.weights @ (sd**2 + m**2) - mean**2
        self._mean = tuple(float(v) for v in mean)
        self._std = tuple(float(v) for v in np.sqrt(np.maximum(var, 1e-6)))

    @property
    def classes(self) -> tuple[str, ...]:
        return self.stores[0].classes

    @property
    def resolution(self) -> int:
        return self.stores[0].resolution

    @property
    def mean(self) -> tuple[float, float, float]:
        return self._mean  # type: ignore[return-value]

    @property
    def std(self) -> tuple[float, float, float]:
        return self._std  # type: ignore[return-value]

    def train_size(self) -> int:
        return sum(s.train_size() for s in self.stores)

    def epoch_batches(self, seed: int, batch_size: int, *, rank: int = 0, world: int = 1) -> Iterator[Batch]:
        if batch_size < 1:
            raise StoreError(f"batch size must be at least 1 (got {batch_size})")
        readers = [_Reader(s, seed, i, rank, world) for i, s in enumerate(self.stores)]
        carry = np.zeros(len(readers))
        g = torch.Generator().manual_seed(int(seeded_rng(seed, 0x313).integers(2**62)))
        for _ in range(self.train_size() // world // batch_size):
            counts = _apportion(batch_size, self.weights, carry)
            parts = [r.take(int(n)) for r, n in zip(readers, counts) if n]
            x, y, p = (torch.cat([pt[i] for pt in parts]) for i in range(3))
            perm = torch.randperm(batch_size, generator=g)
            yield Batch(x[perm].float().div_(255.0), y[perm], p[perm])

    def identity(self) -> dict[str, Any]:
        return {
            "kind": "distill-mix",
            "stores": [{"ratio": float(r), **s.identity()} for s, r in zip(self.stores, self.ratios)],
        }

    def describe(self) -> str:
        parts = ", ".join(f"{s.path} ({w:.3g})" for s, w in zip(self.stores, self.weights))
        return f"mix of {len(self.stores)} distillation stores: {parts}; {self.train_size()} examples per epoch"


def mix_stores(stores: Sequence[tuple[str | Path | DistillStore, float]]) -> TrainSource:
    """One :class:`~nas.data.TrainSource` over ``[(store or its path, ratio), ...]`` (ratios finite, > 0):
    the store itself when there is one, else a :class:`MixedSource`."""
    if not stores:
        raise StoreError("no distillation store given")
    opened: list[tuple[DistillStore, float]] = []
    for s, r in stores:
        ratio = check_finite(
            r, f"ratio of store {s if not isinstance(s, DistillStore) else s.path}", lo=0, lo_open=True
        )
        opened.append((s if isinstance(s, DistillStore) else open_store(s), ratio))
    if len(opened) == 1:
        return opened[0][0]
    return MixedSource(opened)


def open_distill_stores(
    args: Sequence[str], resolution: int | None = None, name: str = "--distill"
) -> tuple[TrainSource, Any, dict[str, Any]]:
    """``STORE[:RATIO]`` values → (the stores mixed by ratio, the first store's source data for held-out
    evaluation, the data record a training keeps). A ``resolution`` other than the stores' is an error."""
    parsed = [parse_store_arg(a, name) for a in args]
    stores = [(open_store(p), r) for p, r in parsed]
    source = mix_stores(stores)
    if resolution is not None and resolution != source.resolution:
        raise NasError(f"--resolution {resolution}: the stores hold {source.resolution}-px images; drop --resolution")
    # The spec is constant: a store is identified by its shards' hashes (source.identity()), not where it lies.
    first = stores[0][0]
    src = first.data_info  # held-out split of the first store's source data
    info = {
        "spec": "distill",
        "stores": [{"path": str(Path(p).resolve()), "ratio": r} for p, r in parsed],
        "val_fraction": src["val_fraction"],
        "split_seed": src["split_seed"],
    }
    return source, first.source_data(), info


def data_record(spec: str) -> str:
    """A ``--data`` value as a run records it: ``builtin`` specs as given, paths made absolute."""
    return spec if spec.strip().startswith("builtin") else str(Path(spec).expanduser().resolve())
