"""Checks at the edges: every file the tool reads and every number a user gives passes through here.

One rule for all of them: bad input is a one-line :class:`~nas.errors.NasError` (exit code 2) that
names the input and the field, raised *before* any work starts or any file is written.

- Files are read only when they are regular files (a FIFO, a device, a directory or a socket is
  refused without opening it), only up to a size bound, and decoded as UTF-8 where text is expected.
- JSON and TOML documents are parsed with a nesting bound and Python's integer-digit limit turned
  into a one-line error (neither may surface as ``RecursionError`` or ``ValueError``).
- Numbers are finite and in range: ``0``, ``nan`` or ``inf`` never silently mean "default".
- Output paths are checked before work starts: the parent can be created and written, the path is
  not an existing directory where a file is expected, and no parent is a regular file.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import tempfile
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nas.errors import NasError

__all__ = [
    "MAX_DEPTH",
    "MAX_SEED",
    "MAX_TEXT_BYTES",
    "InputError",
    "as_error",
    "check_device",
    "check_finite",
    "check_int",
    "check_name",
    "check_output_dir",
    "check_output_file",
    "check_seed",
    "json_loads",
    "path_exists",
    "read_bytes",
    "read_json",
    "read_text",
    "read_toml",
    "regular_file",
    "toml_loads",
]

#: Largest text file (spec, space, config, table, catalog, manifest) the tool reads: 64 MiB.
MAX_TEXT_BYTES = 64 * 2**20
#: Deepest nesting of lists/tables accepted in a JSON or TOML document.
MAX_DEPTH = 64
#: Largest seed: numpy's legacy seeding (optuna's samplers) takes 32-bit seeds.
MAX_SEED = 2**32 - 1


class InputError(NasError):
    """A file or value that the tool refuses (names the input and the field)."""


@contextmanager
def as_error(cls: type[NasError]) -> Iterator[None]:
    """Raise an :class:`InputError` from inside the block as ``cls`` with the same message, for
    callers whose errors have a documented type (``SpecError`` for specs, ``ConfigError`` for configs)."""
    try:
        yield
    except InputError as exc:
        raise cls(str(exc)) from None


def path_exists(path: str | Path) -> bool:
    """``Path(path).exists()`` that answers False, instead of raising, for a name the OS cannot even
    look up (longer than 255 bytes per component, a NUL byte): such a text is no file."""
    try:
        return Path(path).exists()
    except (OSError, ValueError):
        return False


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def regular_file(path: str | Path, what: str = "file") -> Path:
    """``path`` as a :class:`Path` if it names an existing regular file (symlinks followed); else a
    one-line :class:`InputError` that says what it is instead. Never opens the path."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise InputError(f"{p}: no such {what}") from None
    except OSError as exc:  # ENAMETOOLONG, ELOOP, EACCES on a parent, ...
        raise InputError(f"{_short(p)}: cannot access {what} ({exc.strerror or type(exc).__name__})") from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{p}: {what} must be a regular file, this is {_kind(st.st_mode)}")
    return p


def read_bytes(path: str | Path, what: str = "file", max_bytes: int = MAX_TEXT_BYTES) -> bytes:
    """The content of a regular file of at most ``max_bytes`` bytes (one-line errors otherwise)."""
    p = regular_file(path, what)
    try:
        # O_NONBLOCK: should the path have been swapped for a FIFO after the check, open() does not wait.
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise InputError(f"{p}: cannot read {what} ({exc.strerror or type(exc).__name__})") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise InputError(f"{p}: {what} must be a regular file")
        try:
            data = fh.read(max_bytes + 1)
        except OSError as exc:
            raise InputError(f"{p}: cannot read {what} ({exc.strerror or type(exc).__name__})") from None
    if len(data) > max_bytes:
        raise InputError(f"{p}: {what} is larger than {_size(max_bytes)}")
    return data


def read_text(path: str | Path, what: str = "file", max_bytes: int = MAX_TEXT_BYTES) -> str:
    """A UTF-8 text file (a regular file of at most ``max_bytes``); binary garbage is a one-line error."""
    data = read_bytes(path, what, max_bytes)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: {what} is not UTF-8 text (byte {exc.start})") from None


