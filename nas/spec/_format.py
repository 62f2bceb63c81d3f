"""The DSL's token table (the letters of every block kind) and the canonical formatter.

It sits below :mod:`nas.spec.blocks` (it needs the spec classes for type checking only), so that
:attr:`~nas.spec.ArchSpec.arch` formats a spec without importing the parser: :mod:`nas.spec.dsl`
parses with the same table and re-exports :func:`format_block`, :func:`format_head` and
:func:`format_arch`. See :mod:`nas.spec.dsl` for the grammar.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nas.spec.blocks import ArchSpec, BlockSpec, HeadSpec

ACT_TOKENS = {"re": "relu", "r6": "relu6", "ge": "gelu"}
ACT_NAMES = {v: k for k, v in ACT_TOKENS.items()}
#: Most digits in one number of a token (larger values are out of every range anyway).
MAX_DIGITS = 9


def parse_int(v: str) -> int:
    """The integer of a token's number (ValueError naming what it must be otherwise)."""
    if "." in v:
        raise ValueError("an integer")
    if len(v) > MAX_DIGITS:
        raise ValueError(f"a number of at most {MAX_DIGITS} digits")
    return int(v)


def _float(v: str) -> float:
    if len(v) > 2 * MAX_DIGITS + 1:
        raise ValueError(f"a number of at most {MAX_DIGITS} digits")
    return float(v)


def _kernel(v: str) -> int | None:
    k = parse_int(v)
    return None if k == 0 else k


def _fmt_num(v: float | int) -> str:
    f = float(v)
    return str(int(f)) if f.is_integer() else repr(f)


def _fmt_kernel(v: int | None) -> str:
    return "0" if v is None else str(v)


@dataclass(frozen=True)
class Num:
    """A numeric token: ``letter`` + number, mapped to ``field``."""

    letter: str
    field: str
    parse: Callable[[str], object]
    fmt: Callable[[object], str]
    default: object = None  # None → required; otherwise omitted from the canonical form when equal

    @property
    def required(self) -> bool:
        """Whether every string of the kind must carry this token."""
        return self.default is None


def _req(letter: str, name: str, kind: str = "int") -> Num:
    if kind == "kernel":
        return Num(letter, name, _kernel, _fmt_kernel)  # type: ignore[arg-type]
    if kind == "float":
        return Num(letter, name, _float, _fmt_num)  # type: ignore[arg-type]
    return Num(letter, name, parse_int, str)


def _opt(letter: str, name: str, default: int) -> Num:
    return Num(letter, name, parse_int, str, default)


@dataclass(frozen=True)
class Kind:
    """DSL description of one block kind: the spec class's ``kind`` it parses to, numeric tokens in
    canonical order and flags."""

    spec_kind: str  # ``kind`` of the spec class (``ds`` for both ``ds`` and ``dsa``)
    nums: tuple[Num, ...]
    flags: dict[str, tuple[str, object]]  # token → (field, value when present)
    has_act: bool
    fixed: dict[str, object]  # field values implied by the kind name (ds vs dsa)


def _conv_like(spec_kind: str, flags: dict[str, tuple[str, object]], fixed: dict[str, object]) -> Kind:
    return Kind(spec_kind, (_req("k", "kernel"), _req("s", "stride"), _req("c", "out_channels")), flags, True, fixed)


def _attention(spec_kind: str) -> Kind:
    nums = (
        _req("k", "dw_kernel"),
        _req("h", "heads"),
        _req("s", "stride"),
        _opt("v", "kv_stride", 1),
        _req("d", "key_dim"),
        _req("c", "out_channels"),
        Num("dv", "value_dim", parse_int, str, -1),  # omitted when equal to key_dim (see format)
        _opt("q", "query_stride", 1),
    )
    return Kind(spec_kind, nums, {"ls": ("layer_scale", True), "noskip": ("skip", False)}, False, {})


#: DSL kind name (timm's letters) → its tokens. A new block kind adds its entry here.
KINDS: dict[str, Kind] = {
    "cn": _conv_like("cn", {}, {}),
    "er": Kind(
        "er",
        (_req("k", "kernel"), _req("s", "stride"), _req("e", "expansion", "float"), _req("c", "out_channels")),
        {"noskip": ("skip", False)},
        True,
        {},
    ),
    "uir": Kind(
        "uir",
        (
            _req("a", "start_dw_kernel", "kernel"),
            _req("k", "mid_dw_kernel", "kernel"),
            _req("s", "stride"),
            _req("e", "expansion", "float"),
            _req("c", "out_channels"),
        ),
        {"sa": ("stride_on", "start"), "ls": ("layer_scale", True), "noskip": ("skip", False)},
        True,
        {},
    ),
    "ds": _conv_like("ds", {"noskip": ("skip", False)}, {"pw_act": False}),
    "dsa": _conv_like("ds", {}, {"pw_act": True}),
    "mqa": _attention("mqa"),
    "mha": _attention("mha"),
}


def kind_name(spec: BlockSpec) -> str:
    """The DSL kind name of a block spec (its class's ``kind``, but ``dsa`` for an activated ``ds``)."""
    if spec.kind == "ds" and getattr(spec, "pw_act", False):
        return "dsa"
    return spec.kind


def format_block(spec: BlockSpec) -> str:
    """Canonical DSL string of one block (always ``r1``)."""
    name = kind_name(spec)
    kind = KINDS[name]
    toks = [name, "r1"]
    for num in kind.nums:
        value = getattr(spec, num.field)
        if num.field == "value_dim":
            if value == spec.key_dim:  # type: ignore[union-attr]
                continue
        elif not num.required and value == num.default:
            continue
        toks.append(num.letter + num.fmt(value))
    for tok, (fname, present) in kind.flags.items():
        if fname == "stride_on":
            # Only a non-default placement is written (stride on start while a middle DW exists).
            if spec.stride == 2 and spec.stride_on == "start" and spec.mid_dw_kernel is not None:  # type: ignore[union-attr]
                toks.append(tok)
        elif getattr(spec, fname) == present:
            toks.append(tok)
    act = getattr(spec, "activation", "relu")
    if kind.has_act and act != "relu":
        toks.append("n" + ACT_NAMES[act])
    return "_".join(toks)


def format_head(head: HeadSpec, num_classes: int) -> str:
    """Canonical head string, e.g. ``head_c960_h1280_cls1000``."""
    toks = ["head"]
    if head.conv_channels:
        toks.append(f"c{head.conv_channels}")
    if head.hidden_channels:
        toks.append(f"h{head.hidden_channels}")
    toks.append(f"cls{num_classes}")
    if head.activation != "relu":
        toks.append("n" + ACT_NAMES[head.activation])
    return "_".join(toks)


def format_arch(arch: ArchSpec) -> str:
    """Canonical architecture string (``res…|stem|blocks…|head…``)."""
    parts = [f"res{arch.resolution}", format_block(arch.stem)]
    parts += [format_block(b) for b in arch.blocks]
    parts.append(format_head(arch.head, arch.num_classes))
    return "|".join(parts)
