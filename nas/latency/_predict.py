"""Latency prediction from a table: sum of the layers' entries (for measured tables: measured minus
the per-call cost, times the calibrated context scale), plus the per-inference overhead and the cache
term (weights that no longer fit the last-level cache).

Two paths: :meth:`Predictor.predict_archs` looks each architecture's layer keys up (any spec), and
:meth:`Predictor.predict_encoded` works on a search space's integer encodings — one lookup table
per slot of the space, a gather and a sum over slots for all architectures at once.

A key missing from the table is a :class:`NasError` naming the key and the command that builds it;
with ``fallback="roofline"`` the target's device model estimates it instead, and the prediction
says so. A prediction is never 0 ms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nas.errors import NasError
from nas.latency._catalog import Device, unsupported_in
from nas.latency._keys import key_features, key_ops, key_weight_bytes
from nas.latency._roofline import layer_ms
from nas.latency._table import LatencyTable, build_hint
from nas.spec import ArchSpec, arch_keys

if TYPE_CHECKING:
    from nas.space import SearchSpace

FALLBACKS: tuple[str, ...] = ("roofline",)
#: Floor of any prediction: a calibrated overhead can be negative (a layer timed alone pays its own
#: call), but a model never takes 0 ms.
MIN_MS = 1e-3


_FEATURE_NAMES = {"attention": "attention (MQA/MHSA)", "gelu": "GELU"}


def check_supported(device: Device | None, keys: Sequence[str], what: str = "this model") -> None:
    """Raise when ``device`` cannot run a feature (attention, GELU) used by ``keys``."""
    if device is None or not device.unsupported:
        return
    found: dict[str, str] = {}
    for key in keys:
        for feat in unsupported_in(device, key_features(key)):
            found.setdefault(feat, key)
    if found:
        names = " and ".join(_FEATURE_NAMES.get(f, f) for f in found)
        examples = ", ".join(found.values())
        raise NasError(
            f"target {device.name} cannot run {names}, which {what} uses (e.g. {examples}); "
            "hybrid models do not run there: pick a conv-only model or another target"
        )


@dataclass
class Prediction:
    """Predicted latencies with their provenance."""

    latency_ms: np.ndarray
    source: str  # the table's source, "+roofline-fallback" when some entries were estimated
    estimated_keys: list[str] = field(default_factory=list)


class Predictor:
    """Predicts whole-model latencies of one target from its table."""

    def __init__(self, table: LatencyTable, device: Device | None = None, fallback: str | None = None):
        if fallback is not None and fallback not in FALLBACKS:
            raise NasError(f"fallback must be one of {', '.join(FALLBACKS)} (got {fallback!r})")
        if fallback is not None and device is None:
            raise NasError("a roofline fallback needs the target's catalog entry")
        self.table = table
        self.device = device
        self.fallback = fallback
        self._entries = dict(table.entry_ms)
        self._weights = dict(table.weight_bytes)
        self._estimated: dict[str, float] = {}
        self._space_luts: dict[int, tuple[SearchSpace, _SlotLUT]] = {}

    @property
    def target(self) -> str:
        """Target name."""
        return self.table.target

    def _missing(self, key: str) -> float:
        if self.fallback is None:
            raise NasError(
                f"latency table {self.target} ({self.table.source}) has no entry for {key}; add it with "
                f"`{build_hint(self.target, self.table.source)}`, or pass --fallback roofline for an estimate"
            )
        assert self.device is not None
        ms = self._estimated.get(key)
        if ms is None:
            ms = max(layer_ms(self.device.model, key_ops(key), self.device.dtype), 1e-4)
            self._estimated[key] = ms
        return ms

    def entry(self, key: str) -> tuple[float, int, bool]:
        """(contribution ms, weight bytes, estimated?) of one layer key."""
        ms = self._entries.get(key)
        if ms is not None:
            return ms, self._weights[key], False
        ms = self._missing(key)
        return ms, key_weight_bytes(key, self.table.dtype), True

    def predict_keys(self, keys: Sequence[str]) -> tuple[float, list[str]]:
        """Latency (ms) of a model given its layer keys, and the keys that were estimated."""
        check_supported(self.device, keys)
        total, weights, estimated = 0.0, 0, []
        for k in keys:
            ms, w, est = self.entry(k)
            total += ms
            weights += w
            if est:
                estimated.append(k)
        total += self.table.overhead_ms + float(self.table.cache_ms(float(weights)))
        return max(total, MIN_MS), estimated

    def predict_archs(self, archs: Sequence[ArchSpec]) -> Prediction:
        """Latencies of architectures (ms), by key lookup."""
        out = np.empty(len(archs), dtype=np.float64)
        estimated: dict[str, None] = {}
        for i, arch in enumerate(archs):
            out[i], est = self.predict_keys(arch_keys(arch))
            estimated.update(dict.fromkeys(est))
        return Prediction(out, self._source(bool(estimated)), list(estimated))

    def _source(self, estimated: bool) -> str:
        return self.table.source + ("+roofline-fallback" if estimated else "")

    def predict_encoded(self, space: SearchSpace, encodings: np.ndarray) -> Prediction:
        """Latencies (ms) of a search space's encoded architectures (rows of ``encodings``)."""
        entry = self._space_luts.get(id(space))
        if entry is None or entry[0] is not space:
            entry = (space, _SlotLUT(self, space))
            self._space_luts[id(space)] = entry
        lut = entry[1]
        return Prediction(lut(np.asarray(encodings)), self._source(bool(lut.estimated)), list(lut.estimated))


