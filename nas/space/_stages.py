"""Stage kinds of a search space: one class per kind behind the :class:`Stage` protocol.

A stage owns everything that depends on its kind: how it reads from and writes to a space file, its
decisions, the blocks of a member from chosen values (and back), its exact size, its latency slots,
its supernet storage positions and its row in ``mnv4-nas space show``. Code outside this module
calls these methods and never asks which kind a stage is. A new stage kind is a new class here,
decorated with :func:`register_stage`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import numpy as np

from nas.errors import SpecError
from nas.space._base import Attention, Ctx, Decision, Encoder, Geometry, Position, Slot, UIBChoice, Values
from nas.spec import (
    DW_KERNELS,
    BlockSpec,
    FusedIBSpec,
    MQASpec,
    Shape,
    UIBSpec,
    block_key,
    format_block,
    make_divisible,
    parse_blocks,
)
from nas.spec.blocks import conv_out

if TYPE_CHECKING:
    from nas.space._schema import SearchSpace

#: block → (channel index, variant index) for a stage's first block and for its others, and Mobile
#: MQA block → channel index: every block a member can have in a searchable stage
Lookup = tuple[dict[Any, tuple[int, int]], dict[Any, tuple[int, int]], dict[Any, int]]


class Stage(Protocol):
    """What the space, the supernet and the CLI need from a stage (``i`` is its index in the space)."""

    kind: str
    #: block types of a run of this stage (a searchable stage is the run of them at one width)
    RUN_TYPES: ClassVar[tuple[type, ...]]

    @property
    def constant_blocks(self) -> tuple[BlockSpec, ...] | None:
        """The blocks every member has here, or None for a searchable stage."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """The stage's ``[[stages]]`` table of the space schema."""
        ...

    def strides(self) -> tuple[int, ...]:
        """Strides of its layers that every member has (a searchable stage: its first block's)."""
        ...

    def check(self, ctx: Ctx, space: SearchSpace, i: int, prev: Stage | None) -> Stage | None:
        """Check the stage in its space (``prev``: the searchable stage right before, or None);
        returns what the next stage compares with."""
        ...

    def decisions(self, space: SearchSpace, i: int) -> list[Decision]:
        """Its decisions in the space's phase, in encoding order."""
        ...

    def decode(self, space: SearchSpace, i: int, vals: Values) -> list[BlockSpec]:
        """The member's blocks here for the decision values ``vals``."""
        ...

    def encode(self, space: SearchSpace, i: int, blocks: Sequence[BlockSpec], pos: int, enc: Encoder) -> int:
        """Read the stage's blocks from ``blocks[pos:]`` into ``enc``; returns the position after them."""
        ...

    def active(self, dec: Decision, depth: np.ndarray) -> np.ndarray | None:
        """Whether its block-level decision ``dec`` matters at each chosen ``depth``; None: always."""
        ...

    def size(self, space: SearchSpace, i: int) -> int:
        """Number of different stage contents in the space's phase."""
        ...

    def chosen_widths(self, vals: Values, i: int) -> tuple[int, int] | None:
        """(channels, depth) chosen, or None for a fixed stage."""
        ...

    def slots(self, space: SearchSpace, i: int, geo: Geometry) -> tuple[list[Slot], Geometry]:
        """Its latency slots for input ``geo``, and the geometry it hands on."""
        ...

    def positions(self, space: SearchSpace, i: int, geo: Geometry) -> tuple[list[Position], Geometry]:
        """Its supernet storage positions for inputs of any width in ``geo.channels`` (covering the
        joint and coarse phases), and the geometry it hands on."""
        ...

    def position_keys(self, i: int, width: tuple[int, int] | None, specs: Sequence[BlockSpec]) -> list[str]:
        """Storage keys of the member's leading ``specs`` that belong to this stage (``width``: its
        chosen (channels, depth))."""
        ...

    def lookups(self, space: SearchSpace, i: int) -> Lookup | None:
        """Every block a member can have here by its choice indices (None for a fixed stage)."""
        ...

    def mqa_positions(self, depth: int) -> list[int]:
        """Block indices a Mobile MQA may precede at ``depth``."""
        ...

    def mqa_slot(self, u: int, depth: int) -> int:
        """Slot index (``mqa`` decision index) of an MQA before block ``u`` at ``depth``."""
        ...

    def narrow(self, kind: str, value: int) -> Stage:
        """The stage with its ``channels`` or ``depth`` choices narrowed to ``value``."""
        ...

    def describe(self) -> dict[str, Any]:
        """Its row in ``mnv4-nas space show`` (stride, channels, depth, attention…)."""
        ...


#: stage kind → class (the ``kind`` of a ``[[stages]]`` table), in registration order
STAGE_KINDS: dict[str, type] = {}


