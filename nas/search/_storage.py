"""Optuna storage for a search: the record of every trial, resumable after kill -9.

Default: optuna's append-only journal file in the run folder. Measured on this 2-core machine with
~30 categorical parameters per trial, the journal wrote 65 trials/s and SQLite 9 trials/s (optuna
5.0, `benchmarks/storage_speed.py`); at SQLite's rate the storage alone would cost ~0.1 s per trial,
a third of a proxy evaluation. The journal is also crash-safe by construction: records are whole
lines, and a torn last line left by kill -9 is cut before the study is reopened.

Any RDB URL (``sqlite:///…``, ``postgresql://…``) selects optuna's RDBStorage with a heartbeat, so
that several workers (several machines, one PostgreSQL) can share a study and a worker killed
mid-trial has its trial failed instead of left running forever. Connecting is bounded by
:data:`CONNECT_TIMEOUT_S`; an in-memory ``sqlite://`` is refused (it would save nothing).

Locks around a journal. Every mnv4-nas process that opens a journal holds ``<journal>.owner`` (an
``flock`` naming its pid, :mod:`nas._lock`) until it closes it. optuna guards each append with its
own lock, ``<journal>.lock``: a symlink created before the write and removed after it. A process
killed between the two leaves the symlink behind, and optuna's next append waits for its grace
period (30 s) before breaking it, at every resume that is killed again before that. Holding
``.owner`` proves that no other process of ours has the journal open, so a ``<journal>.lock``
found then belongs to a dead process and is removed at once. (A foreign program appending to the
same journal without taking ``.owner`` is not protected against; nothing of ours does that.)
"""

from __future__ import annotations

import functools
import json
import os
import time
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from nas._lock import HOST, Lock, acquire, pid_alive
from nas.errors import NasError

JOURNAL_NAME = "study.journal"
HEARTBEAT_S = 30
GRACE_S = 120
#: Seconds an RDB connection attempt may take before the search gives up with a one-line error.
CONNECT_TIMEOUT_S = 10
#: SQLite: how long a write waits for another worker's transaction (the default 5 s is short for a
#: heartbeat thread and two workers on a loaded machine).
SQLITE_BUSY_S = 60
OWNER_SUFFIX = ".owner"
OPTUNA_LOCK_SUFFIX = ".lock"  # optuna.storages.journal._file.LOCK_FILE_SUFFIX


@functools.cache
def quiet_optuna() -> None:
    """Silence optuna for the rest of the process, once: warnings and above only (no "A new study
    created" lines), and no ``ExperimentalWarning`` for the APIs a search relies on (heartbeats,
    ``fail_stale_trials``). Called before any storage is opened, never at import."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


@dataclass
class OpenedStorage:
    """A storage plus what the run needs to know about it."""

    storage: Any
    url: str  # what the user would pass to --storage to reach it again (password masked)
    kind: str  # journal | rdb
    lock: Lock | None = None  # the journal's owner lock (journal only)
    broken_locks: list[str] = field(default_factory=list)  # stale optuna lock files removed on open

    def close(self) -> None:
        """Release the journal's owner lock."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def _repair_journal(path: Path) -> None:
    """Cut a torn last line (kill -9 during a write) so that later appends keep the file valid."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        cut = f.read().rfind(b"\n") + 1
        f.truncate(cut)
        f.flush()
        os.fsync(f.fileno())


def break_stale_journal_lock(path: Path) -> list[str]:
    """Remove optuna's ``<journal>.lock`` and its half-released ``.lock<uuid>.rename`` leftovers.

    Only safe while holding the journal's owner lock (see the module docstring). Returns the names
    removed."""
    removed = []
    lock = path.with_name(path.name + OPTUNA_LOCK_SUFFIX)
    leftovers = [p for p in path.parent.iterdir() if p.name.startswith(lock.name) and p.name.endswith(".rename")]
    for p in ([lock] if os.path.lexists(lock) else []) + leftovers:
        try:
            p.unlink()
            removed.append(p.name)
        except FileNotFoundError:
            pass
    return removed


def masked_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and records)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not parseable: show the scheme only, never the rest
        return url.split("://", 1)[0] + "://…"


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].split("+")[0].lower()


def _engine_kwargs(url: str) -> dict[str, Any]:
    """Connection timeouts per database driver."""
    scheme = _scheme(url)
    if scheme == "sqlite":
        return {"connect_args": {"timeout": SQLITE_BUSY_S}}
    return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}  # libpq, PyMySQL and mysqlclient alike


def check_rdb_url(url: str) -> str:
    """Refuse URLs that cannot hold a search; returns the masked URL for messages."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if _scheme(url) not in ("sqlite", "postgresql", "postgres", "mysql"):
        raise NasError(
            f"--storage {masked_url(url)!r}: unsupported URL scheme (allowed: sqlite:///FILE, postgresql://…, "
            "mysql://…, or a journal file path)"
        )
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise NasError(f"--storage {masked_url(url)!r}: not a database URL ({str(exc).splitlines()[0]})") from None
    if _scheme(url) == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise NasError(
            f"--storage {url!r} is an in-memory database: the search would save nothing and could not be "
            "resumed; give a file (sqlite:///study.db) or leave --storage out (a journal in the run folder)"
        )
    return masked_url(url)