class _SlotLUT:
    """Per-slot lookup tables over the mixed-radix index of the slot's decisions."""

    def __init__(self, predictor: Predictor, space: SearchSpace):
        from nas.latency._keys import import_space

        slots = import_space().slots(space)
        self.deps: list[np.ndarray] = []
        self.strides: list[np.ndarray] = []
        self.ms: list[np.ndarray] = []
        self.w: list[np.ndarray] = []
        self.keys: list[list[str | None]] = []
        self.estimated: list[str] = []
        self.fixed_ms = predictor.table.overhead_ms
        self.fixed_w = 0.0
        self.table = predictor.table
        self.predictor = predictor
        self.max_dep = -1
        for slot in slots:
            radices = tuple(int(r) for r in slot.radices)
            deps = tuple(int(d) for d in slot.deps)
            size = int(np.prod(radices)) if radices else 1
            ms = np.zeros(size)
            w = np.zeros(size)
            keys: list[str | None] = [None] * size
            for flat, values in enumerate(np.ndindex(*radices) if radices else [()]):
                key = slot.key_for(tuple(int(v) for v in values))
                keys[flat] = key
                if key is None:
                    continue
                check_supported(predictor.device, [key], "this search space")
                if key in predictor._entries:
                    ms[flat], w[flat] = predictor._entries[key], predictor._weights[key]
                elif predictor.fallback is None:
                    ms[flat] = np.nan  # reported (with the key) only if an architecture uses it
                else:
                    ms[flat] = predictor._missing(key)
                    w[flat] = key_weight_bytes(key, predictor.table.dtype)
                    self.estimated.append(key)
            if not deps:
                # Stem/head: every architecture has it; fold into the constant.
                if np.isnan(ms[0]):
                    predictor._missing(str(keys[0]))
                self.fixed_ms += ms[0]
                self.fixed_w += w[0]
                continue
            # Row-major mixed radix, the order np.ndindex enumerates.
            strides = np.ones(len(radices), dtype=np.int64)
            for j in range(len(radices) - 2, -1, -1):
                strides[j] = strides[j + 1] * radices[j + 1]
            self.deps.append(np.asarray(deps, dtype=np.int64))
            self.strides.append(strides)
            self.ms.append(ms)
            self.w.append(w)
            self.keys.append(keys)
            self.max_dep = max(self.max_dep, max(deps))
        self.cache = self.table.cache_ms_per_mib != 0 and np.isfinite(self.table.cache_mib)

    def __call__(self, enc: np.ndarray) -> np.ndarray:
        if enc.ndim != 2 or enc.shape[1] <= self.max_dep:
            raise NasError(f"encodings must be a 2-D array with at least {self.max_dep + 1} columns (got {enc.shape})")
        # One transposed int32 copy makes every decision a contiguous row: the gathers below then run
        # ~2.5x faster than fancy-indexing the (n, d) matrix slot by slot.
        cols = np.ascontiguousarray(enc.T, dtype=np.int32)
        total = np.full(enc.shape[0], self.fixed_ms)
        weights = np.full(enc.shape[0], self.fixed_w) if self.cache else None
        for s, (deps, strides, ms) in enumerate(zip(self.deps, self.strides, self.ms)):
            idx = self._index(cols, deps, strides)
            total += ms.take(idx)
            if weights is not None:
                weights += self.w[s].take(idx)
        if np.isnan(total).any():
            self._raise_missing(cols)
        if weights is not None:
            total += self.table.cache_ms(weights)
        return np.maximum(total, MIN_MS)

    @staticmethod
    def _index(cols: np.ndarray, deps: np.ndarray, strides: np.ndarray) -> np.ndarray:
        if len(deps) == 1:
            return cols[deps[0]]
        idx = cols[deps[0]] * np.int32(strides[0])
        for d, st in zip(deps[1:], strides[1:]):
            idx += cols[d] * np.int32(st)
        return idx

    def _raise_missing(self, cols: np.ndarray) -> None:
        for deps, strides, ms, keys in zip(self.deps, self.strides, self.ms, self.keys):
            idx = self._index(cols, deps, strides)
            bad = np.isnan(ms.take(idx))
            if bad.any():
                self.predictor._missing(str(keys[int(idx[bad][0])]))
        raise AssertionError("unreachable: NaN without a missing key")  # pragma: no cover


def load_predictor(target: str, tables_dir: Path | None = None, fallback: str | None = None) -> Predictor:
    """The predictor of a catalog target (its table and device entry)."""
    from nas.latency._catalog import load_catalog
    from nas.latency._store import load_table

    catalog = load_catalog(tables_dir)
    device = catalog.get(target)
    if device is None and fallback is not None:
        raise NasError(f"unknown target {target!r} (known: {', '.join(catalog)}); the roofline fallback needs it")
    return Predictor(load_table(target, tables_dir), device, fallback)


def predict(
    archs: Sequence[ArchSpec] | np.ndarray,
    target: str,
    *,
    space: SearchSpace | None = None,
    fallback: str | None = None,
    tables_dir: Path | None = None,
) -> np.ndarray:
    """Predicted latency (ms) of each architecture on ``target``.

    ``archs`` is a sequence of :class:`ArchSpec`, or an integer array of encodings of ``space``
    (the fast path: millions of architectures per second).
    """
    predictor = load_predictor(target, tables_dir, fallback)
    if isinstance(archs, np.ndarray):
        if space is None:
            raise NasError("predicting encoded architectures needs their search space (space=...)")
        return predictor.predict_encoded(space, archs).latency_ms
    return predictor.predict_archs(list(archs)).latency_ms


__all__ = ["FALLBACKS", "Prediction", "Predictor", "check_supported", "load_predictor", "predict"]
