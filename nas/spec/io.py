"""JSON and TOML files for :class:`~nas.spec.blocks.ArchSpec`, and loading a spec by zoo name or path.

Both formats carry the same keys: ``format`` (schema tag), ``resolution``, ``num_classes``, ``stem``
and ``blocks`` (canonical block strings), ``head`` (head string) and, for readability, ``arch`` (the
whole canonical string, checked on load). Optional ``name`` is informational.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from nas.errors import SpecError
from nas.inputs import as_error, json_loads, read_text, toml_loads
from nas.spec.blocks import ArchSpec, BlockSpec, ConvSpec
from nas.spec.dsl import format_block, format_head, parse_arch, parse_block, parse_blocks, parse_head

SPEC_FORMAT = "mnv4-nas/arch-v1"
_KEYS = {"format", "name", "arch", "resolution", "num_classes", "stem", "blocks", "head"}
_REQUIRED = ("resolution", "stem", "blocks", "head")

_T = TypeVar("_T")


def spec_to_dict(arch: ArchSpec, name: str | None = None) -> dict[str, Any]:
    """Plain-data form of a spec (what the JSON/TOML files contain)."""
    d: dict[str, Any] = {"format": SPEC_FORMAT}
    if name:
        d["name"] = name
    d.update(
        arch=arch.arch,
        resolution=arch.resolution,
        num_classes=arch.num_classes,
        stem=format_block(arch.stem),
        blocks=[format_block(b) for b in arch.blocks],
        head=format_head(arch.head, arch.num_classes),
    )
    return d


def spec_from_dict(d: object, source: str = "spec") -> ArchSpec:
    """Build and validate a spec from its plain-data form; errors name ``source`` and the key."""
    if not isinstance(d, dict):
        raise SpecError(f"{source}: expected a table/object at top level (got {type(d).__name__})")
    unknown = sorted(set(d) - _KEYS)
    if unknown:
        raise SpecError(f"{source}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(_KEYS))})")
    fmt = d.get("format", SPEC_FORMAT)
    if fmt != SPEC_FORMAT:
        raise SpecError(f"{source}: key 'format' must be {SPEC_FORMAT!r} (got {fmt!r})")
    if set(_REQUIRED) - set(d) and "arch" in d:
        # A file holding just the canonical string (plus optional name) is accepted too.
        if set(d) - {"arch", "name", "format"}:
            missing = next(k for k in _REQUIRED if k not in d)
            raise SpecError(f"{source}: missing key {missing!r}")
        return _wrap(source, "arch", lambda: parse_arch(_str(source, "arch", d["arch"])))
    for key in _REQUIRED:
        if key not in d:
            raise SpecError(f"{source}: missing key {key!r}")
    res = d["resolution"]
    if isinstance(res, bool) or not isinstance(res, int):
        raise SpecError(f"{source}: key 'resolution' must be a positive integer (got {res!r})")
    stem = _wrap(source, "stem", lambda: parse_block(_str(source, "stem", d["stem"])))
    if not isinstance(stem, ConvSpec):
        raise SpecError(f"{source}: key 'stem' must be a cn block (got {d['stem']!r})")
    raw_blocks = d["blocks"]
    if not isinstance(raw_blocks, list):
        raise SpecError(f"{source}: key 'blocks' must be a list of block strings")
    blocks: list[BlockSpec] = []
    for i, b in enumerate(raw_blocks):
        blocks.extend(_wrap(source, f"blocks[{i}]", partial(_blocks, source, f"blocks[{i}]", b)))
    head, classes = _wrap(source, "head", lambda: parse_head(_str(source, "head", d["head"])))
    if "num_classes" in d and d["num_classes"] != classes:
        raise SpecError(f"{source}: key 'num_classes' ({d['num_classes']!r}) disagrees with head cls{classes}")
    arch = _wrap(source, "resolution", lambda: ArchSpec(res, stem, tuple(blocks), head, classes))
    if "arch" in d:
        given = _wrap(source, "arch", lambda: parse_arch(_str(source, "arch", d["arch"])))
        if given != arch:
            raise SpecError(f"{source}: key 'arch' disagrees with stem/blocks/head (edit one, or drop 'arch')")
    return arch


def _str(source: str, key: str, v: object) -> str:
    if not isinstance(v, str):
        raise SpecError(f"{source}: key {key!r} must be a string (got {type(v).__name__})")
    return v


def _blocks(source: str, key: str, value: object) -> tuple[BlockSpec, ...]:
    return parse_blocks(_str(source, key, value))


def _wrap(source: str, key: str, fn: Callable[[], _T]) -> _T:
    try:
        return fn()
    except SpecError as exc:
        msg = str(exc)
        if msg.startswith(source):
            raise
        raise SpecError(f"{source}: key {key!r}: {msg}") from None


def to_json(arch: ArchSpec, name: str | None = None) -> str:
    """JSON text of a spec (2-space indent, trailing newline)."""
    return json.dumps(spec_to_dict(arch, name), indent=2) + "\n"


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string for our ASCII content
    if isinstance(v, list):
        if not v:
            return "[]"
        return "[\n" + "".join(f"  {_toml_value(x)},\n" for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def to_toml(arch: ArchSpec, name: str | None = None) -> str:
    """TOML text of a spec."""
    return "".join(f"{k} = {_toml_value(v)}\n" for k, v in spec_to_dict(arch, name).items())


def from_json(text: str, source: str = "spec") -> ArchSpec:
    """Parse JSON text into a spec; malformed, too deeply nested or ``NaN``-holding JSON is a
    one-line :class:`SpecError`."""
    with as_error(SpecError):
        data = json_loads(text, source)
    return spec_from_dict(data, source)


def from_toml(text: str, source: str = "spec") -> ArchSpec:
    """Parse TOML text into a spec."""
    with as_error(SpecError):
        data = toml_loads(text, source)
    return spec_from_dict(data, source)


#: Largest spec file read: a spec of the most blocks allowed is well under this.
MAX_SPEC_BYTES = 4 * 2**20


def load_spec_file(path: str | Path) -> ArchSpec:
    """Load a spec from a ``.json`` or ``.toml`` file, or a text file holding one arch string.
    Only a regular file of at most 4 MiB is read (a FIFO, a device or a directory is refused unread)."""
    p = Path(path)
    with as_error(SpecError):
        text = read_text(p, "spec file", MAX_SPEC_BYTES)
    suffix = p.suffix.lower()
    if suffix == ".json":
        return from_json(text, str(p))
    if suffix == ".toml":
        return from_toml(text, str(p))
    stripped = text.strip().removeprefix("\ufeff")
    if stripped.startswith("{"):
        return from_json(stripped, str(p))
    try:
        return parse_arch(stripped)
    except SpecError as exc:
        raise SpecError(f"{p}: {exc}") from None


def save_spec(arch: ArchSpec, path: str | Path, name: str | None = None) -> Path:
    """Write a spec as JSON or TOML, chosen by the file suffix."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".json", ".toml"):
        raise SpecError(f"{p}: spec files must end in .json or .toml")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(to_json(arch, name) if suffix == ".json" else to_toml(arch, name), encoding="utf-8")
    return p
