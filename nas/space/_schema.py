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

Each stage kind is one class in :mod:`nas.space._stages` behind the ``Stage`` protocol; this module
only reads the top-level keys and hands each ``[[stages]]`` table to the class its ``kind`` names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from nas.errors import ConfigError, SpecError
from nas.inputs import as_error, read_toml
from nas.space._base import Ctx, Decision, Geometry, Slot, UIBChoice, kernel_list, parse_choice
from nas.space._stages import Stage, stage_from_table
from nas.spec import ACTIVATIONS, ConvSpec, HeadSpec, Shape, block_key, head_key, parse_blocks, parse_head
from nas.spec.blocks import conv_out

Phase = Literal["joint", "coarse", "fine"]
PHASES: tuple[str, ...] = ("joint", "coarse", "fine")


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

    @property
    def fine_choices(self) -> tuple[UIBChoice, ...]:
        """Every UIB variant of the fine stage."""
        return tuple(UIBChoice(a, k, e) for a in self.start_dw for k in self.mid_dw for e in self.expansions)

    @cached_property
    def _choices(self) -> tuple[tuple[UIBChoice, ...], tuple[UIBChoice, ...]]:
        plain = self.fine_choices
        return plain, tuple(c for c in plain if c.has_dw)

    def block_choices(self, strided: bool) -> tuple[UIBChoice, ...]:
        """Variants allowed at one position (a stride-2 block must keep a DW to carry the stride)."""
        return self._choices[int(strided)]

    def widths(self, i: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(channel choices, depth choices) of searchable stage ``i`` in this phase."""
        st = self.stages[i]
        assert st.constant_blocks is None
        if self.fixed_widths is not None:
            fw = self.fixed_widths[i]
            assert fw is not None
            return (fw[0],), (fw[1],)
        return st.channels, st.depth  # type: ignore[attr-defined]

    @cached_property
    def decisions(self) -> tuple[Decision, ...]:
        """The flat decisions of this space and phase, in encoding order (single-option choices omitted)."""
        return tuple(d for i, st in enumerate(self.stages) for d in st.decisions(self, i))

    @cached_property
    def decision_index(self) -> dict[tuple[str, int, int], int]:
        """(kind, stage, index) of each decision → its position in the encoding."""
        return {(d.kind, d.stage, d.index): n for n, d in enumerate(self.decisions)}

    @cached_property
    def slots(self) -> list[Slot]:
        """Latency slots (see :func:`nas.space.slots`)."""
        return _build_slots(self)

    def __getstate__(self) -> dict[str, Any]:
        # Derived data (cached properties, slots hold closures) is rebuilt on demand after unpickling.
        return {f.name: self.__dict__[f.name] for f in fields(self)}

    def with_phase(self, phase: Phase, fixed_widths: tuple[tuple[int, int] | None, ...] | None = None) -> SearchSpace:
        """The same space in another phase."""
        return replace(self, phase=phase, fixed_widths=fixed_widths)

    def __str__(self) -> str:
        return f"{self.name} ({self.phase})"


# ----------------------------------------------------------------------------------------------
# TOML loading and validation
# ----------------------------------------------------------------------------------------------

_TOP_KEYS = {
    "name",
    "description",
    "reference",
    "resolution",
    "num_classes",
    "activation",
    "layer_scale",
    "stem",
    "head",
    "coarse",
    "fine",
    "stages",
}


def space_from_dict(data: dict[str, Any], source: str) -> SearchSpace:
    """Validate a parsed space file; every error names ``source`` and the key."""
    ctx = Ctx(source)
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
    coarse_block = parse_choice(ctx, coarse.get("block", "a0_k3_e4"), "coarse.block")
    start_dw = kernel_list(ctx, fine.get("start_dw", [0, 3, 5]), "fine.start_dw")
    mid_dw = kernel_list(ctx, fine.get("mid_dw", [0, 3, 5]), "fine.mid_dw")
    exps = fine.get("expansion", [4])
    if not isinstance(exps, list) or not exps:
        raise ctx.fail("fine.expansion", "empty choice list (allowed: a non-empty list of numbers in (0, 16])")
    for e in exps:
        if isinstance(e, bool) or not isinstance(e, (int, float)) or not 0 < e <= 16 or not math.isfinite(e):
            raise ctx.fail("fine.expansion", f"{e!r} not allowed (allowed: numbers in (0, 16])")
    if coarse_block.start not in start_dw or coarse_block.mid not in mid_dw:
        raise ctx.fail(
            "coarse.block",
            f"{coarse_block.label}: its kernels must be among the fine stage's "
            f"(start_dw {[k or 0 for k in start_dw]}, mid_dw {[k or 0 for k in mid_dw]})",
        )
    if not any(a is not None or k is not None for a in start_dw for k in mid_dw):
        raise ctx.fail("fine", "no variant has a depthwise conv, so no stage can downsample (allowed: add 3 or 5)")
    raw_stages = ctx.get(data, "stages", "")
    if not isinstance(raw_stages, list) or not raw_stages:
        raise ctx.fail("stages", "empty choice list (allowed: a non-empty array of [[stages]] tables)")
    stages = tuple(stage_from_table(ctx, t, i) for i, t in enumerate(raw_stages))
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


def _check_structure(ctx: Ctx, space: SearchSpace) -> None:
    """Stride pattern and stage boundaries (an arch must map to exactly one set of choices)."""
    strides = [space.stem.stride]
    prev: Stage | None = None
    for i, st in enumerate(space.stages):
        strides += st.strides()
        prev = st.check(ctx, space, i, prev)
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


def _build_slots(space: SearchSpace) -> list[Slot]:
    """The slots of :func:`slots`: the stem, each stage's, the head."""
    stem_in = Shape(space.resolution, space.resolution, 3)
    out: list[Slot] = [Slot("stem", (), (), lambda _v: block_key(space.stem, stem_in))]
    hw = conv_out(space.resolution, space.stem.stride)
    geo = Geometry(hw, hw, (space.stem.out_channels,))
    for i, st in enumerate(space.stages):
        stage_slots, geo = st.slots(space, i, geo)
        out += stage_slots
    head_deps = (geo.dep,) if geo.dep is not None else ()

    def head(vals: tuple[int, ...], g: Geometry = geo) -> str:
        return head_key(space.head, space.num_classes, Shape(g.h, g.w, g.channels[vals[0] if vals else 0]))

    out.append(Slot("head", head_deps, tuple(space.decisions[x].radix for x in head_deps), head))
    return out
