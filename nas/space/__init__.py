"""Search spaces: MobileNetV4 UIB/MQA spaces as data, coarse and fine stages, sampling and encoding.

Shipped spaces live in ``search_spaces/*.toml``; any path to a TOML file with the same schema works
wherever a space name is accepted (see the README for the schema).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from nas.errors import ConfigError
from nas.inputs import path_exists
from nas.resources import data_dir
from nas.space._base import Attention, Decision, Geometry, Position, Slot, UIBChoice
from nas.space._ops import (
    active_mask,
    arch_slot_keys,
    canonical,
    coarse_space,
    contains,
    decisions,
    decode,
    distinct_blocks,
    encode,
    fix_coarse,
    joint_space,
    log10_size,
    sample,
    sample_coarse,
    sample_distinct,
    sample_vectors,
    size,
    slots,
    widths_of,
)
from nas.space._optuna import arch_from_params, params_from_arch, suggest, vector_from_params
from nas.space._schema import PHASES, SearchSpace, load_space_file, space_from_dict
from nas.space._serialize import space_from_meta, space_meta, space_to_dict
from nas.space._stages import STAGE_KINDS, FixedStage, FusedStage, Stage, UIBStage, register_stage


def list_spaces() -> list[str]:
    """Names of the shipped spaces."""
    return sorted(p.stem for p in data_dir("search_spaces").glob("*.toml"))


@cache
def _load_shipped(name: str) -> SearchSpace:
    return load_space_file(data_dir("search_spaces") / f"{name}.toml")


def load_space(name_or_path: str | Path) -> SearchSpace:
    """A shipped space by name, or a user's space file by path (joint phase)."""
    text = str(name_or_path)
    if not text.strip():
        raise ConfigError("search space: empty name (give a shipped space name or a .toml path)")
    if text in list_spaces():
        return _load_shipped(text)
    p = Path(text)
    if p.suffix.lower() == ".toml" or path_exists(p):
        return load_space_file(p)
    raise ConfigError(f"unknown search space {text!r} (shipped: {', '.join(list_spaces())}; or a path to a .toml file)")


__all__ = [
    "PHASES",
    "STAGE_KINDS",
    "Attention",
    "Decision",
    "FixedStage",
    "FusedStage",
    "Geometry",
    "Position",
    "SearchSpace",
    "Slot",
    "Stage",
    "UIBChoice",
    "UIBStage",
    "active_mask",
    "arch_from_params",
    "arch_slot_keys",
    "canonical",
    "coarse_space",
    "contains",
    "decisions",
    "decode",
    "distinct_blocks",
    "encode",
    "fix_coarse",
    "joint_space",
    "list_spaces",
    "load_space",
    "load_space_file",
    "log10_size",
    "params_from_arch",
    "sample",
    "sample_distinct",
    "sample_coarse",
    "sample_vectors",
    "size",
    "register_stage",
    "slots",
    "space_from_dict",
    "space_from_meta",
    "space_meta",
    "space_to_dict",
    "suggest",
    "vector_from_params",
    "widths_of",
]
