"""Search-space definitions: typed, frozen objects read from ``search_spaces/*.toml``.

A space is a fixed stem and head around a list of stages:

* ``fixed`` — blocks copied verbatim (e.g. Conv-S's four conv layers);
* ``fused`` — FusedIB blocks with searchable width and depth;
* ``uib`` — UIB blocks with searchable width, depth and per-block variant (start/middle DW kernel,
  expansion), optionally with Mobile MQA slots: MQA may precede each of the last ``slots`` UIBs
  (this is where every MobileNetV4 hybrid places its attention).

The same space object also carries its *phase*: ``joint`` (everything searchable), ``coarse``
(width/depth only, every UIB fixed to the coarse block, no attention) or ``fine`` (width/depth fixed
to a coarse result, variants and attention searchable).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Union

from nas.errors import ConfigError, SpecError
from nas.inputs import as_error, read_toml
from nas.spec import ACTIVATIONS, DW_KERNELS, BlockSpec, ConvSpec, HeadSpec, MQASpec, UIBSpec, parse_blocks, parse_head

Phase = Literal["joint", "coarse", "fine"]
PHASES: tuple[str, ...] = ("joint", "coarse", "fine")


@dataclass(frozen=True)
class UIBChoice:
    """One UIB variant: start/middle DW kernels (``None`` = absent) and expansion."""

    start: int | None
    mid: int | None
    expansion: float

    @property
    def label(self) -> str:
        """Stable name in timm letters, e.g. ``a3_k5_e4``."""
        e = int(self.expansion) if float(self.expansion).is_integer() else self.expansion
        return f"a{self.start or 0}_k{self.mid or 0}_e{e}"

    @property
    def has_dw(self) -> bool:
        """Whether a depthwise conv can carry a stride of 2."""
        return self.start is not None or self.mid is not None

    def block(self, out_channels: int, stride: int, activation: str, layer_scale: bool) -> UIBSpec:
        """The UIB spec of this variant."""
        return UIBSpec(out_channels, self.start, self.mid, self.expansion, stride, None, activation, layer_scale)

    @classmethod
    def of(cls, b: UIBSpec) -> UIBChoice:
        """The variant of a UIB spec."""
        return cls(b.start_dw_kernel, b.mid_dw_kernel, b.expansion)


@dataclass(frozen=True)
class Attention:
    """Mobile MQA slots of a UIB stage (heads/dims fixed; presence per slot searchable)."""

    slots: int
    heads: int
    key_dim: int
    value_dim: int
    kv_stride: int
    dw_kernel: int = 3

    def block(self, channels: int, layer_scale: bool) -> MQASpec:
        """The MQA spec at a stage width."""
        return MQASpec(
            channels, self.heads, self.key_dim, self.value_dim, self.kv_stride, 1, self.dw_kernel, layer_scale
        )


@dataclass(frozen=True)
class FixedStage:
    """Blocks copied verbatim into every member."""

    blocks: tuple[BlockSpec, ...]
    kind: Literal["fixed"] = "fixed"


@dataclass(frozen=True)
class FusedStage:
    """FusedIB blocks: searchable width and depth."""

    stride: int
    channels: tuple[int, ...]
    depth: tuple[int, ...]
    kernel: int = 3
    expansion: float = 4.0
    kind: Literal["fused"] = "fused"


@dataclass(frozen=True)
class UIBStage:
    """UIB blocks: searchable width, depth, per-block variant and optional MQA slots."""

    stride: int
    channels: tuple[int, ...]
    depth: tuple[int, ...]
    attention: Attention | None = None
    kind: Literal["uib"] = "uib"

    def mqa_positions(self, depth: int) -> list[int]:
        """UIB indices an MQA may precede at this depth (never the stage's first, strided block)."""
        if self.attention is None:
            return []
        return [p for p in range(depth - self.attention.slots, depth) if p >= 1]


Stage = Union[FixedStage, FusedStage, UIBStage]


@dataclass(frozen=True)
class SearchSpace:
    """A search space (see the module docstring). Build with :func:`load_space`."""

    name: str
    description: str
    resolution: int
    num_classes: int
    activation: str
    layer_scale: bool
    stem: ConvSpec
    head: HeadSpec
    stages: tuple[Stage, ...]
    coarse_block: UIBChoice
    start_dw: tuple[int | None, ...]
    mid_dw: tuple[int | None, ...]
    expansions: tuple[float, ...]
    reference: str | None = None
    source: str = "<memory>"
    phase: Phase = "joint"
    #: fine phase: (channels, depth) per stage (None for fixed stages) from the coarse result
    fixed_widths: tuple[tuple[int, int] | None, ...] | None = None
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False, hash=False)

    @property
    def fine_choices(self) -> tuple[UIBChoice, ...]:
        """Every UIB variant of the fine stage."""
        return tuple(UIBChoice(a, k, e) for a in self.start_dw for k in self.mid_dw for e in self.expansions)

    def block_choices(self, strided: bool) -> tuple[UIBChoice, ...]:
        """Variants allowed at one position (a stride-2 block must keep a DW to carry the stride)."""
        key = f"choices{int(strided)}"
        if key not in self._cache:
            self._cache[key] = tuple(c for c in self.fine_choices if c.has_dw or not strided)
        return self._cache[key]  # type: ignore[no-any-return]

    def widths(self, i: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(channel choices, depth choices) of stage ``i`` in this phase."""
        st = self.stages[i]
        assert not isinstance(st, FixedStage)
        if self.fixed_widths is not None:
            fw = self.fixed_widths[i]
            assert fw is not None
            return (fw[0],), (fw[1],)
        return st.channels, st.depth

    def __getstate__(self) -> dict[str, Any]:
        # The cache holds closures (slots); it is derived data, rebuilt on demand after unpickling.
        return {**self.__dict__, "_cache": {}}

    def with_phase(self, phase: Phase, fixed_widths: tuple[tuple[int, int] | None, ...] | None = None) -> SearchSpace:
        """The same space in another phase."""
        return replace(self, phase=phase, fixed_widths=fixed_widths, _cache={})

    def __str__(self) -> str:
        return f"{self.name} ({self.phase})"


# ----------------------------------------------------------------------------------------------
# TOML loading and validation
# ----------------------------------------------------------------------------------------------

_TOP_KEYS = {
    "name", "description", "reference", "resolution", "num_classes", "activation", "layer_scale",
    "stem", "head", "coarse", "fine", "stages",
}  # fmt: skip
_STAGE_KEYS = {
    "fixed": {"kind", "blocks"},
    "fused": {"kind", "stride", "channels", "depth", "kernel", "expansion"},
    "uib": {"kind", "stride", "channels", "depth", "attention"},
}
_ATTN_KEYS = {"slots", "heads", "key_dim", "value_dim", "kv_stride", "dw_kernel"}


class _Ctx:
    """Error helper: every message names the file and the key."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, msg: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {msg}")

    def check_keys(self, table: dict[str, Any], allowed: set[str], where: str) -> None:
        for k in table:
            if k not in allowed:
                raise self.fail(f"{where}{k}", f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def get(self, table: dict[str, Any], key: str, where: str, default: Any = ...) -> Any:
        if key not in table:
            if default is ...:
                raise self.fail(f"{where}{key}", "missing key")
            return default
        return table[key]

    def int_(self, v: Any, key: str, lo: int = 1, hi: int = 10**6, what: str = "") -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            allowed = what or f"an integer in [{lo}, {hi}]"
            raise self.fail(key, f"must be {allowed} (got {v!r})")
        return v

    def int_list(
        self, v: Any, key: str, lo: int = 1, hi: int = 10**6, mult: int = 1, what: str = ""
    ) -> tuple[int, ...]:
        if not isinstance(v, list):
            raise self.fail(key, f"must be a list (got {v!r})")
        if not v:
            raise self.fail(key, f"empty choice list (allowed: a non-empty list of {what or 'integers'})")
        out = []
        for x in v:
            self.int_(x, key, lo, hi, what=what or f"an integer in [{lo}, {hi}]")
            if x % mult:
                raise self.fail(
                    key, f"channel choice {x} is not divisible by {mult} (allowed: positive multiples of {mult})"
                )
            out.append(x)
        if len(set(out)) != len(out):
            raise self.fail(key, f"duplicate choices in {v!r}")
        return tuple(out)


def _kernel_list(ctx: _Ctx, v: Any, key: str) -> tuple[int | None, ...]:
    allowed = "0 (absent), " + ", ".join(map(str, DW_KERNELS))
    if not isinstance(v, list) or not v:
        raise ctx.fail(key, f"empty choice list (allowed: a non-empty list of {allowed})")
    out: list[int | None] = []
    for x in v:
        if isinstance(x, bool) or x not in (0, *DW_KERNELS):
            raise ctx.fail(key, f"kernel {x!r} not allowed (allowed: {allowed})")
        out.append(None if x == 0 else x)
    if len(set(out)) != len(out):
        raise ctx.fail(key, f"duplicate choices in {v!r}")
    return tuple(out)


def _parse_choice(ctx: _Ctx, text: Any, key: str) -> UIBChoice:
    import re

    m = (
        re.fullmatch(r"a([0-9]{1,2})_k([0-9]{1,2})_e([0-9]{1,3}(?:\.[0-9]{1,6})?)", text)
        if isinstance(text, str)
        else None
    )
    if m is None:
        raise ctx.fail(key, f"must look like 'a0_k3_e4' (start DW, middle DW, expansion; got {text!r})")
    a, k, e = int(m.group(1)), int(m.group(2)), float(m.group(3))
    try:
        UIBSpec(8, a or None, k or None, e)
    except SpecError as exc:
        raise ctx.fail(key, str(exc)) from None
    return UIBChoice(a or None, k or None, e)


def _parse_stage(ctx: _Ctx, t: Any, i: int) -> Stage:
    where = f"stages[{i}]."
    if not isinstance(t, dict):
        raise ctx.fail(f"stages[{i}]", "must be a table")
    kind = ctx.get(t, "kind", where)
    if not isinstance(kind, str) or kind not in _STAGE_KEYS:
        raise ctx.fail(f"{where}kind", f"must be one of fixed, fused, uib (got {kind!r})")
    ctx.check_keys(t, _STAGE_KEYS[kind], where)
    if kind == "fixed":
        raw = ctx.get(t, "blocks", where)
        if not isinstance(raw, list) or not raw:
            raise ctx.fail(f"{where}blocks", "empty choice list (allowed: a non-empty list of block strings)")
        blocks: list[BlockSpec] = []
        for j, b in enumerate(raw):
            try:
                blocks.extend(parse_blocks(b))
            except SpecError as exc:
                raise ctx.fail(f"{where}blocks[{j}]", str(exc)) from None
        return FixedStage(tuple(blocks))
    stride = ctx.get(t, "stride", where)
    if isinstance(stride, bool) or stride not in (1, 2):
        raise ctx.fail(f"{where}stride", f"must be one of 1, 2 (got {stride!r})")
    channels = ctx.int_list(ctx.get(t, "channels", where), f"{where}channels", 8, 16384, mult=8, what="multiples of 8")
    depth = ctx.int_list(ctx.get(t, "depth", where), f"{where}depth", 1, 64, what="integers in [1, 64]")
    if kind == "fused":
        kernel = ctx.get(t, "kernel", where, 3)
        if isinstance(kernel, bool) or kernel not in (1, 3, 5, 7):
            raise ctx.fail(f"{where}kernel", f"must be one of 1, 3, 5, 7 (got {kernel!r})")
        exp = ctx.get(t, "expansion", where, 4)
        if isinstance(exp, bool) or not isinstance(exp, (int, float)) or not 0 < exp <= 16:
            raise ctx.fail(f"{where}expansion", f"must be a number in (0, 16] (got {exp!r})")
        return FusedStage(stride, channels, depth, kernel, float(exp))
    attn = None
    if "attention" in t:
        a = t["attention"]
        if not isinstance(a, dict):
            raise ctx.fail(f"{where}attention", "must be a table")
        aw = f"{where}attention."
        ctx.check_keys(a, _ATTN_KEYS, aw)
        key_dim = ctx.int_(ctx.get(a, "key_dim", aw), f"{aw}key_dim", 1, 1024)
        kv = ctx.get(a, "kv_stride", aw, 1)
        if isinstance(kv, bool) or kv not in (1, 2, 4):
            raise ctx.fail(f"{aw}kv_stride", f"must be one of 1, 2, 4 (got {kv!r})")
        dwk = ctx.get(a, "dw_kernel", aw, 3)
        if isinstance(dwk, bool) or dwk not in DW_KERNELS:
            raise ctx.fail(f"{aw}dw_kernel", f"must be one of {', '.join(map(str, DW_KERNELS))} (got {dwk!r})")
        attn = Attention(
            slots=ctx.int_(ctx.get(a, "slots", aw), f"{aw}slots", 1, 64),
            heads=ctx.int_(ctx.get(a, "heads", aw), f"{aw}heads", 1, 64),
            key_dim=key_dim,
            value_dim=ctx.int_(ctx.get(a, "value_dim", aw, key_dim), f"{aw}value_dim", 1, 1024),
            kv_stride=kv,
            dw_kernel=dwk,
        )
    if attn is not None and attn.slots > max(depth) - 1:
        # an MQA never precedes a stage's first block, so a stage of at most D blocks has D - 1 slots
        raise ctx.fail(f"{where}attention.slots", f"{attn.slots} exceeds the {max(depth) - 1} MQA position(s) of a stage "
                       f"of at most {max(depth)} blocks (an MQA never precedes the first; allowed: 1 to {max(depth) - 1})")  # fmt: skip
    return UIBStage(stride, channels, depth, attn)


def space_from_dict(data: dict[str, Any], source: str) -> SearchSpace:
    """Validate a parsed space file; every error names ``source`` and the key."""
    ctx = _Ctx(source)
    ctx.check_keys(data, _TOP_KEYS, "")
    name = ctx.get(data, "name", "")
    if not isinstance(name, str) or not name:
        raise ctx.fail("name", "must be a non-empty string")
    resolution = ctx.int_(ctx.get(data, "resolution", ""), "resolution", 1, 4096, "a positive integer ≤ 4096")
    num_classes = ctx.int_(ctx.get(data, "num_classes", "", 1000), "num_classes", 1, 10**6)
    activation = ctx.get(data, "activation", "", "relu")
    if activation not in ACTIVATIONS:
        raise ctx.fail("activation", f"must be one of {', '.join(ACTIVATIONS)} (got {activation!r})")
    layer_scale = ctx.get(data, "layer_scale", "", False)
    if not isinstance(layer_scale, bool):
        raise ctx.fail("layer_scale", f"must be true or false (got {layer_scale!r})")
    try:
        stem_blocks = parse_blocks(ctx.get(data, "stem", ""))
    except SpecError as exc:
        raise ctx.fail("stem", str(exc)) from None
    if len(stem_blocks) != 1 or not isinstance(stem_blocks[0], ConvSpec):
        raise ctx.fail("stem", "must be a single cn block, e.g. cn_r1_k3_s2_c32")
    head_text = ctx.get(data, "head", "")
    if not isinstance(head_text, str):
        raise ctx.fail("head", "must be a head string, e.g. head_c960_h1280")
    if "_cls" not in head_text:
        head_text = f"{head_text}_cls{num_classes}"
    try:
        head, classes = parse_head(head_text)
    except SpecError as exc:
        raise ctx.fail("head", str(exc)) from None
    if classes != num_classes:
        raise ctx.fail("head", f"cls{classes} disagrees with num_classes = {num_classes}")
    coarse = ctx.get(data, "coarse", "", {})
    fine = ctx.get(data, "fine", "", {})
    for tbl, nm, allowed in ((coarse, "coarse", {"block"}), (fine, "fine", {"start_dw", "mid_dw", "expansion"})):
        if not isinstance(tbl, dict):
            raise ctx.fail(nm, "must be a table")
        ctx.check_keys(tbl, allowed, f"{nm}.")
    coarse_block = _parse_choice(ctx, coarse.get("block", "a0_k3_e4"), "coarse.block")
    start_dw = _kernel_list(ctx, fine.get("start_dw", [0, 3, 5]), "fine.start_dw")
    mid_dw = _kernel_list(ctx, fine.get("mid_dw", [0, 3, 5]), "fine.mid_dw")
    exps = fine.get("expansion", [4])
    if not isinstance(exps, list) or not exps:
        raise ctx.fail("fine.expansion", "empty choice list (allowed: a non-empty list of numbers in (0, 16])")
    for e in exps:
        if isinstance(e, bool) or not isinstance(e, (int, float)) or not 0 < e <= 16 or not math.isfinite(e):
            raise ctx.fail("fine.expansion", f"{e!r} not allowed (allowed: numbers in (0, 16])")
    if coarse_block.start not in start_dw or coarse_block.mid not in mid_dw:
        raise ctx.fail("coarse.block", f"{coarse_block.label}: its kernels must be among the fine stage's "
                       f"(start_dw {[k or 0 for k in start_dw]}, mid_dw {[k or 0 for k in mid_dw]})")  # fmt: skip
    if not any(a is not None or k is not None for a in start_dw for k in mid_dw):
        raise ctx.fail("fine", "no variant has a depthwise conv, so no stage can downsample (allowed: add 3 or 5)")
    raw_stages = ctx.get(data, "stages", "")
    if not isinstance(raw_stages, list) or not raw_stages:
        raise ctx.fail("stages", "empty choice list (allowed: a non-empty array of [[stages]] tables)")
    stages = tuple(_parse_stage(ctx, t, i) for i, t in enumerate(raw_stages))
    ref = data.get("reference")
    if ref is not None and not isinstance(ref, str):
        raise ctx.fail("reference", f"must be a zoo model name (got {ref!r})")
    space = SearchSpace(
        name=name,
        description=str(data.get("description", "")),
        resolution=resolution,
        num_classes=num_classes,
        activation=activation,
        layer_scale=layer_scale,
        stem=stem_blocks[0],
        head=head,
        stages=stages,
        coarse_block=coarse_block,
        start_dw=start_dw,
        mid_dw=mid_dw,
        expansions=tuple(float(e) for e in exps),
        reference=ref,
        source=source,
    )
    _check_structure(ctx, space)
    return space


def _check_structure(ctx: _Ctx, space: SearchSpace) -> None:
    """Stride pattern and stage boundaries (an arch must map to exactly one set of choices)."""
    strides = [space.stem.stride]
    prev_searchable: Stage | None = None
    for i, st in enumerate(space.stages):
        if isinstance(st, FixedStage):
            strides += [b.stride for b in st.blocks]
            prev_searchable = None
            continue
        strides.append(st.stride)
        if isinstance(st, UIBStage) and st.stride == 2 and not space.block_choices(True):
            raise ctx.fail(f"stages[{i}].stride", "stride 2 needs a variant with a depthwise conv in [fine]")
        if prev_searchable is not None and st.stride == 1 and st.kind == prev_searchable.kind:
            overlap = set(st.channels) & set(prev_searchable.channels)
            if overlap:
                raise ctx.fail(
                    f"stages[{i}].channels",
                    f"a stride-1 {st.kind} stage right after another must not share channel choices with it "
                    f"({sorted(overlap)} shared): the stage boundary would be ambiguous",
                )
        prev_searchable = st
    n2 = sum(1 for s in strides if s == 2)
    if space.resolution < 2**n2:
        raise ctx.fail(
            "resolution",
            f"{space.resolution} is too small for {n2} stride-2 layers: the feature map would be smaller than 1x1 "
            f"(allowed: resolution >= {2**n2})",
        )


#: Largest space file read.
MAX_SPACE_BYTES = 2**20


def load_space_file(path: str | Path) -> SearchSpace:
    """Read and validate a space TOML file (a regular file of at most 1 MiB)."""
    p = Path(path)
    with as_error(ConfigError):
        data = read_toml(p, "search-space file", MAX_SPACE_BYTES)
    return space_from_dict(data, str(p))