def _depth(obj: Any, limit: int) -> int:
    """Nesting depth of lists/dicts, iteratively (a deep document must not exhaust the stack here)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(obj, 0)]
    while stack:
        o, d = stack.pop()
        if isinstance(o, dict):
            o = list(o.values())
        elif not isinstance(o, list):
            continue
        deepest = max(deepest, d + 1)
        if deepest > limit:
            return deepest
        stack.extend((v, d + 1) for v in o)
    return deepest


def _parse(loads: Any, text: str, source: str, kind: str, max_depth: int, errors: tuple[type[Exception], ...]) -> Any:
    try:
        obj = loads(text)
    except RecursionError:
        raise InputError(f"{source}: {kind} nested deeper than {max_depth} levels") from None
    except errors as exc:
        raise InputError(f"{source}: invalid {kind} ({_one_line(exc)})") from None
    except ValueError as exc:  # int('9' * 5000): Python's integer-string conversion limit
        why = "a number has too many digits" if "digits" in str(exc) else _one_line(exc)[:120]
        raise InputError(f"{source}: invalid {kind} ({why})") from None
    if _depth(obj, max_depth) > max_depth:
        raise InputError(f"{source}: {kind} nested deeper than {max_depth} levels")
    return obj


def json_loads(text: str, source: str, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` with one-line errors for malformed, too deeply nested or huge-integer input.
    ``NaN``/``Infinity`` literals are refused (they are not JSON)."""

    def loads(t: str) -> Any:
        return json.loads(t, parse_constant=_no_constant)

    return _parse(loads, text, source, "JSON", max_depth, (json.JSONDecodeError, _ConstantError))


