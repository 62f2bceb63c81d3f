"""Reading a trained model back: from a ``mnv4-nas train`` folder, its ``model.safetensors`` or its
``checkpoint.pt`` (:func:`load_trained`), e.g. to evaluate it or to use it as a teacher."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.errors import NasError
from nas.inputs import regular_file
from nas.model import build_model
from nas.spec import ArchSpec, parse_arch
from nas.train._checkpoint import read_checkpoint
from nas.train._outputs import MODEL_FORMAT
from nas.train._standalone import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, FILES
from nas.train._teacher import ModuleTeacher


@dataclass
class TrainedModel:
    """A trained classifier with what it needs to be used."""

    spec: ArchSpec  #: at its deployment resolution, with the class count it was trained on
    train_spec: ArchSpec  #: the same at the training resolution (what :attr:`model` was built from)
    model: nn.Module  #: in eval mode, on the CPU
    classes: tuple[str, ...]
    mean: tuple[float, float, float]  #: per-channel statistics to normalise [0, 1] inputs with
    std: tuple[float, float, float]
    resolution: int  #: training resolution (px)
    weights: str  #: ``ema`` or ``raw``
    path: Path  #: the file read
    meta: dict[str, Any]  #: name, data (how it was given), …

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)


def _stats(value: Any, path: Path, key: str) -> tuple[float, float, float]:
    try:
        v = tuple(float(x) for x in value)
    except (TypeError, ValueError):
        v = ()
    if len(v) != 3:
        raise NasError(f"{path}: {key} must be 3 numbers (got {value!r})")
    return v


def _build(
    path: Path, train_arch: str, deploy_arch: str, state: dict[str, torch.Tensor]
) -> tuple[ArchSpec, ArchSpec, nn.Module]:
    train_spec, spec = parse_arch(train_arch), parse_arch(deploy_arch)
    model = build_model(train_spec)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else type(exc).__name__
        raise NasError(f"{path}: weights do not match its architecture ({first})") from None
    return spec, train_spec, model.eval()


def _from_safetensors(path: Path) -> TrainedModel:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt") as f:
            md = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no iteration
    except (SafetensorError, OSError) as exc:
        raise NasError(f"{path}: not a readable safetensors file ({exc})") from None
    if md.get("format") != MODEL_FORMAT:
        raise NasError(f"{path}: not an mnv4-nas model (its metadata has no format {MODEL_FORMAT!r})")
    try:
        classes = tuple(str(c) for c in json.loads(md["classes"]))
        mean, std = json.loads(md["mean"]), json.loads(md["std"])
        meta = {"name": md.get("name", path.parent.name), "data": json.loads(md.get("data", "{}"))}
        train_arch, deploy_arch, weights = md["arch"], md["deploy_arch"], md.get("weights", "raw")
    except (KeyError, ValueError) as exc:
        raise NasError(f"{path}: incomplete mnv4-nas model metadata ({type(exc).__name__}: {exc})") from None
    spec, train_spec, model = _build(path, train_arch, deploy_arch, state)
    return TrainedModel(
        spec,
        train_spec,
        model,
        classes,
        _stats(mean, path, "mean"),
        _stats(std, path, "std"),
        train_spec.resolution,
        weights,
        path,
        meta,
    )


def _from_checkpoint(path: Path) -> TrainedModel:
    ckpt = read_checkpoint(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "training")
    meta = ckpt["meta"]
    use_ema = bool(meta.get("recipe", {}).get("ema")) and ckpt.get("ema") is not None
    state = ckpt["ema"] if use_ema else ckpt.get("model")
    try:
        train_arch, deploy_arch, classes = meta["train_arch"], meta["arch"], tuple(meta["classes"])
        mean, std = meta["mean"], meta["std"]
    except (KeyError, TypeError) as exc:
        raise NasError(f"{path}: incomplete training checkpoint metadata ({exc})") from None
    if not isinstance(state, dict):
        raise NasError(f"{path}: the checkpoint holds no weights")
    spec, train_spec, model = _build(path, train_arch, deploy_arch, state)
    return TrainedModel(
        spec,
        train_spec,
        model,
        classes,
        _stats(mean, path, "mean"),
        _stats(std, path, "std"),
        train_spec.resolution,
        "ema" if use_ema else "raw",
        path,
        meta,
    )


def load_trained(path: str | Path) -> TrainedModel:
    """A model trained by :func:`nas.train.train` from its output folder (``model.safetensors``, or
    ``checkpoint.pt`` while training has not finished), a ``.safetensors`` file or a ``checkpoint.pt``.
    Anything else is a one-line :class:`NasError` naming the path."""
    p = Path(path).expanduser()
    if p.is_dir():
        for key in ("weights", "checkpoint"):
            if (p / FILES[key]).is_file():
                p = p / FILES[key]
                break
        else:
            raise NasError(f"{p}: no {FILES['weights']} or {FILES['checkpoint']} here (not a mnv4-nas train folder)")
    regular_file(p, "trained model")
    if p.suffix.lower() == ".safetensors":
        return _from_safetensors(p)
    return _from_checkpoint(p)


def teacher_from_trained(path: str | Path, device: str | None = None, temperature: float = 1.0) -> ModuleTeacher:
    """A :class:`~nas.train.ModuleTeacher` of a trained model (:func:`load_trained`) on ``device``; it
    normalises images with the statistics it was trained with and expects its training resolution."""
    tm = load_trained(path)
    model = tm.model.to(device) if device is not None else tm.model
    return ModuleTeacher(
        model, tm.mean, tm.std, tm.num_classes, tm.resolution, source=str(tm.path), temperature=temperature
    )
