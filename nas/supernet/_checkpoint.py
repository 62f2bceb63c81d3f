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

from pathlib import Path
from typing import Any

import torch

from nas.space import FixedStage, FusedStage, SearchSpace, space_from_dict
from nas.spec import format_block, format_head
from nas.train import OUT_HINT, read_checkpoint, write_checkpoint

CHECKPOINT_FORMAT = "mnv4-nas-supernet"
CHECKPOINT_VERSION = 1


def space_to_dict(space: SearchSpace) -> dict[str, Any]:
    """The space as the TOML schema's dict (``space_from_dict`` reads it back to an equal space)."""
    stages: list[dict[str, Any]] = []
    for st in space.stages:
        if isinstance(st, FixedStage):
            stages.append({"kind": "fixed", "blocks": [format_block(b) for b in st.blocks]})
        elif isinstance(st, FusedStage):
            stages.append({"kind": "fused", "stride": st.stride, "channels": list(st.channels),
                           "depth": list(st.depth), "kernel": st.kernel, "expansion": st.expansion})  # fmt: skip
        else:
            d: dict[str, Any] = {"kind": "uib", "stride": st.stride, "channels": list(st.channels), "depth": list(st.depth)}
            if st.attention is not None:
                a = st.attention
                d["attention"] = {"slots": a.slots, "heads": a.heads, "key_dim": a.key_dim, "value_dim": a.value_dim,
                                  "kv_stride": a.kv_stride, "dw_kernel": a.dw_kernel}  # fmt: skip
            stages.append(d)
    out: dict[str, Any] = {
        "name": space.name,
        "description": space.description,
        "resolution": space.resolution,
        "num_classes": space.num_classes,
        "activation": space.activation,
        "layer_scale": space.layer_scale,
        "stem": format_block(space.stem),
        "head": format_head(space.head, space.num_classes),
        "coarse": {"block": space.coarse_block.label},
        "fine": {
            "start_dw": [k or 0 for k in space.start_dw],
            "mid_dw": [k or 0 for k in space.mid_dw],
            "expansion": list(space.expansions),
        },
        "stages": stages,
    }
    if space.reference:
        out["reference"] = space.reference
    return out


def space_meta(space: SearchSpace) -> dict[str, Any]:
    """JSON-able description of a space in its phase."""
    return {
        "definition": space_to_dict(space),
        "source": space.source,
        "phase": space.phase,
        "fixed_widths": None if space.fixed_widths is None else [list(w) if w else None for w in space.fixed_widths],
    }


def space_from_meta(meta: dict[str, Any]) -> SearchSpace:
    """Inverse of :func:`space_meta`."""
    sp = space_from_dict(meta["definition"], meta.get("source", "<checkpoint>"))
    fw = meta.get("fixed_widths")
    if meta.get("phase", "joint") != "joint" or fw is not None:
        sp = sp.with_phase(meta.get("phase", "joint"), None if fw is None else tuple(tuple(w) if w else None for w in fw))
    return sp


def save_checkpoint(path: str | Path, meta: dict[str, Any], model: dict[str, torch.Tensor],
                    optimizer: dict[str, Any] | None, controller: dict[str, Any] | None,
                    scaler: dict[str, Any] | None = None) -> Path:  # fmt: skip
    """Write a checkpoint atomically (temp file, fsync, rename, fsync the folder)."""
    state = {"model": model, "optimizer": optimizer, "controller": controller, "scaler": scaler}
    return write_checkpoint(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, meta, state, OUT_HINT)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint (``weights_only=True``); ``meta`` is decoded to a dict. One-line errors."""
    return read_checkpoint(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "supernet")
