"""Few-shot supernets (Zhao et al., "Few-shot Neural Architecture Search", ICML 2021).

One weight-sharing supernet per option of one width or depth decision of the space (e.g.
``stage1.channels``): each *shot* is an ordinary supernet trained only on the members with that
option, so members that differ in the split decision no longer share weights. A member is scored by
the shot that holds it.

On disk a few-shot supernet is a JSON manifest (``…/name.json``) naming one ordinary checkpoint per
shot beside it (``…/name.stage1.channels=24.pt``); each shot trains, checkpoints and resumes like a
one-shot supernet, one after the other. ``supernet:MANIFEST.json`` and ``supernet+macs:MANIFEST.json``
are estimators like their one-shot forms.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import NasError, SpecError
from nas.space import Decision, FusedStage, SearchSpace, UIBStage, decisions, widths_of
from nas.spec import ArchSpec
from nas.supernet._checkpoint import space_from_meta, space_meta
from nas.supernet._data import Dataset
from nas.supernet._estimators import CachedEstimator
from nas.supernet._supernet_estimator import SupernetEstimator
from nas.supernet._train import TrainConfig, TrainResult, train_supernet

MANIFEST_FORMAT = "mnv4-nas few-shot supernet"
MANIFEST_VERSION = 1
#: Decision kinds a space can be split on (the ones a sub-space expresses by narrowing a stage).
SPLITTABLE = ("channels", "depth")


def is_few_shot(path: str | Path) -> bool:
    """Whether ``path`` names a few-shot manifest (a ``.json`` file) rather than a checkpoint."""
    return Path(path).suffix.lower() == ".json"


def split_decision(space: SearchSpace, name: str) -> Decision:
    """The decision ``name`` of ``space`` (e.g. ``stage1.channels``), if a few-shot split can use it."""
    allowed = [d for d in decisions(space) if d.kind in SPLITTABLE]
    for d in allowed:
        if d.name == name:
            return d
    names = ", ".join(d.name for d in allowed) or "none: no stage has two widths or depths"
    raise NasError(f"--split: {name!r} is not a width or depth decision of space {space.name} (allowed: {names})")


def split_space(space: SearchSpace, name: str) -> list[tuple[int, SearchSpace]]:
    """(option, sub-space) per option of decision ``name``: ``space`` with that stage narrowed to it."""
    d = split_decision(space, name)
    st = space.stages[d.stage]
    assert isinstance(st, UIBStage | FusedStage)
    field = "channels" if d.kind == "channels" else "depth"
    out = []
    for v in d.choices:
        stages = list(space.stages)
        stages[d.stage] = dataclasses.replace(st, **{field: (int(v),)})
        sub = dataclasses.replace(space, name=f"{space.name}[{name}={v}]", stages=tuple(stages), _cache={})
        out.append((int(v), sub))
    return out


def shot_path(manifest: Path, split: str, value: int) -> Path:
    """Checkpoint path of one shot, beside the manifest."""
    return manifest.with_name(f"{manifest.stem}.{split}={value}.pt")


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def read_manifest(path: str | Path) -> dict[str, Any]:
    """A few-shot manifest, checked for format and version (one-line :class:`NasError` otherwise)."""
    p = Path(path)
    try:
        m = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NasError(f"{p}: no such few-shot manifest (train one with 'mnv4-nas supernet train --split …')") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NasError(f"{p}: not a few-shot supernet manifest ({type(exc).__name__})") from None
    if not isinstance(m, dict) or m.get("format") != MANIFEST_FORMAT:
        raise NasError(f"{p}: not a few-shot supernet manifest (no format {MANIFEST_FORMAT!r})")
    if m.get("version") != MANIFEST_VERSION:
        raise NasError(f"{p}: few-shot manifest version {m.get('version')!r}; this mnv4-nas reads {MANIFEST_VERSION}")
    return m


@dataclass(frozen=True)
class FewShotResult:
    """Outcome of :func:`train_few_shot`: the manifest and one :class:`TrainResult` per shot."""

    manifest: Path
    split: str
    shots: dict[int, TrainResult]

    @property
    def images_per_second(self) -> float:
        """Mean training throughput over the shots' epochs run in this call (NaN if none ran)."""
        rates = [r.images_per_second for r in self.shots.values() if not np.isnan(r.images_per_second)]
        return float(np.mean(rates)) if rates else float("nan")


