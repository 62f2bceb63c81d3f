"""Few-shot supernets (Zhao et al., "Few-shot Neural Architecture Search", ICML 2021).

One weight-sharing supernet per option of a width or depth decision of the space (e.g.
``stage1.channels``): each *shot* is an ordinary supernet trained only on the members with that
option, so members that differ in the split decision no longer share weights. A member is scored by
the shot that holds it.

Several decisions split into every combination of their options (``stage0.channels,stage1.channels``:
3 × 3 shots for two 3-way widths). On disk a few-shot supernet is a JSON manifest (``…/name.json``)
naming one ordinary checkpoint per shot beside it (``…/name.stage1.channels=24.pt``); each shot
trains, checkpoints and resumes like a one-shot supernet, one after the other.
``supernet:MANIFEST.json`` and ``supernet+macs:MANIFEST.json`` are estimators like their one-shot
forms.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas._io import write_text_atomic
from nas.data import Dataset, TrainSource
from nas.errors import NasError, SpecError
from nas.inputs import as_error, path_exists, read_json
from nas.space import PHASES, Decision, SearchSpace, decisions, space_from_meta, space_meta, widths_of
from nas.spec import ArchSpec
from nas.supernet._checkpoint import OUT_HINT, check_space_meta, load_checkpoint
from nas.supernet._estimators import CachedEstimator
from nas.supernet._supernet import training_space
from nas.supernet._supernet_estimator import SupernetEstimator
from nas.supernet._train import TrainConfig, TrainResult, init_id, init_record, load_init, train_supernet
from nas.train import init_distributed

MANIFEST_FORMAT = "mnv4-nas few-shot supernet"
MANIFEST_VERSION = 1
#: Decision kinds a space can be split on (the ones a sub-space expresses by narrowing a stage).
SPLITTABLE = ("channels", "depth")


def is_few_shot(path: str | Path) -> bool:
    """Whether ``path`` names a few-shot manifest (a ``.json`` file) rather than a checkpoint."""
    return Path(path).suffix.lower() == ".json"


def split_decisions(space: SearchSpace, split: str) -> tuple[Decision, ...]:
    """The decisions named by ``split`` (one, or several joined by commas: ``stage0.channels,stage1.channels``),
    if a few-shot split can use them (width and depth decisions of ``space``, each once)."""
    allowed = {d.name: d for d in decisions(space) if d.kind in SPLITTABLE}
    names = [n.strip() for n in split.split(",")]
    for n in names:
        if n not in allowed:
            ok = ", ".join(allowed) or "none: no stage has two widths or depths"
            raise NasError(f"--split: {n!r} is not a width or depth decision of space {space.name} (allowed: {ok})")
    if len(set(names)) < len(names):
        raise NasError(f"--split: a decision is named twice in {split!r}")
    return tuple(allowed[n] for n in names)


@dataclass(frozen=True)
class Shot:
    """One shot: the options it fixes, e.g. ``(("stage1.channels", 24),)``, and its sub-space."""

    options: tuple[tuple[str, int], ...]
    space: SearchSpace

    @property
    def label(self) -> str:
        """``stage1.channels=24`` (several options joined by ``+``); also names its checkpoint."""
        return _label(self.options)


def _label(options: tuple[tuple[str, int], ...]) -> str:
    return "+".join(f"{n}={v}" for n, v in options)


def split_space(space: SearchSpace, split: str) -> list[Shot]:
    """One shot per combination of the options of the decisions in ``split``: ``space`` with those stages
    narrowed to them. Every member of ``space`` lies in exactly one shot."""
    ds = split_decisions(space, split)
    out = []
    for combo in itertools.product(*(d.choices for d in ds)):
        stages = list(space.stages)
        for d, v in zip(ds, combo, strict=True):
            stages[d.stage] = stages[d.stage].narrow(d.kind, int(v))
        opts = tuple((d.name, int(v)) for d, v in zip(ds, combo, strict=True))
        sub = dataclasses.replace(space, name=f"{space.name}[{_label(opts)}]", stages=tuple(stages))
        out.append(Shot(opts, sub))
    return out


def shot_path(manifest: Path, label: str) -> Path:
    """Checkpoint path of the shot with ``label`` (:attr:`Shot.label`), beside the manifest."""
    return manifest.with_name(f"{manifest.stem}.{label}.pt")


def read_manifest(path: str | Path) -> dict[str, Any]:
    """A few-shot manifest, checked for format and version (one-line :class:`NasError` otherwise)."""
    p = Path(path)
    if not path_exists(p):
        raise NasError(f"{p}: no such few-shot manifest (train one with 'mnv4-nas supernet train --split …')")
    with as_error(NasError):
        m = read_json(p, "few-shot manifest", 2**24)
    if not isinstance(m, dict) or m.get("format") != MANIFEST_FORMAT:
        raise NasError(f"{p}: not a few-shot supernet manifest (no format {MANIFEST_FORMAT!r})")
    if m.get("version") != MANIFEST_VERSION:
        raise NasError(f"{p}: few-shot manifest version {m.get('version')!r}; this mnv4-nas reads {MANIFEST_VERSION}")
    shots = m.get("shots")
    sp = m.get("space")
    if not (
        isinstance(m.get("split"), str)
        and isinstance(sp, dict)
        and isinstance(sp.get("definition"), dict)
        and sp.get("phase", "joint") in PHASES
        and isinstance(shots, list)
        and shots
        and all(
            isinstance(s, dict)
            and isinstance(s.get("label"), str)
            and isinstance(s.get("checkpoint"), str)
            and "/" not in s["checkpoint"]
            for s in shots
        )
    ):
        raise NasError(
            f"{p}: malformed few-shot manifest (needs split, space and shots with label and checkpoint file names)"
        )
    init = m.get("init_from")
    if init is not None and not (isinstance(init, dict) and isinstance(init.get("checkpoint"), str)):
        raise NasError(f"{p}: malformed few-shot manifest (init_from must be null or name a checkpoint)")
    space = check_space_meta(m["space"], f"{p}: malformed few-shot manifest: space")
    try:
        want = sorted(sh.label for sh in split_space(space, m["split"]))
    except NasError as exc:
        raise NasError(f"{p}: malformed few-shot manifest: split ({str(exc).removeprefix('--split: ')})") from None
    if sorted(s["label"] for s in shots) != want:
        raise NasError(f"{p}: malformed few-shot manifest: its shots are not the split's ({', '.join(want)})")
    return m


@dataclass(frozen=True)
class FewShotResult:
    """Outcome of :func:`train_few_shot`: the manifest and one :class:`TrainResult` per shot label."""

    manifest: Path
    split: str
    shots: dict[str, TrainResult]

    @property
    def images_per_second(self) -> float:
        """Mean training throughput over the shots' epochs run in this call (NaN if none ran)."""
        rates = [r.images_per_second for r in self.shots.values() if not np.isnan(r.images_per_second)]
        return float(np.mean(rates)) if rates else float("nan")


