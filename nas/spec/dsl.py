"""The string DSL: one canonical string per block and per architecture, in timm's arch-def letters.

Block strings are ``kind_token_token…`` with timm's letters, e.g. ``uir_r1_a3_k5_s2_e4_c80``,
``mqa_r1_k3_h4_s1_v2_d64_c160``, ``er_r1_k3_s2_e4_c48``, ``cn_r1_k1_s1_c960``, ``ds_r1_k3_s1_c16``.
Fields timm keeps at model level are written as extra tokens that timm's parser ignores:
``nr6``/``nge`` (activation other than ReLU), ``ls`` (layer scale), ``sa`` (stride on the start
DW), ``dv48`` (value dim ≠ key dim), ``q2`` (query stride), ``noskip``.

An architecture string joins ``res<R>``, the stem, the body blocks and the head with ``|``::

    res224|cn_r1_k3_s2_c32|uir_r1_a3_k5_s2_e4_c80|…|head_c960_h1280_cls1000

Parsing is strict: unknown, duplicate or missing letters raise :class:`~nas.errors.SpecError` with
the offending token. ``format_block(parse_block(s)) == s`` for every canonical block string.
"""

from __future__ import annotations

import re

from nas.errors import SpecError
from nas.spec._format import (
    ACT_TOKENS,
    KINDS,
    MAX_DIGITS,
    Kind,
    format_arch,
    format_block,
    format_head,
    parse_int,
)
from nas.spec.blocks import BLOCK_TYPES, MAX_BLOCKS, ArchSpec, BlockSpec, ConvSpec, HeadSpec, MHSASpec, MQASpec, Shape

_NUM_TOKEN = re.compile(r"([a-z]+)([0-9]+(?:\.[0-9]+)?)")
#: Longest arch string accepted (a MobileNetV4 arch string is 0.4 to 1.3 kB).
MAX_ARCH_CHARS = 2**20
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: Spec class of each block kind (``Kind.spec_kind`` → class).
_SPEC_CLASSES: dict[str, type] = {t.kind: t for t in BLOCK_TYPES}  # type: ignore[attr-defined]

#: Block kinds the DSL knows, by their timm letters.
BLOCK_KINDS: tuple[str, ...] = tuple(KINDS)


def _clip(text: str, n: int = 80) -> str:
    """``text`` for an error message: at most ``n`` characters (long specs are cut in the middle)."""
    return text if len(text) <= n else f"{text[: n // 2]}…{text[-n // 4 :]}"


def _allowed(kind: Kind) -> str:
    parts = ["r"] + [n.letter for n in kind.nums] + list(kind.flags)
    if kind.has_act:
        parts.append("n{re,r6,ge}")
    return ", ".join(parts)


def _split(text: str, what: str) -> list[str]:
    if not isinstance(text, str) or not text.strip():
        raise SpecError(f"{what}: empty string")
    s = text.strip()
    if any(ch.isspace() for ch in s):
        raise SpecError(f"{what} {_clip(s)!r}: unexpected whitespace")
    if not s.isascii():
        raise SpecError(f"{what} {_clip(s)!r}: unexpected non-ASCII character")
    return s.split("_")


