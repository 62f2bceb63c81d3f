"""Files of a finished training run: weights (safetensors, ONNX), metrics, curves, summary, run record.

Every file is written atomically (a temporary file beside it, then a rename), so an interrupted run
leaves complete files or none; rerunning the training command rewrites them.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas._io import write_atomic
from nas.spec import ArchSpec
from nas.train._checkpoint import OUT_HINT

MODEL_FORMAT = "mnv4-nas-model"
MODEL_VERSION = "1"
#: onnxruntime vs torch on random inputs: trained logits are O(10), so a looser bound than export's default
ONNX_ATOL = 1e-3
#: metrics.csv columns, in order (history keys)
METRIC_COLUMNS = ("epoch", "loss", "train_acc", "val_acc", "val_acc_ema", "lr_end", "images_per_s", "seconds")


def write_safetensors(path: Path, state: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """A state dict as safetensors with string ``metadata`` (architecture, classes, statistics, …)."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    data = save(tensors, metadata={"format": MODEL_FORMAT, "version": MODEL_VERSION, **metadata})
    write_atomic(path, lambda fh: fh.write(data), OUT_HINT)


def write_onnx(path: Path, model: nn.Module, resolution: int) -> float:
    """Export ``model`` (batch dimension dynamic) and check it in onnxruntime against torch; returns the
    max |onnxruntime − torch| (a :class:`~nas.errors.RuntimeCheckError` above :data:`ONNX_ATOL`)."""
    from nas.export import export_module

    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.onnx")
    try:
        r = export_module(model, (1, 3, resolution, resolution), tmp, dynamic_batch=True, atol=ONNX_ATOL)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return float(r.max_abs_diff or 0.0)


def metrics_csv(history: Sequence[dict[str, Any]]) -> str:
    """Per-epoch metrics as CSV text (:data:`METRIC_COLUMNS`; empty cells where not measured)."""
    import pandas as pd

    df = pd.DataFrame([{c: h.get(c) for c in METRIC_COLUMNS} for h in history], columns=list(METRIC_COLUMNS))
    return str(df.to_csv(index=False, float_format="%.6g"))


def write_curves(path: Path, history: Sequence[dict[str, Any]], title: str) -> None:
    """``curves.png``: training loss, and top-1 (train, held-out raw and EMA) against the epoch."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ep = [h["epoch"] for h in history]
    fig = Figure(figsize=(11, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax_l, ax_a = fig.subplots(1, 2)
    ax_l.plot(ep, [h["loss"] for h in history], marker="o", color="tab:red")
    ax_l.set(xlabel="epoch", ylabel="training loss", title="loss")
    for key, label, style in (
        ("train_acc", "train (augmented)", "o--"),
        ("val_acc", "held-out", "o-"),
        ("val_acc_ema", "held-out, EMA weights", "s-"),
    ):
        pts = [(h["epoch"], 100 * h[key]) for h in history if h.get(key) is not None]
        if pts:
            ax_a.plot(*zip(*pts, strict=True), style, label=label)
    ax_a.set(xlabel="epoch", ylabel="top-1 (%)", title="top-1 accuracy")
    ax_a.legend(loc="lower right")
    for ax in (ax_l, ax_a):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    write_atomic(path, lambda fh: fh.write(buf.getvalue()), OUT_HINT)


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f} %"


def _num(v: float | str | None, fmt: str = ".2e") -> str:
    return format(v, fmt) if isinstance(v, float) else "–" if v is None else str(v)


def summary_md(run: dict[str, Any], spec: ArchSpec) -> str:
    """``summary.md``: what was trained on what, how, and what came out (``run`` is ``run.json``'s content)."""
    res, rec, data = run["results"], run["recipe"], run["data"]
    lines = [
        f"# Training of {run['name']}",
        "",
        f"- architecture: `{spec.arch}`",
        f"- resolution: trained at {run['resolution']['train']} px; the spec's deployment resolution is "
        f"{run['resolution']['deploy']} px",
        f"- data: {data['description']}",
        f"- online teacher: {json.dumps(run['teacher']) if run['teacher'] else 'none'}",
        f"- {run['epochs_done']} epochs, {run['world_size']} process(es) × batch {rec['batch_size']}, device {run['device']}"
        f", mixed precision {run['amp'] or 'off'}",
        "",
        "## Recipe",
        "",
        "| setting | value |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in rec.items()),
        "",
        "## Results",
        "",
        f"- held-out top-1: {_pct(res['val_acc'])} (raw weights), {_pct(res['val_acc_ema'])} (EMA weights)",
        f"- saved weights: {res['weights']} ({_pct(res['val_acc_saved'])} held-out top-1)",
        f"- training throughput: {_num(res['images_per_s'], '.1f')} images/s; {res['seconds']:.1f} s of training steps",
        f"- ONNX: max |onnxruntime − torch| = {_num(res['onnx_max_abs_diff'])} on random inputs",
        "",
        "## Files",
        "",
        "| file | content |",
        "|---|---|",
        "| `model.safetensors` | the saved weights; metadata: arch, classes, mean/std, training resolution |",
        "| `model.onnx` | the same model, batch dimension dynamic, input 1×3×R×R normalised with mean/std |",
        "| `checkpoint.pt` | last epoch: weights, EMA, optimizer (resume by rerunning the command) |",
        "| `metrics.csv`, `curves.png` | per-epoch loss, top-1, learning rate, images/s |",
        "| `spec.json`, `run.json` | the trained spec (class count of the data); settings and results |",
        "",
        f"Load in Python: `nas.train.load_trained('{run['out']}')`; evaluate: `mnv4-nas eval {run['out']} --data DATA`.",
        "",
    ]
    return "\n".join(lines)
