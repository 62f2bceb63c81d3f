"""Per-block facts beside the cost model, each one ``functools.singledispatch`` registry keyed by spec
type (as :func:`nas.cost.block_ops` is): the typed latency-table key columns of a positioned block
and the label ``mnv4-nas models show`` prints. A new block kind registers one function in each.
"""

from __future__ import annotations

from functools import singledispatch
from typing import Any

from nas.errors import SpecError
from nas.spec.blocks import BlockSpec, ConvSpec, DSConvSpec, FusedIBSpec, MHSASpec, MQASpec, Shape, UIBSpec


@singledispatch
def block_columns(spec: BlockSpec, inp: Shape) -> dict[str, Any]:
    """Latency-table key columns particular to the block's kind (beside kind, widths and stride)."""
    raise SpecError(f"no table columns for block type {type(spec).__name__}")


@block_columns.register
def _(spec: ConvSpec, inp: Shape) -> dict[str, Any]:
    return {"kernel": spec.kernel, "activation": spec.activation}


@block_columns.register
def _(spec: FusedIBSpec, inp: Shape) -> dict[str, Any]:
    return {"kernel": spec.kernel, "expanded_c": spec.mid_channels(inp.c), "activation": spec.activation}


@block_columns.register
def _(spec: UIBSpec, inp: Shape) -> dict[str, Any]:
    return {
        "start_dw_kernel": spec.start_dw_kernel or 0,
        "mid_dw_kernel": spec.mid_dw_kernel or 0,
        "expanded_c": spec.mid_channels(inp.c),
        "activation": spec.activation,
        "layer_scale": spec.layer_scale,
        "stride_on": spec.stride_on if spec.stride == 2 else "",
    }


@block_columns.register
def _(spec: DSConvSpec, inp: Shape) -> dict[str, Any]:
    return {"kind": "dsa" if spec.pw_act else "ds", "kernel": spec.kernel, "activation": spec.activation}


def _attention_columns(spec: MQASpec | MHSASpec, inp: Shape) -> dict[str, Any]:
    return {
        "kernel": spec.dw_kernel if spec.kv_stride > 1 else 0,
        "heads": spec.heads,
        "key_dim": spec.key_dim,
        "value_dim": spec.v_dim,
        "kv_stride": spec.kv_stride,
        "query_stride": spec.query_stride,
        "activation": "",
        "layer_scale": spec.layer_scale,
    }


block_columns.register(MQASpec, _attention_columns)
block_columns.register(MHSASpec, _attention_columns)


@singledispatch
def block_label(spec: BlockSpec) -> tuple[str, str, str, str]:
    """(block label, kernels, expansion, extra) of a block, as ``mnv4-nas models show`` prints it."""
    return type(spec).__name__, "-", "-", ""


@block_label.register
def _(spec: UIBSpec) -> tuple[str, str, str, str]:
    k = f"{spec.start_dw_kernel or '-'}/{spec.mid_dw_kernel or '-'}"
    extra = ("layer scale" if spec.layer_scale else "") + (f" {spec.activation}" if spec.activation != "relu" else "")
    return spec.variant, k, f"{spec.expansion:g}", extra.strip()


@block_label.register
def _(spec: FusedIBSpec) -> tuple[str, str, str, str]:
    return "FusedIB", f"{spec.kernel}", f"{spec.expansion:g}", spec.activation if spec.activation != "relu" else ""


@block_label.register
def _(spec: ConvSpec) -> tuple[str, str, str, str]:
    return (
        f"Conv {spec.kernel}x{spec.kernel}",
        f"{spec.kernel}",
        "-",
        spec.activation if spec.activation != "relu" else "",
    )


@block_label.register
def _(spec: DSConvSpec) -> tuple[str, str, str, str]:
    return "DWSep" + (" (act)" if spec.pw_act else ""), f"{spec.kernel}", "-", spec.activation


def _attention_label(name: str, spec: MQASpec | MHSASpec) -> tuple[str, str, str, str]:
    extra = f"h{spec.heads} dk{spec.key_dim} dv{spec.v_dim} kv/{spec.kv_stride}" + (" ls" if spec.layer_scale else "")
    return name, f"{spec.dw_kernel}" if spec.kv_stride > 1 else "-", "-", extra


@block_label.register
def _(spec: MQASpec) -> tuple[str, str, str, str]:
    return _attention_label("MobileMQA", spec)


@block_label.register
def _(spec: MHSASpec) -> tuple[str, str, str, str]:
    return _attention_label("MHSA", spec)


__all__ = ["block_columns", "block_label"]