def register_stage(cls: type) -> type:
    """Class decorator: make a stage class readable from space files under its ``kind``."""
    STAGE_KINDS[cls.kind] = cls  # type: ignore[attr-defined]
    return cls


def stage_from_table(ctx: Ctx, t: Any, i: int) -> Stage:
    """The stage of a ``[[stages]]`` table, by its ``kind``."""
    where = f"stages[{i}]."
    if not isinstance(t, dict):
        raise ctx.fail(f"stages[{i}]", "must be a table")
    kind = ctx.get(t, "kind", where)
    if not isinstance(kind, str) or kind not in STAGE_KINDS:
        raise ctx.fail(f"{where}kind", f"must be one of {', '.join(STAGE_KINDS)} (got {kind!r})")
    cls = STAGE_KINDS[kind]
    ctx.check_keys(t, cls.KEYS, where)  # type: ignore[attr-defined]
    return cls.from_table(ctx, t, where)  # type: ignore[attr-defined,no-any-return]


# ----------------------------------------------------------------------------------------------
# fixed
# ----------------------------------------------------------------------------------------------


@register_stage
@dataclass(frozen=True)
class FixedStage:
    """Blocks copied verbatim into every member."""

    blocks: tuple[BlockSpec, ...]
    kind: Literal["fixed"] = "fixed"
    KEYS: ClassVar[set[str]] = {"kind", "blocks"}
    RUN_TYPES: ClassVar[tuple[type, ...]] = ()

    @classmethod
    def from_table(cls, ctx: Ctx, t: dict[str, Any], where: str) -> FixedStage:
        """Read a ``kind = "fixed"`` table."""
        raw = ctx.get(t, "blocks", where)
        if not isinstance(raw, list) or not raw:
            raise ctx.fail(f"{where}blocks", "empty choice list (allowed: a non-empty list of block strings)")
        blocks: list[BlockSpec] = []
        for j, b in enumerate(raw):
            try:
                blocks.extend(parse_blocks(b))
            except SpecError as exc:
                raise ctx.fail(f"{where}blocks[{j}]", str(exc)) from None
        return cls(tuple(blocks))

    @property
    def constant_blocks(self) -> tuple[BlockSpec, ...] | None:
        """The blocks every member has here."""
        return self.blocks

    def to_dict(self) -> dict[str, Any]:
        """The stage's ``[[stages]]`` table."""
        return {"kind": "fixed", "blocks": [format_block(b) for b in self.blocks]}

    def strides(self) -> tuple[int, ...]:
        """Strides of its blocks."""
        return tuple(b.stride for b in self.blocks)

    def check(self, ctx: Ctx, space: SearchSpace, i: int, prev: Stage | None) -> Stage | None:
        """Nothing to check; it separates the searchable stages around it."""
        return None

    def decisions(self, space: SearchSpace, i: int) -> list[Decision]:
        """None."""
        return []

    def decode(self, space: SearchSpace, i: int, vals: Values) -> list[BlockSpec]:
        """The fixed blocks."""
        return list(self.blocks)

    def encode(self, space: SearchSpace, i: int, blocks: Sequence[BlockSpec], pos: int, enc: Encoder) -> int:
        """Check that the member has the fixed blocks at ``pos``."""
        if tuple(blocks[pos : pos + len(self.blocks)]) != self.blocks:
            raise enc.fail(f"stage {i}: fixed blocks differ")
        return pos + len(self.blocks)

    def active(self, dec: Decision, depth: np.ndarray) -> np.ndarray | None:
        """No decisions."""
        return None

    def size(self, space: SearchSpace, i: int) -> int:
        """One content."""
        return 1

    def chosen_widths(self, vals: Values, i: int) -> tuple[int, int] | None:
        """None: nothing chosen."""
        return None

    def slots(self, space: SearchSpace, i: int, geo: Geometry) -> tuple[list[Slot], Geometry]:
        """One slot per block; a block whose input width depends on an earlier stage's width depends
        on that stage's channels decision."""
        shapes = [Shape(geo.h, geo.w, c) for c in geo.channels]
        out = []
        for j, b in enumerate(self.blocks):
            out.append(_shape_slot(space, f"stage{i}.fixed{j}", b, tuple(shapes), geo.dep))
            shapes = [b.out_shape(s) for s in shapes]
        if len(set(shapes)) > 1:
            return out, Geometry(shapes[0].h, shapes[0].w, tuple(s.c for s in shapes), geo.dep)
        return out, Geometry(shapes[0].h, shapes[0].w, (shapes[0].c,))

    def positions(self, space: SearchSpace, i: int, geo: Geometry) -> tuple[list[Position], Geometry]:
        """One position per block, stored for the widest input."""
        h, w, in_cs = geo.h, geo.w, geo.channels
        out = []
        for j, b in enumerate(self.blocks):
            inp = Shape(h, w, max(in_cs))
            out.append(Position(f"s{i}_fixed{j}", b, inp, tuple((b, Shape(h, w, c)) for c in in_cs)))
            nxt = b.out_shape(inp)
            h, w, in_cs = nxt.h, nxt.w, (nxt.c,)
        return out, Geometry(h, w, in_cs)

    def position_keys(self, i: int, width: tuple[int, int] | None, specs: Sequence[BlockSpec]) -> list[str]:
        """``s{i}_fixed{j}`` per block."""
        return [f"s{i}_fixed{j}" for j in range(len(self.blocks))]

    def lookups(self, space: SearchSpace, i: int) -> Lookup | None:
        """None: compare :attr:`constant_blocks`."""
        return None

    def mqa_positions(self, depth: int) -> list[int]:
        """None."""
        return []

    def mqa_slot(self, u: int, depth: int) -> int:
        """A fixed stage has no MQA slots."""
        raise SpecError("a fixed stage has no MQA slots")

    def narrow(self, kind: str, value: int) -> Stage:
        """A fixed stage has nothing to narrow."""
        raise SpecError(f"a fixed stage has no {kind} choices")

    def describe(self) -> dict[str, Any]:
        """Its blocks."""
        return {
            "stride": "-",
            "channels": "-",
            "depth": len(self.blocks),
            "attention": "-",
            "blocks": [format_block(b) for b in self.blocks],
        }


