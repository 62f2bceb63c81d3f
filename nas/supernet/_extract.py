"""A member of a trained supernet as a stand-alone model file: its inherited weights, BatchNorm
recalibrated, as a state dict or an ONNX model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from nas._io import write_atomic
from nas.errors import NasError
from nas.inputs import check_output_file
from nas.model import recalibrate_bn
from nas.spec import ArchSpec
from nas.supernet._few_shot import FewShotEstimator
from nas.supernet._load_estimator import load_supernet_estimator

if TYPE_CHECKING:
    from nas.export.onnx import OnnxExport

#: Formats of :func:`extract_subnet`.
EXTRACT_FORMATS: tuple[str, ...] = ("pt", "onnx")


@dataclass(frozen=True)
class ExtractedSubnet:
    """What :func:`extract_subnet` wrote."""

    path: Path
    arch: ArchSpec  #: the member as the supernet holds it (its normal form)
    onnx: OnnxExport | None = None  #: format onnx: the export and its onnxruntime check


def extract_subnet(checkpoint: str | Path, arch: ArchSpec, output: str | Path, fmt: str = "pt") -> ExtractedSubnet:
    """Write the subnet ``arch`` of the supernet ``checkpoint`` (a few-shot manifest: of the shot that
    holds it) with its inherited weights, BatchNorm recalibrated on the supernet's training data.

    ``pt``: ``{arch, classes, mean, std, state_dict}`` for ``torch.load(..., weights_only=True)``;
    ``onnx``: an ONNX model checked against torch in onnxruntime. ``output`` is checked before the
    checkpoint loads.
    """
    if fmt not in EXTRACT_FORMATS:
        raise NasError(f"--format must be one of {', '.join(EXTRACT_FORMATS)} (got {fmt!r})")
    p = check_output_file(output, "--output")
    est = load_supernet_estimator(checkpoint)
    if isinstance(est, FewShotEstimator):
        est = est.shot_for(arch)
    model = recalibrate_bn(est.supernet.extract(arch), est.calib)
    norm = est.supernet.normalize(arch)
    if fmt == "onnx":
        from nas.export.onnx import export_onnx

        r = export_onnx(norm, p, model=model)
        return ExtractedSubnet(r.path, norm, r)
    obj = {
        "arch": norm.arch,
        "classes": est.meta["classes"],
        "mean": est.meta["data"].get("mean"),
        "std": est.meta["data"].get("std"),
        "state_dict": model.state_dict(),
    }
    write_atomic(p, lambda fh: torch.save(obj, fh), "give --output a writable path")
    return ExtractedSubnet(p, norm)


__all__ = ["EXTRACT_FORMATS", "ExtractedSubnet", "extract_subnet"]
