"""Optuna storage for a search: the record of every trial, resumable after kill -9.

Default: optuna's append-only journal file in the run folder. Measured on this 2-core machine with
~30 categorical parameters per trial, the journal wrote 65 trials/s and SQLite 9 trials/s (optuna
5.0, `benchmarks/storage_speed.py`); at SQLite's rate the storage alone would cost ~0.1 s per trial,
a third of a proxy evaluation. The journal is also crash-safe by construction: records are whole
lines, and a torn last line left by kill -9 is cut before the study is reopened.

Any RDB URL (``sqlite:///…``, ``postgresql://…``) selects optuna's RDBStorage with a heartbeat, so
that several workers (several machines, one PostgreSQL) can share a study and a worker killed
mid-trial has its trial failed instead of left running forever.
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from nas.errors import NasError

JOURNAL_NAME = "study.journal"
HEARTBEAT_S = 30
GRACE_S = 120


@dataclass
class OpenedStorage:
    """A storage plus what the run needs to know about it."""

    storage: Any
    url: str  # what the user would pass to --storage to reach it again
    kind: str  # journal | rdb
    lock: Any = None  # open file holding the run folder's lock (journal only)

    def close(self) -> None:
        """Release the run-folder lock."""
        if self.lock is not None:
            self.lock.close()
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


def _open_rdb(url: str, attempts: int = 5) -> RDBStorage:
    """Open an RDB storage, retrying the schema-creation race between workers started together.

    Two workers opening a fresh database both run ``CREATE TABLE``; the loser gets a unique-key
    violation on the catalogue (PostgreSQL) or "already exists". By the retry the tables exist.
    """
    import sqlalchemy.exc

    for attempt in range(attempts):
        try:
            return RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as exc:
            racing = isinstance(exc, sqlalchemy.exc.IntegrityError) or "already exists" in str(exc)
            if not racing or attempt == attempts - 1:
                raise NasError(f"--storage {url!r}: cannot open ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
            time.sleep(0.2 * (attempt + 1))
        except Exception as exc:  # connection refused, missing driver, bad credentials…
            raise NasError(f"--storage {url!r}: cannot open ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    raise AssertionError("unreachable")


def open_storage(url: str | None, run_dir: Path) -> OpenedStorage:
    """Open ``url`` (RDB URL or journal file path) or the default journal in ``run_dir``."""
    if url and "://" in url:
        if url.split("://", 1)[0].split("+")[0] not in ("sqlite", "postgresql", "postgres", "mysql"):
            raise NasError(f"--storage {url!r}: unsupported URL scheme (allowed: sqlite://, postgresql://, mysql://, or a journal file path)")
        return OpenedStorage(_open_rdb(url), url, "rdb")
    path = Path(url) if url else run_dir / JOURNAL_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not "<journal>.lock": that name is optuna's own inter-process lock for the journal file.
    lock = open(path.with_name(path.name + ".owner"), "w")
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        raise NasError(
            f"{path}: another mnv4-nas process is using this study; wait for it, or share a study across "
            "processes with --storage postgresql://…"
        ) from None
    _repair_journal(path)
    return OpenedStorage(JournalStorage(JournalFileBackend(str(path))), str(path), "journal", lock)


def fail_stale(study: optuna.Study, opened: OpenedStorage) -> int:
    """Fail trials left RUNNING by a killed process; returns how many were failed.

    Journal: we hold the run folder's lock, so every RUNNING trial is stale. RDB: only trials whose
    heartbeat stopped (another live worker's trials are left alone).
    """
    if opened.kind == "rdb":
        before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        optuna.storages.fail_stale_trials(study)
        after = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        return len(before - after)
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        n += 1
    return n