def parse_blocks(text: str) -> tuple[BlockSpec, ...]:
    """Parse one block string, expanding timm's repeat count ``r<N>`` into N blocks.

    As in timm, only the first repeat keeps the stride; the others have stride 1.
    """
    toks = _split(text, "block")
    shown = _clip(text)
    name = toks[0]
    if name not in KINDS:
        raise SpecError(f"block {shown!r}: unknown block kind {name!r} (allowed: {', '.join(KINDS)})")
    kind = KINDS[name]
    by_letter = {n.letter: n for n in kind.nums}
    values: dict[str, object] = dict(kind.fixed)
    seen: set[str] = set()
    repeat: int | None = None
    for tok in toks[1:]:
        key: str
        if tok in kind.flags:
            key = tok
            fname, present = kind.flags[tok]
            values[fname] = present
        elif kind.has_act and tok.startswith("n") and tok[1:] in ACT_TOKENS:
            key = "n"
            values["activation"] = ACT_TOKENS[tok[1:]]
        else:
            m = _NUM_TOKEN.fullmatch(tok)
            letter = m.group(1) if m else None
            neg = re.fullmatch(r"([a-z]+)-[\d.]+", tok)
            if neg and (neg.group(1) in by_letter or neg.group(1) == "r"):
                raise SpecError(f"block {shown!r}: token {_clip(tok, 40)!r} must carry a non-negative number")
            if m is None or (letter not in by_letter and letter != "r" and not (name == "cn" and letter == "e")):
                raise SpecError(
                    f"block {shown!r}: unknown token {_clip(tok, 40)!r} (allowed letters for {name}: {_allowed(kind)})"
                )
            key = m.group(1)
            raw = m.group(2)
            try:
                if key == "r":
                    repeat = parse_int(raw)
                elif key == "e":
                    if name == "cn" and float(raw) == 1.0:  # timm writes cn_…_e1_…: accepted, ignored
                        pass
                    elif name == "cn":
                        raise ValueError("1 for cn blocks")
                    else:
                        values[by_letter[key].field] = by_letter[key].parse(raw)
                else:
                    values[by_letter[key].field] = by_letter[key].parse(raw)
            except ValueError as exc:
                raise SpecError(f"block {shown!r}: token {_clip(tok, 40)!r} must carry {exc}") from None
        if key in seen:
            raise SpecError(f"block {shown!r}: duplicate token {_clip(tok, 40)!r}")
        seen.add(key)
    if repeat is None:
        raise SpecError(f"block {shown!r}: missing token 'r' (repeat count, e.g. r1)")
    if not 1 <= repeat <= 64:
        raise SpecError(f"block {shown!r}: repeat 'r{repeat}' must be in [1, 64]")
    for num in kind.nums:
        if num.required and num.field not in values:
            raise SpecError(f"block {shown!r}: missing token {num.letter!r} ({num.field})")
    cls = _SPEC_CLASSES[kind.spec_kind]
    if issubclass(cls, (MQASpec, MHSASpec)):
        stride = values.pop("stride")
        if stride != 1:
            raise SpecError(
                f"block {shown!r}: {name}: stride must be one of 1 (got {stride}); attention keeps the resolution"
            )
    try:
        first = cls(**values)
    except SpecError as exc:
        raise SpecError(f"block {shown!r}: {exc}") from None
    if repeat == 1:
        return (first,)
    rest_values = dict(values)
    if "stride" in rest_values:
        rest_values["stride"] = 1
        rest_values.pop("stride_on", None)
    rest = cls(**rest_values)
    return (first,) + (rest,) * (repeat - 1)


def parse_block(text: str) -> BlockSpec:
    """Parse exactly one block (its repeat count must be ``r1``)."""
    blocks = parse_blocks(text)
    if len(blocks) != 1:
        raise SpecError(f"block {_clip(text)!r}: expected a single block (r1); use parse_blocks for repeats")
    return blocks[0]


def parse_head(text: str) -> tuple[HeadSpec, int]:
    """Parse a head string into the head spec and the number of classes."""
    toks = _split(text, "head")
    shown = _clip(text)
    if toks[0] != "head":
        raise SpecError(f"head {shown!r}: must start with 'head'")
    values: dict[str, object] = {"conv_channels": 0, "hidden_channels": 0}
    classes: int | None = None
    seen: set[str] = set()
    for tok in toks[1:]:
        if tok.startswith("n") and tok[1:] in ACT_TOKENS:
            key = "n"
            values["activation"] = ACT_TOKENS[tok[1:]]
        else:
            m = _NUM_TOKEN.fullmatch(tok)
            if m is None or m.group(1) not in ("c", "h", "cls") or "." in m.group(2) or len(m.group(2)) > MAX_DIGITS:
                raise SpecError(
                    f"head {shown!r}: unknown token {_clip(tok, 40)!r} (allowed: c<conv>, h<hidden>, cls<classes>, n<act>)"
                )
            key = m.group(1)
            if key == "cls":
                classes = int(m.group(2))
            else:
                values["conv_channels" if key == "c" else "hidden_channels"] = int(m.group(2))
        if key in seen:
            raise SpecError(f"head {shown!r}: duplicate token {_clip(tok, 40)!r}")
        seen.add(key)
    if classes is None:
        raise SpecError(f"head {shown!r}: missing token 'cls' (number of classes, e.g. cls1000)")
    try:
        return HeadSpec(**values), classes  # type: ignore[arg-type]
    except SpecError as exc:
        raise SpecError(f"head {shown!r}: {exc}") from None


