"""Export specs and models: JSON/TOML spec files, timm arch-def lines, ONNX with an onnxruntime check,
TFLite FP32/INT8 with a LiteRT check (the ``tflite`` extra).

Submodules are imported on first use: writing timm lines must not pay for importing the ONNX exporter.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "DEFAULT_OPSET": "nas.export.onnx",
    "OnnxExport": "nas.export.onnx",
    "export_module": "nas.export.onnx",
    "export_onnx": "nas.export.onnx",
    "ort_session": "nas.export.onnx",
    "TfliteExport": "nas.export.tflite",
    "export_tflite": "nas.export.tflite",
    "TimmArch": "nas.export.timm",
    "read_timm_lines": "nas.export.timm",
    "read_timm_snippet": "nas.export.timm",
    "timm_lines": "nas.export.timm",
    "to_timm": "nas.export.timm",
    "save_spec": "nas.spec.io",
    "to_json": "nas.spec.io",
    "to_toml": "nas.spec.io",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nas.export' has no attribute {name!r}")


__all__ = sorted(_LAZY)