def toml_loads(text: str, source: str, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """``tomllib.loads`` with one-line errors for malformed, too deeply nested or huge-integer input."""
    return _parse(tomllib.loads, text, source, "TOML", max_depth, (tomllib.TOMLDecodeError,))


def read_json(path: str | Path, what: str = "JSON file", max_bytes: int = MAX_TEXT_BYTES) -> Any:
    """:func:`read_text` + :func:`json_loads`."""
    return json_loads(read_text(path, what, max_bytes), str(path))


def read_toml(path: str | Path, what: str = "TOML file", max_bytes: int = MAX_TEXT_BYTES) -> dict[str, Any]:
    """:func:`read_text` + :func:`toml_loads`."""
    return toml_loads(read_text(path, what, max_bytes), str(path))


class _ConstantError(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _ConstantError(f"{name} is not a number JSON allows")


def check_finite(
    value: float,
    name: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    """``value`` as a float if finite and within [lo, hi] (``lo_open``/``hi_open``: exclusive);
    else an :class:`InputError` naming ``name`` (e.g. ``--lr`` or ``latency.guard``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{name} must be a number (got {value!r})")
    v = float(value)
    if not math.isfinite(v):
        raise InputError(f"{name} must be a finite number (got {value!r})")
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise InputError(f"{name} must be {'>' if lo_open else '>='} {lo:g} (got {value!r})")
    if hi is not None and (v >= hi if hi_open else v > hi):
        raise InputError(f"{name} must be {'<' if hi_open else '<='} {hi:g} (got {value!r})")
    return v


def check_int(value: int, name: str, *, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` if an integer within [lo, hi]; else an :class:`InputError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{name} must be an integer (got {value!r})")
    if lo is not None and value < lo:
        raise InputError(f"{name} must be at least {lo} (got {value})")
    if hi is not None and value > hi:
        raise InputError(f"{name} must be at most {hi} (got {value})")
    return value


def _writable_dir(d: Path, name: str, shown: Path | None = None) -> None:
    """``d`` exists as a writable directory, or can be created (its nearest existing parent is a
    writable directory). Errors name ``shown`` (the output path the user gave), else ``d``."""
    probe = d
    user = shown if shown is not None else d
    while True:
        try:
            st = probe.stat()
            break
        except (FileNotFoundError, NotADirectoryError):  # not there yet, or under a file (named below)
            if probe.parent == probe:
                raise InputError(f"{name} {user}: no existing parent folder") from None
            probe = probe.parent
        except OSError as exc:
            raise InputError(
                f"{name} {_short(user)}: cannot use this path ({exc.strerror or type(exc).__name__})"
            ) from None
    if not stat.S_ISDIR(st.st_mode):
        raise InputError(
            f"{name} {user}: {probe} is {_kind(st.st_mode) if stat.S_ISREG(st.st_mode) is False else 'a file'}, not a folder"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"{name} {user}: {probe} is not writable")
    try:  # os.access says yes to root everywhere: /sys, /proc and read-only mounts need a real try
        os.rmdir(tempfile.mkdtemp(prefix=".mnv4nas-probe-", dir=probe))
    except OSError as exc:
        raise InputError(
            f"{name} {user}: cannot create anything in {probe} ({exc.strerror or type(exc).__name__})"
        ) from None


def check_output_dir(path: str | Path, name: str = "--out") -> Path:
    """An output folder that exists as a writable folder or can be created; checked before work starts."""
    p = _output_path(path, name)
    _writable_dir(p, name)
    return p


def check_output_file(path: str | Path, name: str = "--output") -> Path:
    """An output file path whose folder can be written and that is not an existing directory."""
    p = _output_path(path, name)
    try:
        st = p.stat()
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        st = None  # a parent is a file: _writable_dir names it
    except OSError as exc:
        raise InputError(f"{name} {_short(p)}: cannot use this path ({exc.strerror or type(exc).__name__})") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise InputError(f"{name} {p}: is a directory; give a file path")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise InputError(f"{name} {p}: exists and is {_kind(st.st_mode)}, not a regular file")
    _writable_dir(p.parent, name, p)
    return p


def _output_path(path: str | Path, name: str) -> Path:
    if not str(path).strip():
        raise InputError(f"{name}: empty path")
    if "\0" in str(path):
        raise InputError(f"{name}: the path holds a NUL character")
    p = Path(path).expanduser()
    _check_name_lengths(p, name)
    return p


def check_seed(value: int, name: str = "--seed") -> int:
    """A seed in [0, 2**32 - 1] (what numpy, torch and optuna all accept)."""
    return check_int(value, name, lo=0, hi=MAX_SEED)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_name(value: str, name: str) -> str:
    """A non-empty name without control characters (a target, a study, an estimator): ``""`` never
    silently means the default."""
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{name} must not be empty")
    if m := _CONTROL.search(value):
        raise InputError(f"{name} {value[:60]!r}: holds the control character {m.group()!r}")
    return value


_DEVICE = re.compile(r"(cpu|mps|cuda)(?::([0-9]{1,3}))?")


def check_device(value: str, name: str = "--device") -> str:
    """A torch device this machine has: ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (imports torch)."""
    m = _DEVICE.fullmatch(value.strip()) if isinstance(value, str) else None
    if m is None or (m.group(2) is not None and m.group(1) != "cuda"):
        raise InputError(f"{name} {value!r}: must be cpu, cuda, cuda:N or mps")
    import torch

    kind, index = m.group(1), m.group(2)
    if kind == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise InputError(f"{name} {value}: this torch ({torch.__version__}) sees no CUDA device; use --device cpu")
        if index is not None and int(index) >= n:
            raise InputError(f"{name} {value}: this machine has {n} CUDA device(s) (cuda:0 to cuda:{n - 1})")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError(f"{name} mps: this torch sees no Apple MPS device; use --device cpu")
    return value.strip()


def _check_name_lengths(p: Path, name: str) -> None:
    limit = 255
    for part in p.parts:
        if len(os.fsencode(part)) > limit:
            raise InputError(f"{name}: a path component is longer than {limit} bytes ({_short(Path(part))})")


def _short(p: Path, n: int = 60) -> str:
    s = str(p)
    return s if len(s) <= n else f"{s[: n // 2]}…{s[-n // 2 :]} ({len(s)} characters)"


def _size(n: int) -> str:
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n} bytes"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
