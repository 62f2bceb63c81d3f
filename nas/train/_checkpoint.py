"""Checkpoint files: plain tensors and state dicts plus a JSON metadata string, written atomically and
read with ``torch.load(..., weights_only=True)`` only (no pickled objects, so a checkpoint from
elsewhere cannot run code). Stand-alone and supernet checkpoints share this layout and differ in
their ``format`` tag and metadata."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from nas._io import write_atomic
from nas.errors import NasError
from nas.inputs import as_error, regular_file

#: What torch.load raises on a file that is not a checkpoint (truncated, garbage, a hostile pickle): its
#: legacy-format reader meets random bytes with IndexError, KeyError, TypeError or AttributeError too.
_UNREADABLE = (
    pickle.UnpicklingError,
    RuntimeError,
    EOFError,
    OSError,
    ValueError,
    zipfile.BadZipFile,
    MemoryError,
    IndexError,
    KeyError,
    TypeError,
    AttributeError,
    UnicodeDecodeError,
)

#: how a user fixes an unwritable checkpoint (ends the one-line error of a failed write)
OUT_HINT = "give --out a writable folder"


def _cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_cpu(v) for v in obj)
    return obj


def write_checkpoint(
    path: str | Path, fmt: str, version: int, meta: dict[str, Any], state: dict[str, Any], hint: str = OUT_HINT
) -> Path:
    """Write ``{"format": fmt, "version": version, "meta": json(meta), **state}`` atomically (temp file,
    fsync, rename, fsync the folder): a kill at any moment leaves the previous file or the new one.
    ``state`` holds state dicts (tensors are moved to the CPU) or ``None``."""
    p = Path(path)
    obj = {"format": fmt, "version": version, "meta": json.dumps(meta), **_cpu(state)}
    write_atomic(p, lambda f: torch.save(obj, f), hint)
    return p


def read_checkpoint(path: str | Path, fmt: str, version: int, what: str) -> dict[str, Any]:
    """A checkpoint written by :func:`write_checkpoint` with this ``fmt`` and ``version``; ``meta``
    decoded to a dict. Anything else is a one-line :class:`NasError` naming the file (``what``, e.g.
    ``supernet``, names the kind)."""
    with as_error(NasError):
        p = regular_file(path, f"{what} checkpoint")  # a FIFO or a device is refused unread
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except _UNREADABLE as exc:
        msg = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise NasError(f"{p}: not a readable {what} checkpoint ({msg})") from None
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        raise NasError(f"{p}: not an mnv4-nas {what} checkpoint")
    if obj.get("version") != version:
        shown = str(obj.get("version"))[:20]
        raise NasError(f"{p}: checkpoint version {shown} is not supported (this is {version})")
    if not isinstance(obj.get("meta"), str):
        raise NasError(f"{p}: corrupt checkpoint metadata (not a JSON string)")
    try:
        obj["meta"] = json.loads(obj["meta"])
    except (ValueError, RecursionError):
        raise NasError(f"{p}: corrupt checkpoint metadata (not JSON)") from None
    if not isinstance(obj["meta"], dict):
        raise NasError(f"{p}: corrupt checkpoint metadata (not a JSON object)")
    if not isinstance(obj.get("model"), dict):
        raise NasError(f"{p}: corrupt checkpoint (no model state dict)")
    return obj