def _open_rdb(url: str, attempts: int = 5) -> RDBStorage:
    """Open an RDB storage, retrying the schema-creation race between workers started together.

    Two workers opening a fresh database both run ``CREATE TABLE``; the loser gets a unique-key
    violation on the catalogue (PostgreSQL) or "already exists". By the retry the tables exist.
    """
    import sqlalchemy.exc

    shown = check_rdb_url(url)
    for attempt in range(attempts):
        try:
            return RDBStorage(
                url, engine_kwargs=_engine_kwargs(url), heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S
            )
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError, sqlalchemy.exc.OperationalError) as exc:
            # SQLite reports the race as an OperationalError "table … already exists"
            racing = isinstance(exc, sqlalchemy.exc.IntegrityError) or "already exists" in str(exc)
            if racing and attempt < attempts - 1:
                time.sleep(0.2 * (attempt + 1))
                continue
            why = _first_line(exc)
            if isinstance(exc, sqlalchemy.exc.OperationalError) and not racing:
                if "timeout" in why.lower() or "timed out" in why.lower():
                    why += f"; gave up after {CONNECT_TIMEOUT_S} s"
                raise NasError(f"--storage {shown!r}: cannot connect ({why})") from None
            raise NasError(f"--storage {shown!r}: cannot open ({why})") from None
        except Exception as exc:  # missing driver, bad credentials…
            raise NasError(f"--storage {shown!r}: cannot open ({_first_line(exc)})") from None
    raise AssertionError("unreachable")


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def open_storage(url: str | None, run_dir: Path) -> OpenedStorage:
    """Open ``url`` (RDB URL or journal file path) or the default journal in ``run_dir``.

    A journal is opened under its owner lock (a second process is refused, naming the owner), with
    a torn last line cut and a dead process's optuna lock broken."""
    quiet_optuna()
    if url and "://" in url:
        return OpenedStorage(_open_rdb(url), masked_url(url), "rdb")
    path = Path(url) if url else run_dir / JOURNAL_NAME
    # Not "<journal>.lock": that name is optuna's own inter-process lock for the journal file.
    lock = acquire(
        path.with_name(path.name + OWNER_SUFFIX),
        f"{path}: another mnv4-nas process is using this study; wait for it, or share a study across "
        "processes with --storage postgresql://…",
    )
    try:
        _repair_journal(path)
        broken = break_stale_journal_lock(path) if path.parent.exists() else []
        storage = JournalStorage(SyncAtTrialEnds(str(path)))
    except BaseException:
        lock.release()
        raise
    return OpenedStorage(storage, str(path), "journal", lock, broken)


