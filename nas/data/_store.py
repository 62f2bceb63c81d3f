"""Offline distillation stores: augmented copies of a data set with a teacher's probabilities for each.

A store is a folder (written by :func:`nas.train.build_store`, ``mnv4-nas distill-data``)::

    STORE/manifest.json            format tag + version, the settings it was built with (teacher,
                                   source data, augmentation recipe, replicas, seed, shard and batch
                                   size), the finished shards (examples, bytes, sha256), build time
    STORE/shard-00000.safetensors  images   uint8   N×3×R×R  augmented image, as the teacher saw it
                                   probs    float16 N×C      the teacher's probabilities
                                   labels   int64   N        the source image's class
                                   index    int64   N        the source image's training index
                                   replica  int64   N        which augmented copy (0 … replicas-1)

Probabilities are stored as float16: half the bytes of float32, and rounding moves each probability
by at most 0.05 % of itself (a row's sum by at most 5e-4). :class:`DistillStore` yields them as
float32 exactly as stored (not renormalised).

:class:`DistillStore` is a :class:`~nas.data.TrainSource`: it streams shards (at most
``buffer_shards`` + 1 in memory, each opened with ``safetensors.safe_open``), checks each shard the
first time it reads it (sha256, header, shapes, dtypes, finite probability rows summing to ≈ 1) and
never writes to the store.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from nas.data._dataset import DataError, Dataset
from nas.data._source import Batch
from nas.errors import NasError
from nas.inputs import read_json

FORMAT = "mnv4-nas-distill-store"
VERSION = 1
MANIFEST = "manifest.json"
SHARD_KEYS = ("images", "probs", "labels", "index", "replica")
PROBS_DTYPE = torch.float16
#: Largest |row sum - 1| accepted for stored probabilities (float16 rounding stays below 5e-4).
SUM_TOLERANCE = 1e-2
#: Shards shuffled together when a store is read (examples are shuffled within such a group).
BUFFER_SHARDS = 4
_SHARD_RE = re.compile(r"shard-(\d{5,})\.safetensors")


class StoreError(DataError):
    """A missing, incomplete, corrupt or mismatched distillation store (names the store and the field or shard)."""


def shard_name(index: int) -> str:
    """File name of shard ``index``."""
    return f"shard-{index:05d}.safetensors"


def seeded_rng(seed: int, *salt: int) -> np.random.Generator:
    """A numpy generator for ``(seed, *salt)`` (any integers; negative ones are folded into 64 bits)."""
    return np.random.default_rng(np.random.SeedSequence([s % 2**64 for s in (seed, *salt)]))


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(2**20), b""):
            h.update(block)
    return h.hexdigest()


def data_fingerprint(data: Dataset) -> str:
    """sha256 of a data set's training images and labels (a store checks its source is unchanged)."""
    h = hashlib.sha256()
    h.update(data.train_x.contiguous().numpy().tobytes())
    h.update(data.train_y.to(torch.int64).contiguous().numpy().tobytes())
    return h.hexdigest()


def data_identity(data: Dataset, spec: str, val_fraction: float, split_seed: int) -> dict[str, Any]:
    """How a store records the data it was built from (``spec``: the ``--data`` value; a path is made
    absolute) so that its held-out split can be reloaded and a changed source is noticed."""
    if not spec.strip().startswith("builtin"):
        spec = str(Path(spec).expanduser().resolve())
    return {
        "spec": spec,
        "source": data.source,
        "classes": list(data.classes),
        "resolution": data.resolution,
        "mean": list(data.mean),
        "std": list(data.std),
        "val_fraction": val_fraction,
        "split_seed": split_seed,
        "train_images": len(data.train_y),
        "val_images": len(data.val_y),
        "fingerprint": data_fingerprint(data),
    }


# ----------------------------------------------------------------------------------------------
# manifest
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardRecord:
    """A finished shard as the manifest lists it."""

    index: int
    file: str
    examples: int
    bytes: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "index": self.index,
            "file": self.file,
            "examples": self.examples,
            "bytes": self.bytes,
            "sha256": self.sha256,
        }


