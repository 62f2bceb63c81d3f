"""The spec language of mnv4-nas: frozen block and architecture specs, their DSL and file formats.

Everything downstream (builder, cost model, latency tables, search spaces, supernet, export) speaks
:class:`ArchSpec`. This package imports nothing else of mnv4-nas but ``nas.errors`` and the checking
layer ``nas.inputs`` (bounded, regular-file reads of spec files).
"""

from __future__ import annotations

from nas.spec.blocks import (
    ACTIVATIONS,
    BLOCK_TYPES,
    DW_KERNELS,
    MAX_BLOCKS,
    ArchSpec,
    BlockSpec,
    ConvSpec,
    DSConvSpec,
    FusedIBSpec,
    HeadSpec,
    Layer,
    MHSASpec,
    MQASpec,
    Shape,
    UIBSpec,
    make_divisible,
)
from nas.spec.dsl import (
    BLOCK_KINDS,
    MAX_ARCH_CHARS,
    arch_keys,
    block_key,
    format_arch,
    format_block,
    format_head,
    head_key,
    parse_arch,
    parse_block,
    parse_blocks,
    parse_head,
    parse_key,
)
from nas.spec.facts import block_columns, block_label
from nas.spec.io import (
    SPEC_FORMAT,
    from_json,
    from_toml,
    load_spec_file,
    save_spec,
    spec_from_dict,
    spec_to_dict,
    to_json,
    to_toml,
)

__all__ = [
    "ACTIVATIONS",
    "BLOCK_KINDS",
    "BLOCK_TYPES",
    "DW_KERNELS",
    "MAX_ARCH_CHARS",
    "MAX_BLOCKS",
    "SPEC_FORMAT",
    "ArchSpec",
    "arch_keys",
    "block_columns",
    "block_key",
    "block_label",
    "head_key",
    "parse_key",
    "BlockSpec",
    "ConvSpec",
    "DSConvSpec",
    "FusedIBSpec",
    "HeadSpec",
    "Layer",
    "MHSASpec",
    "MQASpec",
    "Shape",
    "UIBSpec",
    "format_arch",
    "format_block",
    "format_head",
    "from_json",
    "from_toml",
    "load_spec_file",
    "make_divisible",
    "parse_arch",
    "parse_block",
    "parse_blocks",
    "parse_head",
    "save_spec",
    "spec_from_dict",
    "spec_to_dict",
    "to_json",
    "to_toml",
]
