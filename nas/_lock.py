"""Exclusive locks on folders and files that name their owner, the liveness of a recorded owner, and
temporary folders that a later run can tell are abandoned.

A lock is an ``flock`` on a small file that holds the owner's pid, host and start time. The kernel
drops an ``flock`` when its owner dies, kill -9 included, so a lock is never stale; the recorded
owner serves two purposes: the message that refuses a second process names the one running, and a
process that holds the lock knows that whatever else the dead owner left behind (optuna's journal
lock, temporary files) belongs to nobody.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from nas.errors import NasError
from nas.units import utc_timestamp

HOST = socket.gethostname()


class LockedError(NasError):
    """Another live process holds the lock."""


@dataclass
class Lock:
    """A held lock; :meth:`release` (or process death) frees it."""

    path: Path
    fd: int | None

    def release(self) -> None:
        """Release the lock (the file stays: unlinking it would race with a process opening it)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def owner_text(path: Path) -> str:
    """'pid 123 on host, since 2024-01-01T00:00:00' from a lock file, or 'an unknown process'."""
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {int(rec['pid'])} on {rec['host']}, since {rec['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "an unknown process"


def acquire(path: Path, busy: str) -> Lock:
    """Take the lock file ``path`` without waiting, recording this process as its owner; when another
    process holds it, a one-line :class:`LockedError` ``"{busy} ({owner})"``.

    The file is opened without truncation: a refused process must not wipe the owner's record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise NasError(f"cannot create the lock file {path} ({exc.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise NasError(f"cannot lock {path} ({exc.strerror})") from None
        raise LockedError(f"{busy} ({owner_text(path)})") from None
    record = {"pid": os.getpid(), "host": HOST, "started": utc_timestamp()}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    return Lock(path, fd)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (a zombie counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


#: ``mnv4nas-<kind>-<pid>@<host>-<random>``: what :func:`owned_tempdir` creates
_OWNED = re.compile(r"^mnv4nas-[a-z]+-(\d+)@(.+)-[A-Za-z0-9_]+$")


@contextmanager
def owned_tempdir(kind: str) -> Iterator[Path]:
    """A temporary folder named after this process (``mnv4nas-<kind>-<pid>@<host>-…``), removed on
    exit, exceptions included. A process killed with -9 cannot remove it: :func:`sweep_tempdirs`, at
    the start of the next run, removes the folders whose owner is gone."""
    sweep_tempdirs()
    path = Path(tempfile.mkdtemp(prefix=f"mnv4nas-{kind}-{os.getpid()}@{HOST}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def sweep_tempdirs(root: Path | None = None) -> list[str]:
    """Remove folders made by :func:`owned_tempdir` whose owner (a process of this host) is dead.
    Folders of other hosts (a shared temp dir) and of live processes are left alone."""
    root = Path(root or tempfile.gettempdir())
    removed: list[str] = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    for p in entries:
        m = _OWNED.match(p.name)
        if m is None or m.group(2) != HOST or int(m.group(1)) == os.getpid() or pid_alive(int(m.group(1))):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p.name)
    return removed


__all__ = [
    "HOST",
    "Lock",
    "LockedError",
    "acquire",
    "owned_tempdir",
    "owner_text",
    "pid_alive",
    "sweep_tempdirs",
]