def _field(d: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    v = d.get(key) if isinstance(d, dict) else None
    if v is None or isinstance(v, bool) and kind is not bool or not isinstance(v, kind):
        name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise StoreError(f"{where}: field {key!r} is missing or not a {name}")
    return v


def _triple(d: dict[str, Any], key: str, where: str, positive: bool) -> tuple[float, float, float]:
    v = _field(d, key, list, where)
    ok = len(v) == 3 and all(isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) for c in v)
    if not ok or positive and min(v) <= 0:
        raise StoreError(f"{where}: field {key!r} must be 3 finite numbers{' > 0' if positive else ''}")
    return (float(v[0]), float(v[1]), float(v[2]))


def _shard_record(d: Any, where: str) -> ShardRecord:
    i = _field(d, "index", int, where)
    rec = ShardRecord(
        i,
        _field(d, "file", str, where),
        _field(d, "examples", int, where),
        _field(d, "bytes", int, where),
        _field(d, "sha256", str, where),
    )
    if rec.file != shard_name(i) or rec.examples < 1 or not re.fullmatch(r"[0-9a-f]{64}", rec.sha256):
        raise StoreError(f"{where}: shard entry {i} is malformed (file {rec.file!r}, {rec.examples} examples)")
    return rec


def read_manifest(folder: Path) -> dict[str, Any]:
    """The parsed manifest of a store folder, its format tag and version checked."""
    path = folder / MANIFEST
    if not path.exists():
        raise StoreError(f"{folder}: not a distillation store (no {MANIFEST}; build one with 'mnv4-nas distill-data')")
    m = read_json(path, "store manifest")
    where = str(path)
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise StoreError(f"{where}: not a distillation store manifest (field 'format' is not {FORMAT!r})")
    version = _field(m, "version", int, where)
    if version != VERSION:
        raise StoreError(f"{where}: store format version {version}; this mnv4-nas reads version {VERSION}")
    _field(m, "settings", dict, where)
    return m


def finished_shards(m: dict[str, Any], where: str) -> dict[int, ShardRecord]:
    """The manifest's finished shards by index (each entry checked)."""
    recs = [_shard_record(d, f"{where}: shards") for d in _field(m, "shards", list, where)]
    out = {r.index: r for r in recs}
    if len(out) != len(recs):
        raise StoreError(f"{where}: field 'shards' lists a shard twice")
    return out


def is_store(path: str | Path) -> bool:
    """Whether ``path`` is a folder holding a distillation store manifest (possibly incomplete or corrupt)."""
    p = Path(path).expanduser() / MANIFEST
    try:
        return p.is_file() and FORMAT.encode() in p.read_bytes()[:4096]
    except OSError:
        return False


# ----------------------------------------------------------------------------------------------
# shards
# ----------------------------------------------------------------------------------------------


def check_shard(
    t: dict[str, torch.Tensor], n: int, num_classes: int, resolution: int, replicas: int, train_images: int, name: str
) -> None:
    """Raise :class:`StoreError` naming ``name`` unless ``t`` holds ``n`` valid examples."""
    want = {
        "images": ((n, 3, resolution, resolution), torch.uint8),
        "probs": ((n, num_classes), PROBS_DTYPE),
        "labels": ((n,), torch.int64),
        "index": ((n,), torch.int64),
        "replica": ((n,), torch.int64),
    }
    if set(t) != set(want):
        raise StoreError(f"{name}: corrupt shard (tensors {sorted(t)}, expected {sorted(want)})")
    for k, (shape, dtype) in want.items():
        if tuple(t[k].shape) != shape or t[k].dtype != dtype:
            raise StoreError(
                f"{name}: corrupt shard ({k} is {t[k].dtype} {tuple(t[k].shape)}, expected {dtype} {shape})"
            )
    p = t["probs"].float()
    if not bool(torch.isfinite(p).all()) or bool((p < 0).any()):
        raise StoreError(f"{name}: corrupt shard (probabilities not finite or negative)")
    dev = float((p.sum(1) - 1).abs().max())
    if dev > SUM_TOLERANCE:
        raise StoreError(f"{name}: corrupt shard (a probability row's sum is {dev:.3g} off 1)")
    for k, hi in (("labels", num_classes), ("replica", replicas), ("index", train_images)):
        if bool((t[k] < 0).any()) or bool((t[k] >= hi).any()):
            raise StoreError(f"{name}: corrupt shard ({k} outside [0, {hi}))")