def _shape_slot(space: SearchSpace, name: str, b: BlockSpec, shapes: tuple[Shape, ...], dep: int | None) -> Slot:
    """Slot of a constant block whose input shape is ``shapes[value of dep]``."""
    if len(set(shapes)) == 1 or dep is None:
        return Slot(name, (), (), partial(_key_at, b, shapes[:1]))
    return Slot(name, (dep,), (space.decisions[dep].radix,), partial(_key_at, b, shapes))


def _key_at(b: BlockSpec, shapes: tuple[Shape, ...], vals: tuple[int, ...]) -> str:
    return block_key(b, shapes[vals[0] if vals else 0])


# ----------------------------------------------------------------------------------------------
# searchable stages: width and depth
# ----------------------------------------------------------------------------------------------


class _Searchable(ABC):
    """Width and depth handling shared by the searchable stages (fields ``stride``, ``channels``,
    ``depth``; subclasses add their block's own choices)."""

    kind: str
    stride: int
    channels: tuple[int, ...]
    depth: tuple[int, ...]
    #: block types of a run of this stage (a stage is the run of them at one width)
    RUN_TYPES: ClassVar[tuple[type, ...]]
    KEYS: ClassVar[set[str]]

    @staticmethod
    def common(ctx: Ctx, t: dict[str, Any], where: str) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
        """(stride, channels, depth) of a searchable stage's table."""
        stride = ctx.get(t, "stride", where)
        if isinstance(stride, bool) or stride not in (1, 2):
            raise ctx.fail(f"{where}stride", f"must be one of 1, 2 (got {stride!r})")
        channels = ctx.int_list(
            ctx.get(t, "channels", where), f"{where}channels", 8, 16384, mult=8, what="multiples of 8"
        )
        depth = ctx.int_list(ctx.get(t, "depth", where), f"{where}depth", 1, 64, what="integers in [1, 64]")
        return stride, channels, depth

    @property
    def constant_blocks(self) -> tuple[BlockSpec, ...] | None:
        """None: searchable."""
        return None

    def to_dict(self) -> dict[str, Any]:
        """The stage's ``[[stages]]`` table."""
        return {"kind": self.kind, "stride": self.stride, "channels": list(self.channels), "depth": list(self.depth)}

    def strides(self) -> tuple[int, ...]:
        """The first block's stride."""
        return (self.stride,)

    def check(self, ctx: Ctx, space: SearchSpace, i: int, prev: Stage | None) -> Stage | None:
        """A stride-1 stage right after one of its kind must not share channel choices with it."""
        if prev is not None and self.stride == 1 and self.kind == prev.kind:
            overlap = set(self.channels) & set(prev.channels)  # type: ignore[attr-defined]
            if overlap:
                raise ctx.fail(
                    f"stages[{i}].channels",
                    f"a stride-1 {self.kind} stage right after another must not share channel choices with it "
                    f"({sorted(overlap)} shared): the stage boundary would be ambiguous",
                )
        return self  # type: ignore[return-value]

    def decisions(self, space: SearchSpace, i: int) -> list[Decision]:
        """Width and depth (when they have several options), then the block-level decisions."""
        channels, depths = space.widths(i)
        out = []
        if len(channels) > 1:
            out.append(Decision(f"stage{i}.channels", "channels", i, -1, channels))
        if len(depths) > 1:
            out.append(Decision(f"stage{i}.depth", "depth", i, -1, depths))
        return out + self.block_decisions(space, i, depths)

    def block_decisions(self, space: SearchSpace, i: int, depths: tuple[int, ...]) -> list[Decision]:
        """Decisions of its blocks (none by default)."""
        return []

    def active(self, dec: Decision, depth: np.ndarray) -> np.ndarray | None:
        """Always active (no block-level decisions by default)."""
        return None

    def chosen_widths(self, vals: Values, i: int) -> tuple[int, int] | None:
        """(channels, depth) chosen."""
        return vals.widths(i)

    @abstractmethod
    def block(self, space: SearchSpace, c: int, j: int, variant: int) -> BlockSpec:
        """Block ``j`` at width ``c`` with option index ``variant`` of its own decision."""

    def variant_dep(self, space: SearchSpace, i: int, j: int) -> int | None:
        """The decision choosing block ``j``'s variant, if any."""
        return None

    def encode(self, space: SearchSpace, i: int, blocks: Sequence[BlockSpec], pos: int, enc: Encoder) -> int:
        """Read the stage's run of blocks at one width (until the next stage's strided first block or
        a width change; stage boundaries are unambiguous by construction)."""
        channels, _ = space.widths(i)
        start = pos
        if pos >= len(blocks) or not isinstance(blocks[pos], self.RUN_TYPES):
            raise enc.fail(f"stage {i}: expected a {self.kind} block at position {pos}")
        c = blocks[pos].out_channels
        pos += 1
        while pos < len(blocks) and isinstance(blocks[pos], self.RUN_TYPES) and blocks[pos].stride == 1:
            if blocks[pos].out_channels != c:
                break
            pos += 1
        enc.put("channels", i, -1, channels, c, "channels")
        self.encode_run(space, i, blocks[start:pos], c, enc)
        return pos

    @abstractmethod
    def encode_run(self, space: SearchSpace, i: int, run: Sequence[BlockSpec], c: int, enc: Encoder) -> None:
        """Encode the stage's blocks ``run`` at width ``c``."""

    def slots(self, space: SearchSpace, i: int, geo: Geometry) -> tuple[list[Slot], Geometry]:
        """One slot per block index up to the largest depth, then any extra slots of the kind."""
        idx = space.decision_index
        channels, depths = space.widths(i)
        c_dep, d_dep = idx.get(("channels", i, -1)), idx.get(("depth", i, -1))
        out_geo = Geometry(conv_out(geo.h, self.stride), conv_out(geo.w, self.stride), channels, c_dep)
        out = []
        for j in range(max(depths)):
            raw = (geo.dep if j == 0 else None, c_dep, d_dep if j > 0 else None, self.variant_dep(space, i, j))
            deps = tuple(x for x in raw if x is not None)
            key_for = partial(self._block_key, space, j, raw, depths, geo, out_geo)
            out.append(Slot(f"stage{i}.block{j}", deps, tuple(space.decisions[x].radix for x in deps), key_for))
        return out + self.extra_slots(space, i, out_geo, d_dep), out_geo

    def _block_key(
        self,
        space: SearchSpace,
        j: int,
        raw: tuple[int | None, ...],
        depths: tuple[int, ...],
        geo: Geometry,
        out_geo: Geometry,
        vals: tuple[int, ...],
    ) -> str | None:
        it = iter(vals)
        prev, ci, di, vi = (next(it) if r is not None else 0 for r in raw)
        c = out_geo.channels[ci]
        if j > 0 and depths[di] <= j:
            return None
        inp = Shape(geo.h, geo.w, geo.channels[prev]) if j == 0 else Shape(out_geo.h, out_geo.w, c)
        return block_key(self.block(space, c, j, vi), inp)

    def extra_slots(self, space: SearchSpace, i: int, geo: Geometry, d_dep: int | None) -> list[Slot]:
        """Slots beside the block indices (none by default)."""
        return []

    def size(self, space: SearchSpace, i: int) -> int:
        """Widths × depths (the kind's own choices multiply in :meth:`per_width`)."""
        channels, depths = space.widths(i)
        return len(channels) * sum(self.per_width(space, d) for d in depths)

    def per_width(self, space: SearchSpace, d: int) -> int:
        """Number of stage contents at one width and depth ``d``."""
        return 1

    def positions(self, space: SearchSpace, i: int, geo: Geometry) -> tuple[list[Position], Geometry]:
        """One position per block index up to the largest depth of the joint and coarse phases, each
        stored at the widest width, then any extra positions of the kind."""
        joint, coarse = space.with_phase("joint"), space.with_phase("coarse")
        channels = tuple(sorted(set(joint.widths(i)[0]) | set(coarse.widths(i)[0])))
        depth = max(max(joint.widths(i)[1]), max(coarse.widths(i)[1]))
        hs, ws = conv_out(geo.h, self.stride), conv_out(geo.w, self.stride)
        out = []
        for j in range(depth):
            j_in = geo.channels if j == 0 else channels
            hw = (geo.h, geo.w) if j == 0 else (hs, ws)
            out.append(self.position(space, f"s{i}_b{j}", j, channels, j_in, hw))
        return out + self.extra_positions(space, i, channels, (hs, ws)), Geometry(hs, ws, channels)

    @abstractmethod
    def position(
        self,
        space: SearchSpace,
        key: str,
        j: int,
        channels: tuple[int, ...],
        j_in: tuple[int, ...],
        hw: tuple[int, int],
    ) -> Position:
        """Storage position of block index ``j``."""

    def extra_positions(
        self, space: SearchSpace, i: int, channels: tuple[int, ...], hw: tuple[int, int]
    ) -> list[Position]:
        """Positions beside the block indices (none by default)."""
        return []

    def mqa_positions(self, depth: int) -> list[int]:
        """Block indices an MQA may precede at this depth (none by default)."""
        return []

    def mqa_slot(self, u: int, depth: int) -> int:
        """Slot index of an MQA before block ``u`` at ``depth``."""
        raise SpecError(f"a {self.kind} stage has no MQA slots")

    def position_keys(self, i: int, width: tuple[int, int] | None, specs: Sequence[BlockSpec]) -> list[str]:
        """``s{i}_b{u}`` per block, ``s{i}_mqa{s}`` per MQA, until ``depth`` blocks are placed."""
        assert width is not None
        d, u, keys = width[1], 0, []
        for spec in specs:
            if u >= d:
                break
            if isinstance(spec, MQASpec):
                keys.append(f"s{i}_mqa{self.mqa_slot(u, d)}")
            else:
                keys.append(f"s{i}_b{u}")
                u += 1
        return keys

    def lookups(self, space: SearchSpace, i: int) -> Lookup | None:
        """First/other blocks by (channel index, variant index) and MQA blocks by channel index."""
        first: dict[Any, tuple[int, int]] = {}
        rest: dict[Any, tuple[int, int]] = {}
        mqa: dict[Any, int] = {}
        for ci, c in enumerate(space.widths(i)[0]):
            for table, j in ((first, 0), (rest, 1)):
                for vi in range(self.n_variants(space, j)):
                    table[self.block(space, c, j, vi)] = (ci, vi)
            mqa.update(self.mqa_lookup(space, c, ci))
        return first, rest, mqa

    def n_variants(self, space: SearchSpace, j: int) -> int:
        """Number of options of block ``j``'s own decision (1 by default)."""
        return 1

    def mqa_lookup(self, space: SearchSpace, c: int, ci: int) -> dict[Any, int]:
        """MQA block → channel index at width ``c`` (none by default)."""
        return {}

    def narrow(self, kind: str, value: int) -> Stage:
        """The stage with its ``channels`` or ``depth`` choices narrowed to ``value``."""
        return replace(self, **{kind: (int(value),)})  # type: ignore[type-var,return-value]

    def describe(self) -> dict[str, Any]:
        """Stride, channel and depth choices."""
        return {"stride": self.stride, "channels": list(self.channels), "depth": list(self.depth), "attention": "-"}


