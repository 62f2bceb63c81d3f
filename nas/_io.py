"""Atomic file writes shared by every stage (latency tables, the device catalog, checkpoints, caches)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

from nas.errors import NasError


def write_atomic(path: Path, write: Callable[[IO[bytes]], object], hint: str | None = None) -> None:
    """Write ``path`` through a temporary file beside it, fsync, ``os.replace`` and fsync the folder:
    readers (and a kill -9 or power loss) see the old file or the new one, never half of one.
    ``write`` fills the open binary file. With ``hint``, a failed write (an unwritable or full folder)
    is a one-line :class:`NasError` ending with it, and no partial file is left; without, the
    ``OSError`` propagates (for callers that treat the write as optional)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # EACCES, EROFS, ENOSPC, EDQUOT, a parent that is a file, ...
        if hint is None:
            raise
        raise NasError(f"cannot write {path} ({exc.strerror or type(exc).__name__}); {hint}") from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # a name too long to exist, a parent that is a file: nothing was created
            pass
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: some platforms have no directory fds)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def write_text_atomic(path: Path, text: str, hint: str) -> None:
    """:func:`write_atomic` of UTF-8 ``text``; ``hint`` ends the one-line error when the folder is not writable."""
    write_atomic(path, lambda fh: fh.write(text.encode("utf-8")), hint)
