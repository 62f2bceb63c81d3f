"""Export specs and models: JSON/TOML spec files, timm arch-def lines, ONNX with an onnxruntime check."""

from __future__ import annotations

from nas.export.onnx import DEFAULT_OPSET, OnnxExport, export_module, export_onnx, ort_session
from nas.export.timm import TimmArch, read_timm_lines, timm_lines, to_timm
from nas.spec.io import save_spec, to_json, to_toml

__all__ = [
    "DEFAULT_OPSET",
    "OnnxExport",
    "TimmArch",
    "export_module",
    "export_onnx",
    "ort_session",
    "read_timm_lines",
    "save_spec",
    "timm_lines",
    "to_json",
    "to_timm",
    "to_toml",
]
