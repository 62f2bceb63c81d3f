"""Building blocks shared by the stage classes and the space: decisions, slots, UIB variants, the
MQA settings of a stage, the value reader of an encoding and the file-error helper."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.errors import ConfigError, SpecError
from nas.spec import DW_KERNELS, MQASpec, Shape, UIBSpec

if TYPE_CHECKING:
    from nas.space._schema import SearchSpace


@dataclass(frozen=True)
class Decision:
    """One searchable choice: a stable name and its options (labels shown to users and optuna)."""

    name: str
    kind: str  # channels | depth | uib | mqa
    stage: int
    index: int  # block index (uib) or slot index (mqa); -1 for stage-level decisions
    choices: tuple[Any, ...]

    @property
    def radix(self) -> int:
        """Number of options."""
        return len(self.choices)


@dataclass(frozen=True)
class Slot:
    """A place in every member where one block may sit, for vectorised lookups.

    ``key_for(values)`` gives the layer key at this slot for the values (choice indices) of
    ``deps`` — decision indices in the encoding vector, with ``radices`` options each — or ``None``
    when no block sits there for those values (a block beyond the chosen depth).
    """

    name: str
    deps: tuple[int, ...]
    radices: tuple[int, ...]
    key_for: Callable[[tuple[int, ...]], str | None]

    def keys(self) -> list[tuple[tuple[int, ...], str | None]]:
        """Every combination of dependency values (row-major) with its key; computed once per slot
        (formatting the keys is most of what the budget checks and the predictor fit spend)."""
        return self._keys

    @cached_property
    def _keys(self) -> list[tuple[tuple[int, ...], str | None]]:
        combos = itertools.product(*map(range, self.radices)) if self.radices else [()]
        return [(vals, self.key_for(vals)) for vals in combos]


@dataclass(frozen=True)
class Geometry:
    """What a stage's first block sees: the feature map size, the possible input widths and the
    decision that picks among them (None when the width is the same for every member)."""

    h: int
    w: int
    channels: tuple[int, ...]
    dep: int | None = None


@dataclass(frozen=True)
class Position:
    """A supernet storage position: its key, the block spec and input shape of its storage, and
    every (spec, input shape) a member can place there (at least the extremes of each dimension)."""

    key: str
    storage: Any  # BlockSpec
    inp: Shape
    variants: tuple[tuple[Any, Shape], ...]


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

    def to_dict(self) -> dict[str, Any]:
        """The ``attention`` table of the space schema."""
        return {
            "slots": self.slots,
            "heads": self.heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "kv_stride": self.kv_stride,
            "dw_kernel": self.dw_kernel,
        }


class Values:
    """Reads decision values from a vector, falling back to the only option of omitted decisions."""

    def __init__(self, space: SearchSpace, vec: Any):
        self.space, self.vec, self.idx = space, vec, space.decision_index

    def pick(self, kind: str, stage: int, index: int, options: tuple[Any, ...]) -> Any:
        """The option chosen for decision (kind, stage, index); its only option when omitted."""
        n = self.idx.get((kind, stage, index))
        if n is None:
            return options[0]
        v = int(self.vec[n])
        if not 0 <= v < len(options):
            raise SpecError(f"{self.space.name}: value {v} out of range for decision {self.space.decisions[n].name}")
        return options[v]

    def widths(self, i: int) -> tuple[int, int]:
        """(channels, depth) chosen for searchable stage ``i``."""
        channels, depths = self.space.widths(i)
        return self.pick("channels", i, -1, channels), self.pick("depth", i, -1, depths)

    def variant(self, i: int, j: int, strided: bool) -> UIBChoice:
        """UIB variant of block ``j`` of stage ``i``."""
        if self.space.phase == "coarse":
            return self.space.coarse_block
        return self.pick("uib", i, j, self.space.block_choices(strided))  # type: ignore[no-any-return]

    def mqa(self, i: int, s: int) -> bool:
        """Whether MQA slot ``s`` of stage ``i`` is on."""
        if self.space.phase == "coarse":
            return False
        return bool(self.pick("mqa", i, s, (0, 1)))


class Encoder:
    """Collects the canonical encoding of a member while stages read its blocks."""

    def __init__(self, space: SearchSpace):
        self.space, self.idx = space, space.decision_index
        self.vec = np.zeros(len(space.decisions), dtype=np.int64)

    def fail(self, msg: str) -> SpecError:
        """Why the architecture is not a member."""
        return SpecError(f"not in space {self.space.name} ({self.space.phase}): {msg}")

    def put(self, kind: str, stage: int, index: int, options: tuple[Any, ...], value: Any, what: str) -> None:
        """Record ``value`` for decision (kind, stage, index), refusing a value not among ``options``."""
        if value not in options:
            raise self.fail(f"stage {stage}: {what} {value} not among {list(options)}")
        self.set(kind, stage, index, options.index(value))

    def set(self, kind: str, stage: int, index: int, value: int) -> None:
        """Record an option index (ignored for decisions with one option)."""
        n = self.idx.get((kind, stage, index))
        if n is not None:
            self.vec[n] = value


class Ctx:
    """Error helper of space files: every message names the file and the key."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, msg: str) -> ConfigError:
        """A one-line error naming the file and ``key``."""
        return ConfigError(f"{self.source}: {key}: {msg}")

    def check_keys(self, table: dict[str, Any], allowed: set[str], where: str) -> None:
        """Refuse keys outside ``allowed``."""
        for k in table:
            if k not in allowed:
                raise self.fail(f"{where}{k}", f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def get(self, table: dict[str, Any], key: str, where: str, default: Any = ...) -> Any:
        """``table[key]``, ``default`` when given and absent, else a missing-key error."""
        if key not in table:
            if default is ...:
                raise self.fail(f"{where}{key}", "missing key")
            return default
        return table[key]

    def int_(self, v: Any, key: str, lo: int = 1, hi: int = 10**6, what: str = "") -> int:
        """``v`` as an integer in [lo, hi]."""
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            allowed = what or f"an integer in [{lo}, {hi}]"
            raise self.fail(key, f"must be {allowed} (got {v!r})")
        return v

    def int_list(
        self, v: Any, key: str, lo: int = 1, hi: int = 10**6, mult: int = 1, what: str = ""
    ) -> tuple[int, ...]:
        """``v`` as a non-empty list of distinct integers in [lo, hi], multiples of ``mult``."""
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


def kernel_list(ctx: Ctx, v: Any, key: str) -> tuple[int | None, ...]:
    """A list of depthwise kernels (0 = absent → None)."""
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


def parse_choice(ctx: Ctx, text: Any, key: str) -> UIBChoice:
    """A UIB variant label such as ``a0_k3_e4``."""
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