def parse_arch(text: str) -> ArchSpec:
    """Parse an architecture string; blocks may use ``r<N>`` repeats (canonical form uses r1).

    Spaces around ``|`` are allowed; a newline or another control character anywhere is not, nor a
    string over :data:`MAX_ARCH_CHARS` characters or over :data:`~nas.spec.blocks.MAX_BLOCKS` blocks."""
    if not isinstance(text, str) or not text.strip():
        raise SpecError("arch: empty string")
    if len(text) > MAX_ARCH_CHARS:
        raise SpecError(f"arch: {len(text)} characters; at most {MAX_ARCH_CHARS} are allowed")
    text = text.strip()
    if m := _CONTROL.search(text):
        raise SpecError(f"arch {_clip(text)!r}: unexpected control character {m.group()!r} at position {m.start()}")
    parts = [p.strip() for p in text.split("|")]
    if len(parts) < 3:
        raise SpecError(f"arch {_clip(text)!r}: expected 'res<R>|<stem>|<blocks>…|head_…' separated by '|'")
    m = re.fullmatch(r"res([0-9]{1,9})", parts[0])
    if m is None:
        raise SpecError(f"arch: first token {_clip(parts[0])!r} must be res<resolution>, e.g. res224")
    stem = parse_block(parts[1])
    if not isinstance(stem, ConvSpec):
        raise SpecError(f"arch: stem {parts[1]!r} must be a cn block")
    blocks: list[BlockSpec] = []
    for p in parts[2:-1]:
        blocks.extend(parse_blocks(p))
        if len(blocks) > MAX_BLOCKS:  # checked as it grows: a pasted 1M-layer string fails at once
            raise SpecError(
                f"arch: more than {MAX_BLOCKS} body blocks (repeats counted); at most {MAX_BLOCKS} are allowed"
            )
    head, classes = parse_head(parts[-1])
    return ArchSpec(int(m.group(1)), stem, tuple(blocks), head, classes)


def block_key(block: BlockSpec, inp: Shape) -> str:
    """Identity of a positioned block, e.g. ``uir_r1_a3_k5_s2_e4_c80@64x64x48`` (latency-table key)."""
    return f"{format_block(block)}@{inp}"


def head_key(head: HeadSpec, num_classes: int, inp: Shape) -> str:
    """Identity of a positioned head, e.g. ``head_c960_h1280_cls1000@7x7x128``."""
    return f"{format_head(head, num_classes)}@{inp}"


def arch_keys(arch: ArchSpec) -> list[str]:
    """Keys of the stem, every block and the head, in execution order."""
    keys = [block_key(layer.spec, layer.in_shape) for layer in arch.layers]
    keys.append(head_key(arch.head, arch.num_classes, arch.body_out_shape))
    return keys


def parse_key(key: str) -> tuple[BlockSpec | tuple[HeadSpec, int], Shape]:
    """Inverse of :func:`block_key` / :func:`head_key`: the block (or ``(head, classes)``) and input shape."""
    if not isinstance(key, str) or key.count("@") != 1:
        raise SpecError(f"key {_clip(str(key))!r}: expected '<block>@<H>x<W>x<C>'")
    text, shape_text = key.split("@")
    m = re.fullmatch(r"([0-9]{1,9})x([0-9]{1,9})x([0-9]{1,9})", shape_text)
    if m is None:
        raise SpecError(f"key {_clip(key)!r}: input shape {_clip(shape_text, 40)!r} must look like 56x56x32")
    shape = Shape(*(int(g) for g in m.groups()))
    if min(shape) < 1:
        raise SpecError(f"key {_clip(key)!r}: input shape must be positive")
    if text.startswith("head"):
        return parse_head(text), shape
    return parse_block(text), shape


__all__ = [
    "BLOCK_KINDS",
    "MAX_ARCH_CHARS",
    "arch_keys",
    "block_key",
    "format_arch",
    "format_block",
    "format_head",
    "head_key",
    "parse_arch",
    "parse_block",
    "parse_blocks",
    "parse_head",
    "parse_key",
]
