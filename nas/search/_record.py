"""The run folder of a search: its lock, ``run.json`` (the run's settings and, once finished, what a
rerun needs to rewrite the results without searching) and the sweep of a killed writer's leftovers.

One lock guards the whole folder whatever the storage (journal, SQLite, PostgreSQL) and whatever
the engine: a second ``search`` on the same ``--out`` is refused, naming the running process.
``run.json`` is replaced atomically. Should it still be unreadable (edited by hand, a broken disk),
the search refuses with a one-line error that says how to go on: delete it and rerun the same
command — the trials in the storage are kept and the run continues with the settings given then.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas._io import write_text_atomic
from nas._lock import Lock, acquire, pid_alive
from nas.errors import NasError
from nas.inputs import read_json

RUN_FILE = "run.json"
LOCK_FILE = ".mnv4nas.lock"
#: files that make a folder one of ours even without run.json (a run killed before writing it)
_MARKERS = (RUN_FILE, LOCK_FILE, "study.journal")
_TMP = re.compile(r"^\..+\.(\d+)\.tmp$")  # nas._io.write_atomic's temporary files
OUT_HINT = "give --out a writable folder"


@dataclass
class RunDir:
    """A locked run folder and the ``run.json`` found in it (None for a new run)."""

    path: Path
    lock: Lock
    previous: dict[str, Any] | None

    def release(self) -> None:
        """Release the folder lock."""
        self.lock.release()

    def write_record(self, record: dict[str, Any]) -> None:
        """Replace ``run.json`` atomically."""
        write_text_atomic(self.path / RUN_FILE, json.dumps(record, indent=2) + "\n", OUT_HINT)
        self.previous = record


def check_run_dir(out: Path) -> None:
    """Refuse a file, or an existing folder that holds something other than a search run."""
    if out.exists() and not out.is_dir():
        raise NasError(f"--out {out} is a file; give a folder for the run's results")
    if out.is_dir() and any(out.iterdir()) and not any((out / m).exists() for m in _MARKERS):
        raise NasError(f"--out {out} exists and is not a search run folder (no run.json)")


def open_run_dir(out: Path) -> RunDir:
    """Create and lock the run folder, sweep a killed writer's temporary files, read ``run.json``."""
    check_run_dir(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NasError(f"--out {out}: cannot create the folder ({exc.strerror})") from None
    lock = acquire(
        out / LOCK_FILE,
        f"--out {out}: another mnv4-nas search is running in this folder; wait for it or pick another --out",
    )
    try:
        sweep_temporaries(out)
        previous = read_record(out / RUN_FILE)
    except BaseException:
        lock.release()
        raise
    return RunDir(out, lock, previous)


def read_record(path: Path) -> dict[str, Any] | None:
    """``run.json`` as a dict, None when absent; unreadable → a one-line error saying how to go on."""
    if not path.exists():
        return None
    try:
        rec = read_json(path, "run record")
        if not isinstance(rec, dict) or not isinstance(rec.get("identity"), dict):
            raise NasError(f"{path}: not a search run record")
    except NasError as exc:
        why = str(exc).removeprefix(f"{path}: ")
        raise NasError(
            f"{path}: unreadable run record ({why}); delete it and rerun the same command to resume with "
            "those settings (the trials in the storage are kept), or use a new --out"
        ) from None
    return rec


def sweep_temporaries(folder: Path) -> list[str]:
    """Remove atomic-write temporaries (``.NAME.PID.tmp``) of dead processes from ``folder``."""
    removed = []
    for p in folder.iterdir():
        m = _TMP.match(p.name)
        if m and int(m.group(1)) != os.getpid() and not pid_alive(int(m.group(1))) and p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p.name)
    return removed


def check_identity(run: RunDir, identity: dict[str, Any]) -> None:
    """Refuse to resume a run made with other settings."""
    if run.previous is None:
        return
    for key, value in identity.items():
        had = run.previous.get("identity", {}).get(key)
        if had != value:
            raise NasError(
                f"{run.path} holds a search with a different {key} ({had!r}, now {value!r}); "
                "resume with the same settings or pick a new --out"
            )


def file_stamp(path: str | Path | None) -> list[Any] | None:
    """(path, size, mtime) of a file a search read, so that a rerun notices when it changed."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return [str(path), None, None]
    return [str(path), st.st_size, st.st_mtime_ns]


def normalized(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists, paths strings)."""
    return json.loads(json.dumps(obj, default=str))


__all__ = [
    "LOCK_FILE",
    "RUN_FILE",
    "RunDir",
    "check_identity",
    "check_run_dir",
    "file_stamp",
    "normalized",
    "open_run_dir",
    "read_record",
    "sweep_temporaries",
]
