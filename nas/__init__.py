"""mnv4-nas: hardware-aware NAS for MobileNetV4-style backbones.

Public API (heavy modules are imported on first use)::

    from nas import ArchSpec, parse_arch, get_spec, build_model, count_params, count_macs, export_onnx
"""

from __future__ import annotations

from typing import Any

from nas.errors import ConfigError, NasError, SpecError
from nas.spec import (
    ArchSpec,
    ConvSpec,
    DSConvSpec,
    FusedIBSpec,
    HeadSpec,
    MHSASpec,
    MQASpec,
    UIBSpec,
    format_arch,
    format_block,
    load_spec_file,
    parse_arch,
    parse_block,
    save_spec,
)

_LAZY = {
    "get_spec": "nas.zoo",
    "zoo_names": "nas.zoo",
    "build_model": "nas.model",
    "count_params": "nas.cost",
    "count_macs": "nas.cost",
    "layer_costs": "nas.cost",
    "export_onnx": "nas.export",
    "timm_lines": "nas.export",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nas' has no attribute {name!r}")


__all__ = [
    "ArchSpec",
    "ConfigError",
    "ConvSpec",
    "DSConvSpec",
    "FusedIBSpec",
    "HeadSpec",
    "MHSASpec",
    "MQASpec",
    "NasError",
    "SpecError",
    "UIBSpec",
    "format_arch",
    "format_block",
    "load_spec_file",
    "parse_arch",
    "parse_block",
    "save_spec",
    *_LAZY,
]