def load_shard(path: Path, name: str) -> dict[str, torch.Tensor]:
    """The tensors of one shard file (one-line :class:`StoreError` for a missing or unparsable file)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    except FileNotFoundError:
        raise StoreError(f"{name}: shard is missing") from None
    except (OSError, SafetensorError, RuntimeError, ValueError) as exc:
        raise StoreError(f"{name}: corrupt shard ({' '.join(str(exc).split())[:160]})") from None


# ----------------------------------------------------------------------------------------------
# reader
# ----------------------------------------------------------------------------------------------


class SourceLoader(Protocol):
    """How a store reloads the data set it was built from (:func:`nas.data.load_data`, which
    :func:`nas.data.open_store` passes in)."""

    def __call__(self, spec: str, resolution: int, *, val_fraction: float, seed: int) -> Dataset: ...


class DistillStore:
    """A finished distillation store read as a :class:`~nas.data.TrainSource` (see the module docstring).

    One epoch reads every example once: the shard order is shuffled per epoch (``seed``), then
    groups of ``buffer_shards`` shards are loaded and their examples shuffled together. With
    ``world > 1``, rank ``r`` takes every ``world``-th example of that one sequence, so ranks read
    disjoint examples, ``train_size() // world`` each (every rank reads every shard).
    :meth:`source_data` reloads the data set the store was built from with ``load_source``.
    """

    def __init__(self, path: str | Path, *, load_source: SourceLoader, buffer_shards: int = BUFFER_SHARDS):
        self.path = Path(path).expanduser()
        if not self.path.is_dir():
            raise StoreError(f"{self.path}: no such distillation store (a folder written by 'mnv4-nas distill-data')")
        m = read_manifest(self.path)
        where = str(self.path / MANIFEST)
        self.settings: dict[str, Any] = m["settings"]
        self._parse_settings(where)
        shards = finished_shards(m, where)
        n_planned = _field(m, "num_shards", int, where)
        if not _field(m, "complete", bool, where) or len(shards) < n_planned:
            raise StoreError(
                f"{self.path}: the build is not finished ({len(shards)} of {n_planned} shards); rerun "
                "'mnv4-nas distill-data' with the same options to finish it"
            )
        if not shards or n_planned == 0:
            raise StoreError(f"{self.path}: the store holds no examples")
        if sorted(shards) != list(range(n_planned)):
            raise StoreError(f"{where}: field 'shards' does not list shards 0 to {n_planned - 1}")
        self.shards = tuple(shards[i] for i in range(n_planned))
        self.examples = sum(r.examples for r in self.shards)
        if self.examples != _field(m, "examples", int, where):
            raise StoreError(f"{where}: field 'examples' differs from the shards' total ({self.examples})")
        self.manifest = m
        self.buffer_shards = max(1, int(buffer_shards))
        self._verified: set[int] = set()
        self._load_source = load_source
        self._source: Dataset | None = None

    def _parse_settings(self, where: str) -> None:
        s = self.settings
        d = _field(s, "data", dict, f"{where}: settings")
        dw = f"{where}: settings.data"
        self._classes = tuple(_field(d, "classes", list, dw))
        if len(self._classes) < 2 or not all(isinstance(c, str) for c in self._classes):
            raise StoreError(f"{dw}: field 'classes' must list at least 2 class names")
        self._resolution = _field(d, "resolution", int, dw)
        if not 8 <= self._resolution <= 1024:
            raise StoreError(f"{dw}: field 'resolution' must be in [8, 1024] (got {self._resolution})")
        self._mean = _triple(d, "mean", dw, False)
        self._std = _triple(d, "std", dw, True)
        self.train_images = _field(d, "train_images", int, dw)
        self.replicas = _field(s, "replicas", int, f"{where}: settings")
        self.data_info = d

    # -- TrainSource ---------------------------------------------------------------------------

    @property
    def classes(self) -> tuple[str, ...]:
        return self._classes

    @property
    def resolution(self) -> int:
        return self._resolution

    @property
    def mean(self) -> tuple[float, float, float]:
        return self._mean

    @property
    def std(self) -> tuple[float, float, float]:
        return self._std

    def train_size(self) -> int:
        return self.examples

    def epoch_batches(self, seed: int, batch_size: int, *, rank: int = 0, world: int = 1) -> Iterator[Batch]:
        yield from rebatch(self.stream(seed, rank=rank, world=world), batch_size)

    def identity(self) -> dict[str, Any]:
        return {
            "kind": "distill-store",  # no path: a store may move; its shards' hashes identify it
            "classes": list(self.classes),
            "resolution": self.resolution,
            "examples": self.examples,
            "shards_sha256": hashlib.sha256("".join(r.sha256 for r in self.shards).encode()).hexdigest(),
            "teacher": self.settings.get("teacher"),
            "aug": self.settings.get("aug"),
            "replicas": self.replicas,
        }

    def describe(self) -> str:
        t = self.settings.get("teacher") or {}
        return (
            f"{self.path}: distillation store of {self.examples} examples ({self.settings.get('aug')}, "
            f"{self.replicas} replicas of {self.data_info.get('spec')}; teacher {t.get('kind')} {t.get('source')}), "
            f"{len(self.classes)} classes at {self.resolution}x{self.resolution}"
        )

    # -- reading -------------------------------------------------------------------------------

    def read_shard(self, k: int) -> dict[str, torch.Tensor]:
        """Shard ``k``'s tensors, checked (sha256 only the first time this store reads it)."""
        rec = self.shards[k]
        p = self.path / rec.file
        name = f"{self.path}: {rec.file}"
        if k not in self._verified:
            if not p.is_file():
                raise StoreError(f"{name}: shard is missing")
            if p.stat().st_size != rec.bytes or sha256_file(p) != rec.sha256:
                raise StoreError(f"{name}: corrupt shard (its sha256 differs from the manifest's)")
        t = load_shard(p, name)
        check_shard(t, rec.examples, len(self.classes), self.resolution, self.replicas, self.train_images, name)
        self._verified.add(k)
        return t

    def stream(self, seed: int, *, rank: int = 0, world: int = 1) -> Iterator[tuple[torch.Tensor, ...]]:
        """One epoch of this rank's examples as chunks ``(images uint8, labels, probs float32)``."""
        if not 0 <= rank < world:
            raise StoreError(f"rank {rank} outside [0, {world})")
        limit = (self.examples // world) * world
        g = seeded_rng(seed, 0x5707E)
        order = g.permutation(len(self.shards))
        pos = 0
        for s in range(0, len(order), self.buffer_shards):
            parts = [self.read_shard(int(k)) for k in order[s : s + self.buffer_shards]]
            n = sum(len(p["labels"]) for p in parts)
            perm = g.permutation(n)
            glob = pos + np.arange(n)
            sel = torch.from_numpy(perm[(glob % world == rank) & (glob < limit)])
            pos += n
            if len(sel):
                yield (
                    torch.cat([p["images"] for p in parts])[sel],
                    torch.cat([p["labels"] for p in parts])[sel],
                    torch.cat([p["probs"] for p in parts])[sel].float(),
                )

    def source_data(self) -> Dataset:
        """The data set the store was built from (its held-out split is the store's), reloaded and
        checked to be unchanged."""
        if self._source is None:
            d = self.data_info
            try:
                ds = self._load_source(
                    str(d["spec"]), self.resolution, val_fraction=float(d["val_fraction"]), seed=int(d["split_seed"])
                )
            except (NasError, KeyError, TypeError, ValueError) as exc:
                raise StoreError(f"{self.path}: cannot reload the data it was built from ({exc})") from None
            if list(ds.classes) != list(self.classes) or data_fingerprint(ds) != d.get("fingerprint"):
                raise StoreError(
                    f"{self.path}: the data it was built from ({d['spec']}) has changed since "
                    "(its training images differ)"
                )
            self._source = ds
        return self._source


def rebatch(chunks: Iterator[tuple[torch.Tensor, ...]], batch_size: int) -> Iterator[Batch]:
    """Full batches of ``batch_size`` from ``(images uint8, labels, probs)`` chunks (a last partial batch is dropped)."""
    if batch_size < 1:
        raise StoreError(f"batch size must be at least 1 (got {batch_size})")
    held: list[tuple[torch.Tensor, ...]] = []
    have = 0
    for c in chunks:
        held.append(c)
        have += len(c[1])
        if have < batch_size:
            continue
        x, y, p = (torch.cat([h[i] for h in held]) for i in range(3))
        stop = have - have % batch_size
        for s in range(0, stop, batch_size):
            yield Batch(x[s : s + batch_size].float().div_(255.0), y[s : s + batch_size], p[s : s + batch_size])
        held, have = ([(x[stop:], y[stop:], p[stop:])], have - stop) if have > stop else ([], 0)


def shard_files(folder: Path) -> list[Path]:
    """Shard files present in ``folder`` (recorded or not)."""
    return sorted(p for p in folder.iterdir() if _SHARD_RE.fullmatch(p.name))