# ----------------------------------------------------------------------------------------------
# fused
# ----------------------------------------------------------------------------------------------


@register_stage
@dataclass(frozen=True)
class FusedStage(_Searchable):
    """FusedIB blocks: searchable width and depth."""

    stride: int
    channels: tuple[int, ...]
    depth: tuple[int, ...]
    kernel: int = 3
    expansion: float = 4.0
    kind: Literal["fused"] = "fused"
    KEYS: ClassVar[set[str]] = {"kind", "stride", "channels", "depth", "kernel", "expansion"}
    RUN_TYPES: ClassVar[tuple[type, ...]] = (FusedIBSpec,)

    @classmethod
    def from_table(cls, ctx: Ctx, t: dict[str, Any], where: str) -> FusedStage:
        """Read a ``kind = "fused"`` table."""
        stride, channels, depth = cls.common(ctx, t, where)
        kernel = ctx.get(t, "kernel", where, 3)
        if isinstance(kernel, bool) or kernel not in (1, 3, 5, 7):
            raise ctx.fail(f"{where}kernel", f"must be one of 1, 3, 5, 7 (got {kernel!r})")
        exp = ctx.get(t, "expansion", where, 4)
        if isinstance(exp, bool) or not isinstance(exp, (int, float)) or not 0 < exp <= 16:
            raise ctx.fail(f"{where}expansion", f"must be a number in (0, 16] (got {exp!r})")
        return cls(stride, channels, depth, kernel, float(exp))

    def to_dict(self) -> dict[str, Any]:
        """The stage's ``[[stages]]`` table."""
        return {**super().to_dict(), "kernel": self.kernel, "expansion": self.expansion}

    def block(self, space: SearchSpace, c: int, j: int, variant: int) -> BlockSpec:
        """The stage's FusedIB at width ``c``."""
        return FusedIBSpec(c, self.kernel, self.stride if j == 0 else 1, self.expansion, space.activation)

    def decode(self, space: SearchSpace, i: int, vals: Values) -> list[BlockSpec]:
        """``depth`` FusedIBs at the chosen width."""
        c, d = vals.widths(i)
        return [self.block(space, c, j, 0) for j in range(d)]

    def encode_run(self, space: SearchSpace, i: int, run: Sequence[BlockSpec], c: int, enc: Encoder) -> None:
        """Every block must be the stage's FusedIB; the run's length is the depth."""
        for j, b in enumerate(run):
            if b != self.block(space, c, j, 0):
                raise enc.fail(f"stage {i}: block {j} is not the stage's FusedIB")
        enc.put("depth", i, -1, space.widths(i)[1], len(run), "depth")

    def position(
        self,
        space: SearchSpace,
        key: str,
        j: int,
        channels: tuple[int, ...],
        j_in: tuple[int, ...],
        hw: tuple[int, int],
    ) -> Position:
        """The widest FusedIB; variants at the extreme widths."""
        stride = self.stride if j == 0 else 1
        variants = tuple(
            (FusedIBSpec(c, self.kernel, stride, self.expansion, space.activation), Shape(*hw, ci))
            for c in (min(channels), max(channels))
            for ci in (min(j_in), max(j_in))
        )
        storage = FusedIBSpec(max(channels), self.kernel, 1, self.expansion, space.activation)
        return Position(key, storage, Shape(*hw, max(j_in)), variants)

    def describe(self) -> dict[str, Any]:
        """Stride, width and depth choices, and the block."""
        return {**super().describe(), "attention": f"FusedIB k{self.kernel} e{self.expansion:g}"}


