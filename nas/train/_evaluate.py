"""Held-out evaluation of a trained classifier: top-1/top-5, the confusion matrix and its picture."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nas._io import write_atomic, write_text_atomic
from nas.train._checkpoint import OUT_HINT


@dataclass(frozen=True)
class EvalResult:
    """Accuracy of a model on a set of labelled images."""

    top1: float  #: fraction in [0, 1]
    top5: float  #: top-k with k = min(5, classes)
    k: int
    images: int
    confusion: np.ndarray  #: C×C counts; row = true class, column = predicted class

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (confusion as nested lists)."""
        return {
            "top1": self.top1,
            f"top{self.k}": self.top5,
            "images": self.images,
            "confusion": self.confusion.tolist(),
        }


@torch.no_grad()
def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    num_classes: int,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> EvalResult:
    """Top-1, top-5 and confusion matrix of ``model`` (logits out) on uint8 N×3×R×R ``images``,
    normalised with the statistics the model was trained with (``mean``/``std``, not the data's own)."""
    dev = torch.device(device)
    was = model.training
    model.eval()
    m = torch.tensor(list(mean), dtype=torch.float32, device=dev).view(1, 3, 1, 1)
    s = torch.tensor(list(std), dtype=torch.float32, device=dev).view(1, 3, 1, 1)
    k = min(5, num_classes)
    conf = torch.zeros(num_classes * num_classes, dtype=torch.int64)
    top1 = topk = 0
    try:
        for i in range(0, len(labels), batch_size):
            x = (images[i : i + batch_size].to(dev, torch.float32) / 255.0 - m) / s
            y = labels[i : i + batch_size].to(dev)
            logits = model(x).float()
            best = logits.topk(k, dim=1).indices
            top1 += int((best[:, 0] == y).sum())
            topk += int((best == y[:, None]).any(1).sum())
            conf += torch.bincount((y * num_classes + best[:, 0]).cpu(), minlength=num_classes * num_classes)
    finally:
        model.train(was)
    n = max(1, len(labels))
    return EvalResult(top1 / n, topk / n, k, len(labels), conf.view(num_classes, num_classes).numpy())


def plot_confusion(path: Path, confusion: np.ndarray, classes: Sequence[str], title: str) -> None:
    """Confusion matrix as a PNG: rows normalised (colour = fraction of the true class), counts written
    in the cells while they stay legible (up to 20 classes), class names on both axes (up to 60)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    c = len(classes)
    rows = confusion.sum(1, keepdims=True)
    frac = confusion / np.maximum(rows, 1)
    side = float(np.clip(0.45 * c + 2.5, 5.0, 22.0))
    fig = Figure(figsize=(side + 1.2, side), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if c <= 60:
        size = 10 if c <= 12 else 8 if c <= 30 else 6
        ax.set_xticks(
            range(c),
            [str(n) for n in classes],
            rotation=45 if c > 4 else 0,
            ha="right" if c > 4 else "center",
            fontsize=size,
        )
        ax.set_yticks(range(c), [str(n) for n in classes], fontsize=size)
    if c <= 20:
        for i in range(c):
            for j in range(c):
                if confusion[i, j]:
                    colour = "white" if frac[i, j] > 0.5 else "black"
                    ax.text(
                        j,
                        i,
                        str(int(confusion[i, j])),
                        ha="center",
                        va="center",
                        color=colour,
                        fontsize=8 if c > 10 else 10,
                    )
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=11)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    write_atomic(path, lambda fh: fh.write(buf.getvalue()), OUT_HINT)


def write_eval(
    result: EvalResult, out: Path, classes: Sequence[str], title: str, info: dict[str, Any]
) -> dict[str, Path]:
    """``confusion.png`` and ``eval.json`` (``info`` + the result) in ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    png, js = out / "confusion.png", out / "eval.json"
    plot_confusion(png, result.confusion, classes, title)
    doc = {**info, "classes": list(classes), **result.to_dict(), "files": {"confusion": str(png)}}
    write_text_atomic(js, json.dumps(doc, indent=1) + "\n", OUT_HINT)
    return {"confusion": png, "eval": js}
