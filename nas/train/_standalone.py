"""Stand-alone training of an architecture into an output folder (``mnv4-nas train``).

The folder holds ``checkpoint.pt`` (after every epoch, atomically: weights, EMA, optimizer, metadata),
and once training is done ``model.safetensors``, ``model.onnx``, ``metrics.csv``, ``curves.png``,
``summary.md``, ``run.json`` and ``spec.json``. Rerunning the same training on the folder resumes after
the last finished epoch (bit-identical to an uninterrupted run); another recipe, data, architecture or
teacher is refused.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nas._io import write_text_atomic
from nas.data import Dataset, TrainSource
from nas.errors import NasError, RuntimeCheckError, SpecError
from nas.model import build_model
from nas.spec import ArchSpec, spec_to_dict, to_json
from nas.train._checkpoint import OUT_HINT, read_checkpoint, write_checkpoint
from nas.train._ddp import DistInfo, barrier, broadcast_object, init_distributed
from nas.train._engine import Engine, EpochStats, StepBatch, StepContext, StepOutput
from nas.train._evaluate import evaluate
from nas.train._outputs import metrics_csv, summary_md, write_curves, write_onnx, write_safetensors
from nas.train._recipe import Recipe
from nas.train._teacher import Teacher
from nas.units import utc_stamp, utc_timestamp

CHECKPOINT_FORMAT = "mnv4-nas-train"
CHECKPOINT_VERSION = 1
#: what a training folder holds (key -> file name)
FILES: dict[str, str] = {
    "checkpoint": "checkpoint.pt",
    "weights": "model.safetensors",
    "onnx": "model.onnx",
    "metrics": "metrics.csv",
    "curves": "curves.png",
    "summary": "summary.md",
    "run": "run.json",
    "spec": "spec.json",
}
EpochFn = Callable[[dict[str, Any]], None]


@dataclass
class TrainRun:
    """What :func:`train` produced."""

    out: Path
    spec: ArchSpec  #: the trained architecture at its deployment resolution, with the data's class count
    epochs_done: int
    resumed_from: int  #: epochs already done when this call started
    history: list[dict[str, Any]]  #: per epoch: loss, train/held-out top-1 (raw, EMA), lr, images/s, seconds
    results: dict[str, Any]  #: final held-out top-1 (raw, EMA, saved), images/s, ONNX check (rank 0)
    files: dict[str, Path]  #: :data:`FILES` in ``out``

    @property
    def images_per_second(self) -> float:
        """Training throughput of the epochs this call ran (nan if none)."""
        rows = self.history[self.resumed_from :]
        seconds = sum(h["seconds"] for h in rows)
        return sum(h["images_per_s"] * h["seconds"] for h in rows) / seconds if seconds > 0 else float("nan")


def default_out_dir(output_dir: str | Path, name: str, kind: str = "train") -> Path:
    """``<output_dir>/<kind>-<name>-<UTC time>`` (kind ``train`` or ``eval``)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:60] or "arch"
    return Path(output_dir) / f"{kind}-{slug}-{utc_stamp()}"


def training_specs(spec: ArchSpec, source: TrainSource) -> tuple[ArchSpec, ArchSpec]:
    """(deployment spec, training spec): ``spec`` with the data's class count, at its own resolution and
    at the data's (the model is built at the latter; both describe the same weights)."""
    n = len(source.classes)
    try:
        return (
            dataclasses.replace(spec, num_classes=n),
            dataclasses.replace(spec, resolution=source.resolution, num_classes=n),
        )
    except SpecError as exc:
        raise NasError(
            f"the architecture does not run at the training resolution {source.resolution} px: {exc}"
        ) from None


class ModelSteps:
    """The stand-alone :class:`~nas.train.StepStrategy`: one forward and backward pass of ``model`` per
    step, to the hard labels, to the source's soft targets, or (``teacher``) to the probabilities an
    online teacher gives for the same augmented batch."""

    def __init__(self, model: nn.Module, teacher: Teacher | None = None) -> None:
        self.model, self.teacher = model, teacher

    def begin_epoch(self, epoch: int) -> None:
        """Nothing is drawn per epoch here."""

    def targets(self, batch: StepBatch) -> torch.Tensor | None:
        """Soft targets of a batch: the teacher's probabilities, else the source's (None: hard labels)."""
        if self.teacher is None:
            return batch.soft
        x = batch.x01
        r = self.teacher.resolution
        if r is not None and r != x.shape[-1]:
            x = F.interpolate(x, size=(r, r), mode="bilinear", antialias=True, align_corners=False).clamp_(0, 1)
        return self.teacher.probs(x).to(batch.x.device, torch.float32)

    def step(self, engine: Engine, batch: StepBatch, ctx: StepContext) -> StepOutput:
        """Forward, loss, backward."""
        with engine.autocast():
            target = self.targets(batch)
            logits = self.model(batch.x)
        loss = engine.loss(logits, batch.y, target)
        engine.backward(loss)
        return StepOutput(loss.detach(), logits.detach())

    def after_step(self, ctx: StepContext) -> dict[str, Any]:
        """Nothing after the optimizer step."""
        return {}


