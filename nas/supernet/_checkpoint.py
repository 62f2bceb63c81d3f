"""Supernet checkpoints: plain tensors plus JSON metadata, written atomically, read with
``torch.load(..., weights_only=True)`` only.

A checkpoint is a dict ``{"format", "version", "meta" (a JSON string), "model" (state dict),
"optimizer" (state dict), "controller" (state dict or None), "scaler" (fp16 gradient scaler or None)}``
(:func:`nas.train.write_checkpoint`). The metadata holds the search space
itself (so a checkpoint of a user's space file keeps working when the file changes or moves), the
training resolution, classes, data source and statistics, the training configuration, the number of
finished epochs and the per-epoch history.

Writes go to a temporary file in the same folder, are flushed and fsync'd, then renamed over the
target (and the folder fsync'd): a process killed at any moment leaves either the previous complete
checkpoint or the new one.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from nas.errors import NasError
from nas.inputs import MAX_SEED
from nas.space import PHASES, SearchSpace, space_from_meta
from nas.train import OUT_HINT, read_checkpoint, write_checkpoint

CHECKPOINT_FORMAT = "mnv4-nas-supernet"
CHECKPOINT_VERSION = 1


def save_checkpoint(
    path: str | Path,
    meta: dict[str, Any],
    model: dict[str, torch.Tensor],
    optimizer: dict[str, Any] | None,
    controller: dict[str, Any] | None,
    scaler: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (temp file, fsync, rename, fsync the folder)."""
    state = {"model": model, "optimizer": optimizer, "controller": controller, "scaler": scaler}
    return write_checkpoint(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, meta, state, OUT_HINT)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint (``weights_only=True``, a regular file only: a FIFO or a device is refused
    unread); ``meta`` is decoded to a dict and checked field by field. One-line errors."""
    obj = read_checkpoint(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "supernet")
    check_meta(obj["meta"], str(path))
    return obj


def _int(v: Any, lo: int, hi: int) -> bool:
    return not isinstance(v, bool) and isinstance(v, int) and lo <= v <= hi


def _num(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)


def _meta_problem(m: Any) -> str | None:
    """What is wrong with checkpoint metadata (the first field that is), or None."""
    if not isinstance(m, dict):
        return "not a JSON object"
    sp = m.get("space")
    if not isinstance(sp, dict) or not isinstance(sp.get("definition"), dict):
        return "space must be an object with a definition"
    if sp.get("phase", "joint") not in PHASES:
        return f"space.phase must be one of {', '.join(PHASES)}"
    fw = sp.get("fixed_widths")
    if fw is not None and not (
        isinstance(fw, list)
        and all(w is None or (isinstance(w, list) and len(w) == 2 and all(_int(x, 1, 2**20) for x in w)) for w in fw)
    ):
        return "space.fixed_widths must be null or a list of [channels, depth] pairs"
    checks = {
        "resolution": _int(m.get("resolution"), 1, 4096),
        "num_classes": _int(m.get("num_classes"), 1, 10**6),
        "epochs_done": _int(m.get("epochs_done"), 0, 10**9),
        "history": isinstance(m.get("history"), list) and all(isinstance(h, dict) for h in m["history"]),
        "world_size": _int(m.get("world_size", 1), 1, 10**6),
        "init_from": m.get("init_from") is None
        or (isinstance(m["init_from"], dict) and isinstance(m["init_from"].get("checkpoint"), str)),
        "budget": m.get("budget") is None or _num(m["budget"]),
    }
    if bad := next((k for k, ok in checks.items() if not ok), None):
        return f"{bad} is missing or out of range (got {str(m.get(bad))[:40]!r})"
    classes = m.get("classes")
    if not (
        isinstance(classes, list) and len(classes) == m["num_classes"] and all(isinstance(c, str) for c in classes)
    ):
        return "classes must be a list of num_classes names"
    d = m.get("data")
    if not (
        isinstance(d, dict)
        and isinstance(d.get("spec"), str)
        and d["spec"].strip()
        and _num(d.get("val_fraction"))
        and 0 < d["val_fraction"] < 1
        and _int(d.get("split_seed"), 0, MAX_SEED)
    ):
        return "data must hold spec, val_fraction in (0, 1) and split_seed"
    for k in ("mean", "std"):
        if k in d and not (isinstance(d[k], list) and len(d[k]) == 3 and all(_num(x) for x in d[k])):
            return f"data.{k} must be three finite numbers"
    c = m.get("config")
    if not isinstance(c, dict) or not _int(c.get("seed"), 0, MAX_SEED) or not isinstance(c.get("sampler"), str):
        return "config must be an object with seed and sampler"
    if bad := next((k for k, v in c.items() if isinstance(v, float) and not math.isfinite(v)), None):
        return f"config.{bad} is not finite"
    return None


def check_meta(meta: Any, source: str) -> None:
    """A one-line :class:`NasError` naming ``source`` and the field when checkpoint metadata is malformed
    (every field a checkpoint's readers use: space, resolution, classes, data, config, history)."""
    if why := _meta_problem(meta):
        raise NasError(f"{source}: corrupt checkpoint metadata: {why}")
    check_space_meta(meta["space"], f"{source}: corrupt checkpoint metadata: space")


def check_space_meta(meta: dict[str, Any], where: str) -> SearchSpace:
    """The space of stored space metadata; a definition the schema refuses, or fixed widths that do not
    fit it, is a one-line :class:`NasError` starting with ``where`` (not with the space's old file name)."""
    try:
        sp = space_from_meta(meta)
    except NasError as exc:
        raise NasError(f"{where}: {str(exc).removeprefix(str(meta.get('source', '')) + ': ')}") from None
    if sp.fixed_widths is not None and len(sp.fixed_widths) != len(sp.stages):
        raise NasError(f"{where}: fixed_widths has {len(sp.fixed_widths)} entries for {len(sp.stages)} stages")
    return sp