def _unsynced_ops() -> frozenset[int]:
    """Journal records written without an fsync: a running trial's parameters and attributes. Everything
    else (study and trial creation, a trial's end) is synced, and an fsync makes every earlier line of
    the file durable too, so a finished trial never lacks its parameters after a power loss. Empty (sync
    everything, as optuna does) if optuna's record codes are not where this optuna version was read."""
    try:
        from optuna.storages.journal._storage import JournalOperation
    except ImportError:
        return frozenset()
    ops = JournalOperation
    return frozenset({ops.SET_TRIAL_PARAM, ops.SET_TRIAL_USER_ATTR, ops.SET_TRIAL_SYSTEM_ATTR})


class SyncAtTrialEnds(JournalFileBackend):
    """optuna's journal file with fewer fsyncs: optuna syncs every record, ~35 per trial of a search
    (one per parameter), which took 0.85 s of a default search's 100 trials; this one syncs the study's
    and trials' creation and each trial's end. Writes are the same whole lines under optuna's lock,
    so a process killed at any point (kill -9) leaves exactly what optuna's would: a record reaches
    the operating system before ``append_logs`` returns; only a power loss can take the unsynced
    tail of a running trial, which a resume fails anyway. It relies on optuna internals (its lock
    helper and record codes); where those moved, it writes exactly as optuna's backend."""

    def __init__(self, file_path: str) -> None:
        super().__init__(file_path)
        self._lock_file: Callable[[Any], AbstractContextManager[None]] | None = None
        try:
            from optuna.storages.journal._file import get_lock_file

            if hasattr(self, "_lock") and hasattr(self, "_file_path"):
                self._lock_file = get_lock_file
        except ImportError:
            pass
        self._unsynced = _unsynced_ops() if self._lock_file is not None else frozenset()

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        """Append ``logs`` as lines; fsync unless they all belong to a running trial's details."""
        if self._lock_file is None or any(log.get("op_code") not in self._unsynced for log in logs):
            super().append_logs(logs)
            return
        text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
        with self._lock_file(self._lock), open(self._file_path, "ab") as f:
            f.write(text.encode("utf-8"))


def fail_stale(study: optuna.Study, opened: OpenedStorage) -> int:
    """Fail trials left RUNNING by a killed process; returns how many were failed.

    Journal: we hold its owner lock, so every RUNNING trial is stale. RDB: trials whose heartbeat
    stopped, and at once those of a dead process on this host (their ``worker`` attribute names host
    and pid; waiting out the heartbeat's grace period would count them as taken meanwhile); another
    live worker's trials are left alone.
    """
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if opened.kind == "rdb":
        dead = [t for t in running if _dead_local_worker(t.user_attrs.get("worker"))]
        for t in dead:
            try:
                study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:  # finished meanwhile after all
                pass
        optuna.storages.fail_stale_trials(study)
        after = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        return len({t.number for t in running} - after)
    for t in running:
        study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
    return len(running)


def _dead_local_worker(worker: object) -> bool:
    """Whether a trial's ``worker`` attribute (``host:pid``) names a process of this host that is gone."""
    if not isinstance(worker, str) or ":" not in worker:
        return False
    host, _, pid = worker.rpartition(":")
    return host == HOST and pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid))


__all__ = [
    "CONNECT_TIMEOUT_S",
    "GRACE_S",
    "HEARTBEAT_S",
    "JOURNAL_NAME",
    "OPTUNA_LOCK_SUFFIX",
    "OWNER_SUFFIX",
    "SQLITE_BUSY_S",
    "OpenedStorage",
    "SyncAtTrialEnds",
    "break_stale_journal_lock",
    "check_rdb_url",
    "fail_stale",
    "masked_url",
    "open_storage",
    "quiet_optuna",
]