def check_few_shot(space: SearchSpace, split: str, sampler: str, manifest: str | Path) -> list[Shot]:
    """The shots of ``split`` after checking the settings of a few-shot training (one-line NasError
    naming the option otherwise): a ``.json`` manifest path, a sampler without a controller."""
    if sampler == "tunas":
        raise NasError(
            "--split: few-shot supernets train with --sampler sandwich or uniform, not tunas (a TuNAS "
            "controller learns one distribution over the whole space)"
        )
    if not is_few_shot(manifest):
        raise NasError(f"--out: a few-shot supernet (--split) is a .json manifest; got {manifest}")
    return split_space(space, split)


def train_few_shot(
    space: SearchSpace,
    data: Dataset | TrainSource,
    manifest: str | Path,
    cfg: TrainConfig,
    *,
    split: str,
    resume: bool = True,
    on_shot: Callable[[int, int, str, Path], None] | None = None,
    **train_kwargs: Any,
) -> FewShotResult:
    """Train one supernet per shot of ``split`` (:func:`split_space`), one after the other.

    Writes the manifest first, then each shot's checkpoint beside it (``train_kwargs`` go to
    :func:`nas.supernet.train_supernet`, e.g. ``data_spec``, ``on_epoch``, ``device``, and ``init_from``:
    a one-shot supernet of ``space`` every shot starts from, Zhao et al.'s transfer; recorded in the
    manifest). Rerunning resumes each shot from its checkpoint, and shots not yet begun start from the
    recorded start when ``init_from`` is not given again; a manifest for another space, split or start
    is refused, never overwritten. ``on_shot(k, n, label, checkpoint)`` is called before shot ``k`` of ``n`` trains.
    """
    path = Path(manifest)
    shots = check_few_shot(space, split, cfg.sampler, path)
    split = ",".join(name for name, _ in shots[0].options)  # canonical spelling
    want = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "space": json.loads(json.dumps(space_meta(space))),
        "split": split,
        "shots": [
            {"label": sh.label, "options": dict(sh.options), "checkpoint": shot_path(path, sh.label).name}
            for sh in shots
        ],
    }
    given = train_kwargs.pop("init_from", None)
    init_from, start = given, None  # the checkpoint unstarted shots begin from, and its record in the manifest
    if given is not None:  # a start that cannot hold the shots fails before anything is written
        start = init_record(given, load_init(given, data, space)["meta"])
    if path.exists() and resume:
        have = read_manifest(path)
        if have["split"] != split or have["space"] != want["space"]:
            raise NasError(
                f"{path} is a few-shot supernet of another space or split ({have['split']}); "
                "give another --out or remove it"
            )
        if "init_from" in have:
            recorded, known = have["init_from"], True
        else:  # a manifest from before starts were recorded there: a begun shot's checkpoint tells
            begun = [shot_path(path, sh.label) for sh in shots if shot_path(path, sh.label).exists()]
            recorded, known = (load_checkpoint(begun[0])["meta"].get("init_from"), True) if begun else (None, False)
        if given is None and recorded:  # resuming: shots not yet begun start where the others did
            start, init_from = recorded, recorded["checkpoint"]
            if not all(shot_path(path, sh.label).exists() for sh in shots):
                now = init_record(init_from, load_init(init_from, data, space)["meta"])
                if init_id({"init_from": now}) != init_id({"init_from": recorded}):
                    raise NasError(
                        f"{path}: its shots started from {init_from} at {recorded['epochs_done']} epochs, and "
                        f"that file now holds another supernet ({now['epochs_done']} epochs); restore it, "
                        "or pass --no-resume to start over"
                    )
        elif known and init_id({"init_from": start}) != init_id({"init_from": recorded}):
            was = f"started from {recorded['checkpoint']}" if recorded else "trained without --init-from"
            raise NasError(
                f"{path} is a few-shot supernet {was}; resume it with the same --init-from or none, "
                "pass --no-resume to start over, or give another --out"
            )
    want["init_from"] = start  # None: trained from scratch
    if init_distributed(train_kwargs.get("device")).is_main:  # under torchrun, rank 0 writes
        write_text_atomic(path, json.dumps(want, indent=1), OUT_HINT)
    results: dict[str, TrainResult] = {}
    for k, sh in enumerate(shots):
        ck = shot_path(path, sh.label)
        if on_shot is not None:
            on_shot(k, len(shots), sh.label, ck)
        # a begun shot goes on from its own checkpoint, which records its start
        shot_init = None if given is None and resume and ck.exists() else init_from
        results[sh.label] = train_supernet(sh.space, data, ck, cfg, resume=resume, init_from=shot_init, **train_kwargs)
    return FewShotResult(path, split, results)


