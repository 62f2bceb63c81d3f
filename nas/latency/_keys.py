"""Table keys: the layer keys of :mod:`nas.spec` (``uir_r1_a3_k5_s2_e4_c80@64x64x48``,
``head_c960_h1280_cls1000@7x7x128``) and what each one means for latency — its primitive ops, its
typed table columns, the features a target may not support, the module that runs it alone (and the call probe's) — plus
the distinct keys of the zoo and of search spaces.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from nas.cost import Op, block_ops, head_ops
from nas.spec import ArchSpec, MHSASpec, MQASpec, Shape, arch_keys, block_columns, parse_key

if TYPE_CHECKING:
    from collections.abc import Iterable

    from torch import nn

#: Typed key columns of a table, in file order (0 = not applicable / absent).
KEY_COLUMNS: tuple[str, ...] = (
    "kind",
    "in_h",
    "in_w",
    "in_c",
    "out_c",
    "stride",
    "stride_on",
    "kernel",
    "start_dw_kernel",
    "mid_dw_kernel",
    "expanded_c",
    "hidden_c",
    "heads",
    "key_dim",
    "value_dim",
    "kv_stride",
    "query_stride",
    "activation",
    "layer_scale",
    "residual",
)
MODEL_KIND = "model"


@lru_cache(maxsize=65536)
def parse_table_key(key: str) -> tuple[Any, Shape]:
    """Parse a block/head key (``SpecError`` when malformed), cached."""
    return parse_key(key)


def is_model_key(key: str) -> bool:
    """Whether a key is a whole-architecture string (a per-model calibration row)."""
    return key.startswith("res") and "|" in key


@lru_cache(maxsize=65536)
def key_ops(key: str) -> tuple[Op, ...]:
    """Primitive ops of the layer a key names."""
    spec, shape = parse_table_key(key)
    if isinstance(spec, tuple):
        head, classes = spec
        return tuple(head_ops(head, shape, classes))
    return tuple(block_ops(spec, shape))


def key_weight_bytes(key: str, dtype: str) -> int:
    """Bytes of weights the layer reads, in ``dtype``."""
    return sum(o.weight_bytes(dtype) for o in key_ops(key))


def key_macs(key: str) -> int:
    """MACs of the layer."""
    return sum(o.macs for o in key_ops(key))


def key_columns(key: str) -> dict[str, Any]:
    """Typed columns of a key: every field that changes latency (see :data:`KEY_COLUMNS`)."""
    if is_model_key(key):
        from nas.spec import parse_arch

        arch = parse_arch(key)
        row: dict[str, Any] = dict.fromkeys(KEY_COLUMNS, 0)
        row.update(kind=MODEL_KIND, in_h=arch.resolution, in_w=arch.resolution, in_c=3, out_c=arch.num_classes)
        row.update(stride_on="", activation="", layer_scale=False, residual=False)
        return row
    spec, shape = parse_table_key(key)
    row = dict.fromkeys(KEY_COLUMNS, 0)
    row.update(in_h=shape.h, in_w=shape.w, in_c=shape.c, stride_on="", activation="relu")
    row.update(layer_scale=False, residual=False)
    if isinstance(spec, tuple):
        head, classes = spec
        row.update(
            kind="head",
            out_c=classes,
            expanded_c=head.conv_channels,
            hidden_c=head.hidden_channels,
            activation=head.activation,
        )
        return row
    row.update(kind=spec.kind, out_c=spec.out_channels, stride=spec.stride)
    row.update(block_columns(spec, shape))
    if hasattr(spec, "has_residual"):
        row["residual"] = bool(spec.has_residual(shape))
    return row


def key_features(key: str) -> set[str]:
    """Block features of a key that some targets cannot run (``attention``, ``gelu``)."""
    if is_model_key(key):
        from nas.spec import parse_arch

        feats: set[str] = set()
        for k in arch_keys(parse_arch(key)):
            feats |= key_features(k)
        return feats
    spec, _ = parse_table_key(key)
    out: set[str] = set()
    if isinstance(spec, tuple):
        if spec[0].activation == "gelu":
            out.add("gelu")
        return out
    if isinstance(spec, (MQASpec, MHSASpec)):
        out.add("attention")
    if getattr(spec, "activation", None) == "gelu":
        out.add("gelu")
    return out


def arch_features(arch: ArchSpec) -> set[str]:
    """Union of :func:`key_features` over an architecture's layers."""
    out: set[str] = set()
    for k in arch_keys(arch):
        out |= key_features(k)
    return out


def key_module(key: str) -> tuple[nn.Module, tuple[int, int, int, int]]:
    """The module that runs one table entry alone, and its NCHW input shape (batch 1)."""
    from nas.model import build_block
    from nas.model.blocks import Head

    spec, shape = parse_table_key(key)
    if isinstance(spec, tuple):
        head, classes = spec
        module: nn.Module = Head(head, shape.c, classes)
    else:
        module = build_block(spec, shape)
    return module.eval(), (1, shape.c, shape.h, shape.w)


def call_probe_module() -> nn.Module:
    """A graph that does almost nothing: its run time is the per-call cost included in every entry."""
    import torch

    class AddOne(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + 1.0

    return AddOne()


def zoo_keys(names: Iterable[str] | None = None) -> list[str]:
    """Distinct keys of zoo models (all of them by default), in first-seen order."""
    from nas.zoo import ZOO, get_spec

    seen: dict[str, None] = {}
    for name in names if names is not None else ZOO:
        for k in arch_keys(get_spec(name)):
            seen.setdefault(k, None)
    return list(seen)


def space_keys(spaces: Iterable[str]) -> list[str]:
    """Distinct keys of search spaces (``nas.space.distinct_blocks``), in first-seen order."""
    names = list(spaces)
    if not names:
        return []
    space_mod = import_space()
    seen: dict[str, None] = {}
    for name in names:
        for k in space_mod.distinct_blocks(space_mod.load_space(name)):
            seen.setdefault(k, None)
    return list(seen)


def import_space() -> Any:
    """The search-space package, imported on first use (keeps ``import nas.latency`` light)."""
    import nas.space as space_mod

    return space_mod


def distinct_keys(spaces: Iterable[str] = (), include_zoo: bool = True) -> list[str]:
    """Keys of every distinct layer of the given spaces and (by default) of the zoo."""
    seen: dict[str, None] = {}
    for k in (zoo_keys() if include_zoo else []) + space_keys(spaces):
        seen.setdefault(k, None)
    return list(seen)


def check_key(key: str) -> str:
    """Validate a key (block/head key or arch string); returns it, raises ``SpecError``."""
    if is_model_key(key):
        from nas.spec import parse_arch

        parse_arch(key)
        return key
    parse_table_key(key)
    return key


__all__ = [
    "KEY_COLUMNS",
    "MODEL_KIND",
    "arch_features",
    "call_probe_module",
    "check_key",
    "distinct_keys",
    "is_model_key",
    "key_columns",
    "key_features",
    "key_macs",
    "key_module",
    "key_ops",
    "key_weight_bytes",
    "space_keys",
    "zoo_keys",
]