def _check_teacher(teacher: Teacher | None, source: TrainSource) -> None:
    if teacher is not None and teacher.num_classes != len(source.classes):
        raise NasError(
            f"the teacher gives {teacher.num_classes} class probabilities, the data has {len(source.classes)} classes"
        )


def _zero_head(model: nn.Module) -> None:
    classifier = getattr(getattr(model, "head", None), "classifier", None)
    if isinstance(classifier, nn.Linear):
        with torch.no_grad():
            classifier.weight.zero_()
            classifier.bias.zero_()


def _held_out(model: nn.Module, val: Dataset | None, source: TrainSource, dev: torch.device) -> float | None:
    if val is None or len(val.val_y) == 0:
        return None
    r = evaluate(model, val.val_x, val.val_y, source.mean, source.std, num_classes=len(source.classes), device=dev)
    return r.top1


def _evaluation(engine: Engine, val: Dataset | None, source: TrainSource) -> dict[str, Any]:
    """Held-out top-1 of the raw and (if kept) EMA weights."""
    out = {"val_acc": _held_out(engine.model, val, source, engine.device)}
    if engine.ema is not None:
        out["val_acc_ema"] = _held_out(engine.ema.module, val, source, engine.device)
    return out


def fit_model(
    model: nn.Module,
    source: TrainSource,
    val_data: Dataset | None,
    cfg: Recipe = Recipe(),
    *,
    teacher: Teacher | None = None,
    device: str | None = None,
    on_epoch: EpochFn | None = None,
    max_steps_per_epoch: int | None = None,
) -> dict[str, Any]:
    """Train ``model`` in place with the recipe, without files (benchmarks, fine-tuning). With EMA the
    model ends with the EMA weights. Returns ``{val_acc, val_acc_ema, history, seconds, images_per_s}``
    (the held-out top-1 of the final weights, evaluated after the last epoch, and of the raw ones)."""
    cfg.check()
    _check_teacher(teacher, source)
    info = init_distributed(device)
    model = model.to(info.device)
    if cfg.zero_head:
        _zero_head(model)
    engine = Engine(model, cfg, source, info, max_steps_per_epoch=max_steps_per_epoch, sync_buffers=True)
    history: list[dict[str, Any]] = []

    def end_epoch(epoch: int, stats: EpochStats) -> None:
        entry = stats.entry(epoch + 1)
        if info.is_main and epoch + 1 == cfg.epochs:  # held-out accuracy of the result only
            entry.update(_evaluation(engine, val_data, source))
        history.append(entry)
        if on_epoch is not None and info.is_main:
            on_epoch(entry)

    engine.fit(ModelSteps(model, teacher), 0, end_epoch)
    raw = history[-1].get("val_acc") if history else None
    if engine.ema is not None:
        model.load_state_dict(engine.ema.state_dict())
    seconds = sum(h["seconds"] for h in history)
    images = sum(h["images_per_s"] * h["seconds"] for h in history)
    final = history[-1].get("val_acc_ema", raw) if history else None
    return {
        "val_acc": final,
        "val_acc_raw": raw,
        "history": history,
        "seconds": seconds,
        "images_per_s": images / seconds if seconds > 0 else float("nan"),
    }


def _meta(
    name: str,
    deploy: ArchSpec,
    train_spec: ArchSpec,
    source: TrainSource,
    val: Dataset | None,
    cfg: Recipe,
    teacher: Teacher | None,
    info: DistInfo,
    engine: Engine,
    data: dict[str, Any],
) -> dict[str, Any]:
    return {
        "name": name,
        "spec": spec_to_dict(deploy, name),
        "arch": deploy.arch,
        "train_arch": train_spec.arch,
        "resolution": {"train": train_spec.resolution, "deploy": deploy.resolution},
        "classes": list(source.classes),
        "mean": list(source.mean),
        "std": list(source.std),
        "data": {
            **data,
            "description": source.describe(),
            "identity": source.identity(),
            "val_images": None if val is None else len(val.val_y),
        },
        "teacher": None if teacher is None else teacher.describe(),
        "recipe": cfg.to_dict(),
        "world_size": info.world,
        "device": info.device,
        "amp": None if engine.amp is None else str(engine.amp).removeprefix("torch."),
        "epochs_done": 0,
        "history": [],
        "created": utc_timestamp(),
        "torch": torch.__version__,
    }