class FewShotEstimator(CachedEstimator):
    """``supernet:MANIFEST.json``: each member's held-out accuracy from the shot that holds it
    (BatchNorm recalibrated as in :class:`SupernetEstimator`)."""

    def __init__(self, path: str | Path, *, data: Dataset | None = None, threads: int | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        m = read_manifest(self.path)
        self.split: str = m["split"]
        #: shot label (``stage1.channels=24``) -> that shot's one-shot estimator
        self.shots: dict[str, SupernetEstimator] = {}
        for s in m["shots"]:
            ck = self.path.parent / s["checkpoint"]
            if not ck.exists():
                raise NasError(
                    f"{self.path}: shot {s['label']} has no checkpoint {ck} (rerun the training command to finish it)"
                )
            est = SupernetEstimator(ck, data=data, threads=threads)
            data = est.data  # every shot trained on the same data: load it once
            self.shots[s["label"]] = est
        first = next(iter(self.shots.values()))
        self.meta = first.meta
        self.data = first.data
        self.calib = first.calib  # every shot recalibrates on these same images
        parent = space_from_meta(m["space"])
        self._space = dataclasses.replace(
            parent, resolution=first.search_space.resolution, num_classes=first.search_space.num_classes
        )
        # membership is decided at the training resolution, which may differ from the space's own
        self._train_space = training_space(self._space, first.supernet.resolution, first.supernet.num_classes)
        self._decisions = split_decisions(self._space, self.split)
        epochs = sorted({e.meta["epochs_done"] for e in self.shots.values()})
        self.name = f"supernet:{self.path}"
        self.meaning = (
            f"top-1 accuracy (fraction 0-1) on the {len(self.data.val_y)} held-out images of the subnet inheriting the "
            f"weights of the shot of few-shot supernet {self.path.name} that holds it ({len(self.shots)} supernets, one "
            f"per {self.split}; {'/'.join(map(str, epochs))} epochs); BatchNorm recalibrated on "
            f"{sum(len(b) for b in first.calib)} training images per subnet"
        )

    @property
    def search_space(self) -> SearchSpace:
        """The space the shots split (at its own resolution, in their phase), as a shot reports it."""
        return self._space

    def normalize(self, arch: ArchSpec) -> ArchSpec:
        """``arch`` at the training resolution and class count."""
        return next(iter(self.shots.values())).normalize(arch)

    def shot_for(self, arch: ArchSpec) -> SupernetEstimator:
        """The shot whose sub-space holds ``arch`` (NasError for non-members of the space)."""
        try:
            widths = widths_of(self._train_space, self.normalize(arch))
        except SpecError as exc:
            raise NasError(f"{self.path}: {exc}") from None
        opts = []
        for d in self._decisions:
            cd = widths[d.stage]
            assert cd is not None
            opts.append((d.name, cd[0] if d.kind == "channels" else cd[1]))
        shot = self.shots.get(_label(tuple(opts)))
        if shot is None:
            raise NasError(f"{self.path}: the manifest names no shot for {_label(tuple(opts))} (a corrupt manifest?)")
        return shot

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


__all__ = ["FewShotEstimator", "FewShotResult", "Shot", "is_few_shot", "read_manifest", "split_space", "train_few_shot"]