# ----------------------------------------------------------------------------------------------
# uib
# ----------------------------------------------------------------------------------------------

_ATTN_KEYS = {"slots", "heads", "key_dim", "value_dim", "kv_stride", "dw_kernel"}


def _parse_attention(ctx: Ctx, a: Any, where: str, depth: tuple[int, ...]) -> Attention:
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
    if attn.slots > max(depth) - 1:
        # an MQA never precedes a stage's first block, so a stage of at most D blocks has D - 1 slots
        raise ctx.fail(
            f"{where}attention.slots",
            f"{attn.slots} exceeds the {max(depth) - 1} MQA position(s) of a stage "
            f"of at most {max(depth)} blocks (an MQA never precedes the first; allowed: 1 to {max(depth) - 1})",
        )
    return attn


@register_stage
@dataclass(frozen=True)
class UIBStage(_Searchable):
    """UIB blocks: searchable width, depth, per-block variant and optional MQA slots."""

    stride: int
    channels: tuple[int, ...]
    depth: tuple[int, ...]
    attention: Attention | None = None
    kind: Literal["uib"] = "uib"
    KEYS: ClassVar[set[str]] = {"kind", "stride", "channels", "depth", "attention"}
    RUN_TYPES: ClassVar[tuple[type, ...]] = (UIBSpec, MQASpec)

    @classmethod
    def from_table(cls, ctx: Ctx, t: dict[str, Any], where: str) -> UIBStage:
        """Read a ``kind = "uib"`` table."""
        stride, channels, depth = cls.common(ctx, t, where)
        attn = _parse_attention(ctx, t["attention"], where, depth) if "attention" in t else None
        return cls(stride, channels, depth, attn)

    def to_dict(self) -> dict[str, Any]:
        """The stage's ``[[stages]]`` table."""
        d = super().to_dict()
        if self.attention is not None:
            d["attention"] = self.attention.to_dict()
        return d

    def check(self, ctx: Ctx, space: SearchSpace, i: int, prev: Stage | None) -> Stage | None:
        """A stride-2 stage needs a variant that can carry the stride (and see :meth:`_Searchable.check`)."""
        if self.stride == 2 and not space.block_choices(True):
            raise ctx.fail(f"stages[{i}].stride", "stride 2 needs a variant with a depthwise conv in [fine]")
        return super().check(ctx, space, i, prev)

    def mqa_positions(self, depth: int) -> list[int]:
        """UIB indices an MQA may precede at this depth (never the stage's first, strided block)."""
        if self.attention is None:
            return []
        return [p for p in range(depth - self.attention.slots, depth) if p >= 1]

    def mqa_slot(self, u: int, depth: int) -> int:
        """Slot index of an MQA before UIB ``u`` at ``depth``."""
        if self.attention is None:
            return super().mqa_slot(u, depth)
        return u - (depth - self.attention.slots)

    def _choices(self, space: SearchSpace, j: int) -> tuple[UIBChoice, ...]:
        if space.phase == "coarse":
            return (space.coarse_block,)
        return space.block_choices(j == 0 and self.stride == 2)

    def block_decisions(self, space: SearchSpace, i: int, depths: tuple[int, ...]) -> list[Decision]:
        """A variant per block index, then a switch per MQA slot some depth allows (not when coarse)."""
        if space.phase == "coarse":
            return []
        out = []
        for j in range(max(depths)):
            opts = space.block_choices(j == 0 and self.stride == 2)
            if len(opts) > 1:
                out.append(Decision(f"stage{i}.block{j}.uib", "uib", i, j, tuple(c.label for c in opts)))
        if self.attention is not None:
            for s in range(self.attention.slots):
                if any(self.mqa_slot(p, d) == s for d in depths for p in self.mqa_positions(d)):
                    out.append(Decision(f"stage{i}.mqa{s}", "mqa", i, s, (0, 1)))
        return out

    def active(self, dec: Decision, depth: np.ndarray) -> np.ndarray | None:
        """A variant while its block exists; an MQA slot while it precedes an existing non-first UIB."""
        if dec.kind == "uib":
            return dec.index < depth
        if dec.kind == "mqa" and self.attention is not None:
            return depth - self.attention.slots + dec.index >= 1
        return None

    def block(self, space: SearchSpace, c: int, j: int, variant: int) -> BlockSpec:
        """UIB ``j`` at width ``c`` with variant index ``variant`` (the coarse block when coarse)."""
        choice = self._choices(space, j)[variant]
        return choice.block(c, self.stride if j == 0 else 1, space.activation, space.layer_scale)

    def variant_dep(self, space: SearchSpace, i: int, j: int) -> int | None:
        """The variant decision of block ``j``."""
        return space.decision_index.get(("uib", i, j))

    def n_variants(self, space: SearchSpace, j: int) -> int:
        """Variants allowed at block ``j`` in the space's phase."""
        return len(self._choices(space, j))

    def decode(self, space: SearchSpace, i: int, vals: Values) -> list[BlockSpec]:
        """The chosen UIBs, each preceded by an MQA where its slot is on."""
        c, d = vals.widths(i)
        mqa_at = {p for p in self.mqa_positions(d) if vals.mqa(i, self.mqa_slot(p, d))}
        blocks: list[BlockSpec] = []
        for j in range(d):
            if j in mqa_at:
                assert self.attention is not None
                blocks.append(self.attention.block(c, space.layer_scale))
            choice = vals.variant(i, j, j == 0 and self.stride == 2)
            blocks.append(choice.block(c, self.stride if j == 0 else 1, space.activation, space.layer_scale))
        return blocks

    def encode_run(self, space: SearchSpace, i: int, run: Sequence[BlockSpec], c: int, enc: Encoder) -> None:
        """Depth, UIB variants and MQA switches of the run."""
        d = sum(isinstance(b, UIBSpec) for b in run)
        enc.put("depth", i, -1, space.widths(i)[1], d, "depth")
        allowed_mqa = set(self.mqa_positions(d)) if space.phase != "coarse" else set()
        u, prev_mqa = 0, False
        for b in run:
            if isinstance(b, MQASpec):
                self._encode_mqa(space, i, b, c, u, d, prev_mqa or u not in allowed_mqa, enc)
                prev_mqa = True
                continue
            if not isinstance(b, UIBSpec):
                raise enc.fail(f"stage {i}: unexpected {b.kind} block")
            self._encode_uib(space, i, b, c, u, enc)
            prev_mqa, u = False, u + 1
        if prev_mqa:
            raise enc.fail(f"stage {i}: ends with an MQA block")

    def _encode_mqa(
        self, space: SearchSpace, i: int, b: MQASpec, c: int, u: int, d: int, refused: bool, enc: Encoder
    ) -> None:
        if refused or self.attention is None:
            raise enc.fail(f"stage {i}: Mobile MQA not allowed before UIB {u}")
        if b != self.attention.block(c, space.layer_scale):
            raise enc.fail(f"stage {i}: MQA parameters differ from the stage's attention")
        enc.set("mqa", i, self.mqa_slot(u, d), 1)

    def _encode_uib(self, space: SearchSpace, i: int, b: UIBSpec, c: int, u: int, enc: Encoder) -> None:
        choice = UIBChoice.of(b)
        if b != choice.block(c, self.stride if u == 0 else 1, space.activation, space.layer_scale):
            raise enc.fail(f"stage {i}: UIB {u} has a stride, activation or layer scale the space does not use")
        if space.phase == "coarse":
            if choice != space.coarse_block:
                raise enc.fail(f"stage {i}: UIB {u} is not the coarse block {space.coarse_block.label}")
        else:
            opts = space.block_choices(u == 0 and self.stride == 2)
            enc.put("uib", i, u, tuple(o.label for o in opts), choice.label, f"UIB {u} variant")

    def per_width(self, space: SearchSpace, d: int) -> int:
        """Variants per block times the MQA switches at depth ``d`` (1 when coarse)."""
        if space.phase == "coarse":
            return 1
        n_first = len(space.block_choices(self.stride == 2))
        n_rest = len(space.block_choices(False))
        # d >= 1, so this is an int already; int() because int ** int is typed Any
        return int(n_first * n_rest ** (d - 1) * 2 ** len(self.mqa_positions(d)))

    def extra_slots(self, space: SearchSpace, i: int, geo: Geometry, d_dep: int | None) -> list[Slot]:
        """One slot per MQA switch (not when coarse)."""
        if self.attention is None or space.phase == "coarse":
            return []
        out = []
        depths = space.widths(i)[1]
        for s in range(self.attention.slots):
            m_dep = space.decision_index.get(("mqa", i, s))
            if m_dep is None:
                continue
            raw = (geo.dep, d_dep, m_dep)
            deps = tuple(x for x in raw if x is not None)
            key_for = partial(self._mqa_key, space, s, raw, depths, geo)
            out.append(Slot(f"stage{i}.mqa{s}", deps, tuple(space.decisions[x].radix for x in deps), key_for))
        return out

    def _mqa_key(
        self,
        space: SearchSpace,
        s: int,
        raw: tuple[int | None, ...],
        depths: tuple[int, ...],
        geo: Geometry,
        vals: tuple[int, ...],
    ) -> str | None:
        assert self.attention is not None
        it = iter(vals)
        ci, di, on = (next(it) if r is not None else 0 for r in raw)
        if not on or depths[di] - self.attention.slots + s < 1:
            return None
        c = geo.channels[ci]
        return block_key(self.attention.block(c, space.layer_scale), Shape(geo.h, geo.w, c))

    def position(
        self,
        space: SearchSpace,
        key: str,
        j: int,
        channels: tuple[int, ...],
        j_in: tuple[int, ...],
        hw: tuple[int, int],
    ) -> Position:
        """A UIB whose hidden width and kernels cover every variant (and the coarse block) at the
        widest width; variants at the extreme widths."""
        stride = self.stride if j == 0 else 1
        choices = set(space.block_choices(j == 0 and self.stride == 2)) | {space.coarse_block}
        variants = tuple(
            (ch.block(c, stride, space.activation, space.layer_scale), Shape(*hw, ci))
            for ch in choices
            for c in (min(channels), max(channels))
            for ci in (min(j_in), max(j_in))
        )
        starts = [c.start for c in choices if c.start is not None]
        mids = [c.mid for c in choices if c.mid is not None]
        exp = max(c.expansion for c in choices)
        mid_c = max(make_divisible(ci * c.expansion) for c in choices for ci in j_in)
        # The storage's expansion is chosen so that its hidden width covers every variant.
        exp_storage = max(exp, mid_c / max(j_in))
        storage = UIBSpec(
            max(channels),
            max(starts, default=None),
            max(mids, default=None),
            exp_storage,
            1,
            None,
            space.activation,
            space.layer_scale,
        )
        return Position(key, storage, Shape(*hw, max(j_in)), variants)

    def extra_positions(
        self, space: SearchSpace, i: int, channels: tuple[int, ...], hw: tuple[int, int]
    ) -> list[Position]:
        """One position per MQA slot, stored at the widest width."""
        if self.attention is None:
            return []
        out = []
        for s in range(self.attention.slots):
            specs = tuple((self.attention.block(c, space.layer_scale), Shape(*hw, c)) for c in channels)
            out.append(Position(f"s{i}_mqa{s}", specs[-1][0], specs[-1][1], specs))
        return out

    def mqa_lookup(self, space: SearchSpace, c: int, ci: int) -> dict[Any, int]:
        """The stage's MQA at width ``c`` (not when coarse)."""
        if self.attention is None or space.phase == "coarse":
            return {}
        return {self.attention.block(c, space.layer_scale): ci}

    def describe(self) -> dict[str, Any]:
        """Stride, width and depth choices, and the MQA slots."""
        row = super().describe()
        if self.attention is not None:
            a = self.attention
            row["attention"] = f"MQA before last {a.slots}: h{a.heads} d{a.key_dim} kv/{a.kv_stride}"
        return row