def _identity(data: dict[str, Any]) -> dict[str, Any]:
    ident = {k: v for k, v in data["identity"].items() if k != "source"}  # where it lies: ``spec`` says
    return {"spec": data.get("spec"), **ident}


def _change(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """What makes ``old``'s checkpoint the wrong one to continue for ``new`` (None: compatible; the
    epoch count may grow)."""
    if old["resolution"]["train"] != new["resolution"]["train"]:
        return f"training resolution {old['resolution']['train']} px (now {new['resolution']['train']})"
    if old["classes"] != new["classes"] or _identity(old["data"]) != _identity(new["data"]):
        return f"other data ({old['data']['description']})"
    if old["arch"] != new["arch"]:
        return f"another architecture ({old['name']}: {old['arch'][:80]}…)"
    if old["teacher"] != new["teacher"]:
        return f"teacher {old['teacher']} (now {new['teacher']})"
    for k, v in old["recipe"].items():
        if k != "epochs" and new["recipe"].get(k) != v:
            return f"{k} = {v!r} (now {new['recipe'].get(k)!r})"
    return None


def _resume(path: Path, meta: dict[str, Any], model: nn.Module, engine: Engine) -> int:
    """Load the checkpoint at ``path`` into model and engine if it is compatible; the first epoch to run."""
    ckpt = read_checkpoint(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "training")
    old = ckpt["meta"]
    why = _change(old, meta)
    if why is not None:
        raise NasError(
            f"{path} holds a training with {why}; rerun with its settings, pass --no-resume to start over "
            "there, or give another --out"
        )
    try:
        model.load_state_dict(ckpt["model"])
        engine.load_state_dict(ckpt)
    except (KeyError, RuntimeError, ValueError) as exc:
        raise NasError(f"{path}: checkpoint does not match its own architecture ({type(exc).__name__})") from None
    for k in ("history", "created", "epochs_done"):
        meta[k] = old[k]
    return int(old["epochs_done"])


def train(
    spec: ArchSpec,
    source: TrainSource,
    val_data: Dataset | None,
    cfg: Recipe = Recipe(),
    out: str | Path = "results/train",
    *,
    teacher: Teacher | None = None,
    device: str | None = None,
    resume: bool = True,
    name: str = "arch",
    data_info: dict[str, Any] | None = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    on_epoch: EpochFn | None = None,
    max_steps_per_epoch: int | None = None,
) -> TrainRun:
    """Train ``spec`` on ``source`` into the folder ``out`` (see the module docstring for its files).

    Args:
        spec: the architecture; its class count becomes the data's, its resolution stays the deployment
            resolution (recorded) while the model trains at the source's resolution.
        source: training batches (:class:`~nas.data.TrainSource`: a data set, or a distillation store
            whose ``soft`` probabilities are the targets).
        val_data: held-out images to evaluate on after every epoch (its ``val`` split), or None.
        cfg: the recipe (:class:`Recipe`).
        out: output folder; with ``resume`` a compatible checkpoint there is continued. Under torchrun
            rank 0's value is used by every rank.
        teacher: online distillation: the loss is the cross-entropy to this teacher's probabilities for
            the same augmented batch.
        device: ``cpu``/``cuda``/``cuda:N`` (default: CUDA when available; under torchrun, the local GPU).
        name: shown in the summary and recorded (e.g. the spec file's stem or zoo name).
        data_info: how the data was given (``spec``, ``val_fraction``, ``split_seed``), recorded so
            ``mnv4-nas eval`` finds the same held-out split.
        on_step, on_epoch: progress callbacks (rank 0): running ``{epoch, step, steps, loss, acc, lr}``;
            each epoch's history row.
        max_steps_per_epoch: cap the steps of every epoch (smoke tests).
    """
    cfg.check()
    _check_teacher(teacher, source)
    info = init_distributed(device)
    out = Path(broadcast_object(str(out), info))
    deploy, train_spec = training_specs(spec, source)
    model = build_model(train_spec, seed=cfg.seed)
    if cfg.zero_head:
        _zero_head(model)
    model = model.to(info.device)
    engine = Engine(model, cfg, source, info, max_steps_per_epoch=max_steps_per_epoch, sync_buffers=True)
    meta = _meta(name, deploy, train_spec, source, val_data, cfg, teacher, info, engine, data_info or {})
    files = {k: out / v for k, v in FILES.items()}
    start = 0
    if resume and files["checkpoint"].exists():
        start = _resume(files["checkpoint"], meta, model, engine)
    run = TrainRun(out, deploy, start, start, meta["history"], {}, files)

    def end_epoch(epoch: int, stats: EpochStats) -> None:
        entry = stats.entry(epoch + 1)
        if info.is_main:
            entry.update(_evaluation(engine, val_data, source))
        meta["history"].append(entry)
        meta["epochs_done"] = run.epochs_done = epoch + 1
        meta["updated"] = utc_timestamp()
        if info.is_main:
            write_checkpoint(
                files["checkpoint"],
                CHECKPOINT_FORMAT,
                CHECKPOINT_VERSION,
                meta,
                {"model": model.state_dict(), **engine.state_dict()},
            )
            _write_metrics(files, meta["history"])
            if on_epoch is not None:
                on_epoch(entry)

    engine.fit(ModelSteps(model, teacher), start, end_epoch, on_step=on_step if info.is_main else None)
    if info.is_main:
        run.results = _finish(run, meta, engine)
    barrier(info)
    return run


def _write_metrics(files: dict[str, Path], history: list[dict[str, Any]]) -> None:
    write_text_atomic(files["metrics"], metrics_csv(history), OUT_HINT)


def _finish(run: TrainRun, meta: dict[str, Any], engine: Engine) -> dict[str, Any]:
    """Write the final files (rank 0); returns the results recorded in ``run.json``."""
    files, hist = run.files, meta["history"]
    final = engine.ema.module if engine.ema is not None else engine.model
    last = hist[-1] if hist else {}
    saved = "ema" if engine.ema is not None else "raw"
    write_safetensors(files["weights"], final.state_dict(), _weights_metadata(meta, saved))
    write_text_atomic(files["spec"], to_json(run.spec, meta["name"]), OUT_HINT)
    _write_metrics(files, hist)
    write_curves(files["curves"], hist, f"{meta['name']} on {meta['data']['description']}")
    onnx_diff: float | str
    try:
        onnx_diff = write_onnx(files["onnx"], copy.deepcopy(final).cpu().eval(), meta["resolution"]["train"])
    except RuntimeCheckError as exc:
        onnx_diff = f"check failed: {exc}"
    mine = hist[run.resumed_from :] or hist
    seconds = sum(h["seconds"] for h in mine)
    results = {
        "val_acc": last.get("val_acc"),
        "val_acc_ema": last.get("val_acc_ema"),
        "weights": saved,
        "val_acc_saved": last.get("val_acc_ema" if saved == "ema" else "val_acc"),
        "images_per_s": sum(h["images_per_s"] * h["seconds"] for h in mine) / seconds if seconds > 0 else None,
        "seconds": float(sum(h["seconds"] for h in hist)),
        "onnx_max_abs_diff": onnx_diff,
    }
    doc = {k: v for k, v in meta.items() if k != "history"}
    doc.update(
        out=str(run.out),
        epochs_done=run.epochs_done,
        resumed_from=run.resumed_from,
        results=results,
        files={k: str(p) for k, p in files.items()},
        finished=utc_timestamp(),
    )
    write_text_atomic(files["summary"], summary_md(doc, run.spec), OUT_HINT)
    write_text_atomic(files["run"], json.dumps(_finite(doc), indent=1) + "\n", OUT_HINT)
    if isinstance(onnx_diff, str):
        raise RuntimeCheckError(f"{files['onnx']}: {onnx_diff} (the other outputs in {run.out} are complete)")
    return results


def _weights_metadata(meta: dict[str, Any], saved: str) -> dict[str, str]:
    return {
        "name": meta["name"],
        "arch": meta["train_arch"],
        "deploy_arch": meta["arch"],
        "resolution": str(meta["resolution"]["train"]),
        "classes": json.dumps(meta["classes"]),
        "mean": json.dumps(meta["mean"]),
        "std": json.dumps(meta["std"]),
        "weights": saved,
        "data": json.dumps(meta["data"]),
    }


def _finite(obj: Any) -> Any:
    """NaN/inf → None, so that ``run.json`` is strict JSON."""
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


__all__ = ["FILES", "ModelSteps", "TrainRun", "default_out_dir", "fit_model", "train", "training_specs"]