def train_few_shot(
    space: SearchSpace,
    data: Dataset,
    manifest: str | Path,
    cfg: TrainConfig,
    *,
    split: str,
    resume: bool = True,
    on_shot: Callable[[int, int, int, Path], None] | None = None,
    **train_kwargs: Any,
) -> FewShotResult:
    """Train one supernet per option of decision ``split``, one after the other.

    Writes the manifest first, then each shot's checkpoint beside it (``train_kwargs`` go to
    :func:`nas.supernet.train_supernet`, e.g. ``data_spec``, ``on_epoch``, ``device``). Rerunning
    resumes each shot from its checkpoint; a manifest for another space or split is refused, never
    overwritten. ``on_shot(k, n, option, checkpoint)`` is called before shot ``k`` of ``n`` trains.
    """
    if cfg.sampler == "tunas":
        raise NasError("--split: a few-shot supernet trains with the sandwich or uniform sampler (a TuNAS controller "
                       "learns one distribution over the whole space)")  # fmt: skip
    path = Path(manifest)
    if not is_few_shot(path):
        raise NasError(f"--out: a few-shot supernet is a JSON manifest; give a .json path (got {path})")
    shots = split_space(space, split)
    want = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "space": space_meta(space),
        "split": split,
        "shots": [{"option": v, "checkpoint": shot_path(path, split, v).name} for v, _ in shots],
    }
    if path.exists() and resume:
        have = read_manifest(path)
        if have["split"] != split or have["space"] != json.loads(json.dumps(want["space"])):
            raise NasError(f"{path} is a few-shot supernet of another space or split ({have['split']}); "
                           "give another --out or remove it")  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_json(path, want)
    results: dict[int, TrainResult] = {}
    for k, (v, sub) in enumerate(shots):
        ck = shot_path(path, split, v)
        if on_shot is not None:
            on_shot(k, len(shots), v, ck)
        results[v] = train_supernet(sub, data, ck, cfg, resume=resume, **train_kwargs)
    return FewShotResult(path, split, results)


class FewShotEstimator(CachedEstimator):
    """``supernet:MANIFEST.json``: each member's held-out accuracy from the shot that holds it
    (BatchNorm recalibrated as in :class:`SupernetEstimator`)."""

    def __init__(self, path: str | Path, *, data: Dataset | None = None, threads: int | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        m = read_manifest(self.path)
        self.split: str = m["split"]
        self.shots: dict[int, SupernetEstimator] = {}
        for s in m["shots"]:
            ck = self.path.parent / s["checkpoint"]
            if not ck.exists():
                raise NasError(f"{self.path}: shot {self.split}={s['option']} has no checkpoint {ck} "
                               "(rerun the training command to finish it)")  # fmt: skip
            est = SupernetEstimator(ck, data=data, threads=threads)
            data = est.data  # every shot trained on the same data: load it once
            self.shots[int(s["option"])] = est
        first = next(iter(self.shots.values()))
        self.meta = first.meta
        self.data = first.data
        self.calib = first.calib  # every shot recalibrates on these same images
        parent = space_from_meta(m["space"])
        self._space = dataclasses.replace(parent, resolution=first.search_space.resolution,
                                          num_classes=first.search_space.num_classes, _cache={})  # fmt: skip
        self._stage = split_decision(self._space, self.split).stage
        epochs = sorted({e.meta["epochs_done"] for e in self.shots.values()})
        self.name = f"supernet:{self.path}"
        self.meaning = (
            f"top-1 accuracy (fraction 0-1) on the {len(self.data.val_y)} held-out images of the subnet inheriting the "
            f"weights of the shot of few-shot supernet {self.path.name} that holds it (one supernet per {self.split}: "
            f"{', '.join(map(str, self.shots))}; {'/'.join(map(str, epochs))} epochs); BatchNorm recalibrated on "
            f"{sum(len(b) for b in first.calib)} training images per subnet"
        )

    @property
    def search_space(self) -> SearchSpace:
        """The space the shots split (at the training resolution, in their phase)."""
        return self._space

    def normalize(self, arch: ArchSpec) -> ArchSpec:
        """``arch`` at the training resolution and class count."""
        return next(iter(self.shots.values())).normalize(arch)

    def shot_for(self, arch: ArchSpec) -> SupernetEstimator:
        """The shot whose sub-space holds ``arch`` (NasError for non-members of the space)."""
        try:
            cd = widths_of(self._space, self.normalize(arch))[self._stage]
        except SpecError as exc:
            raise NasError(f"{self.path}: {exc}") from None
        assert cd is not None
        option = cd[0] if self.split.endswith(".channels") else cd[1]
        return self.shots[option]

    def _score_one(self, arch: ArchSpec) -> float:
        return float(self.shot_for(arch).score([arch])[0])

    def tunas_quality(self, batch_size: int = 256, seed: int = 0) -> Callable[[list[ArchSpec]], np.ndarray]:
        """TuNAS per-step quality: one held-out batch through the shot that holds each member."""
        per = {id(e): e.tunas_quality(batch_size, seed) for e in self.shots.values()}

        def quality(archs: list[ArchSpec]) -> np.ndarray:
            return np.asarray([per[id(self.shot_for(a))]([a])[0] for a in archs], dtype=np.float64)

        return quality

    def controller(self) -> None:
        """No jointly trained controller (shots train with the sandwich or uniform sampler)."""
        return None


__all__ = ["FewShotEstimator", "FewShotResult", "is_few_shot", "read_manifest", "split_space", "train_few_shot"]
