"""Writing a distillation store, resumably: :class:`StoreWriter`.

Every file is written atomically (``nas._io.write_atomic``): the manifest first, then each shard,
then the manifest again listing it. A kill -9 therefore leaves finished shards (listed or not yet
listed) and at most stale temporary files. Reopening the folder with the same settings removes the
temporary files, adopts a finished but unlisted shard after checking it, and continues; a shard
the manifest lists is never rewritten. Other settings are refused before anything is touched.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import torch

from nas._io import write_atomic, write_text_atomic
from nas.data._store import (
    FORMAT,
    MANIFEST,
    VERSION,
    ShardRecord,
    StoreError,
    check_shard,
    finished_shards,
    load_shard,
    read_manifest,
    sha256_file,
    shard_name,
)
from nas.inputs import check_output_dir
from nas.units import utc_timestamp

_TEMP_RE = re.compile(r"\.(manifest\.json|shard-\d{5,}\.safetensors)\.\d+\.tmp")
_HINT = "choose a writable --out"

#: settings key -> the option that sets it (named in the error when a resumed build differs)
_OPTIONS = {
    "teacher": "--teacher",
    "data": "--data",
    "aug": "--aug",
    "replicas": "--replicas",
    "seed": "--seed",
    "shard_size": "--shard-size",
    "batch_size": "--batch-size",
}


def _short(v: Any, n: int = 48) -> str:
    s = v if isinstance(v, str) else json.dumps(v)
    return s if len(s) <= n else s[: n - 1] + "…"


def settings_difference(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """``"--aug (mixup there, none now)"`` for the first setting that differs, else ``None``."""
    for key in sorted(set(old) | set(new), key=lambda k: (k not in _OPTIONS, k)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        opt = _OPTIONS.get(key, key)
        if isinstance(a, dict) and isinstance(b, dict):
            sub = next(k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))
            opt = "--resolution" if key == "data" and sub == "resolution" else f"{opt} (its {sub})"
            a, b = a.get(sub), b.get(sub)
        return f"{opt} ({_short(a)} there, {_short(b)} now)"
    return None


class StoreWriter:
    """Creates or resumes the store folder ``out`` for ``settings`` (JSON-able: teacher, data, aug,
    replicas, seed, shard_size, batch_size) holding ``examples`` examples in ``num_shards`` shards.
    A context manager: it holds an exclusive lock on the folder while open."""

    def __init__(self, out: str | Path, settings: dict[str, Any], *, examples: int, num_shards: int):
        self.path = check_output_dir(out, "--out")
        self.settings = json.loads(json.dumps(settings, allow_nan=False))  # as it will read back
        self.examples, self.num_shards = int(examples), int(num_shards)
        self.done: dict[int, ShardRecord] = {}
        self.resumed = 0
        self.built = 0
        self._fd: int | None = None
        self._manifest: dict[str, Any] = {}
        self._prior_wall = 0.0
        self._prior_images = 0
        self._sessions = 0
        self._start = time.perf_counter()

    def __enter__(self) -> StoreWriter:
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            self._prepare()
        except BaseException:
            self._unlock()
            raise
        self._start = time.perf_counter()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self._unlock()

    def _lock(self) -> None:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StoreError(f"--out {self.path}: another process is building this store") from None
        self._fd = fd

    def _unlock(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def _prepare(self) -> None:
        if (self.path / MANIFEST).exists():
            self._resume(read_manifest(self.path))
        else:
            others = [e.name for e in self.path.iterdir() if not _TEMP_RE.fullmatch(e.name)]
            if others:
                raise StoreError(
                    f"--out {self.path}: the folder holds other files ({_short(', '.join(sorted(others)))}) "
                    "and no distillation store; give a new or empty folder"
                )
            self._manifest = {
                "format": FORMAT,
                "version": VERSION,
                "settings": self.settings,
                "examples": self.examples,
                "num_shards": self.num_shards,
                "complete": False,
                "shards": [],
                "build": {},
                "created": utc_timestamp(),
            }
        for e in self.path.iterdir():
            if _TEMP_RE.fullmatch(e.name):
                e.unlink(missing_ok=True)
        if not self.complete:  # a finished store is left exactly as it is
            self._sessions += 1
            self._save()

    def _resume(self, m: dict[str, Any]) -> None:
        where = str(self.path / MANIFEST)
        diff = settings_difference(m["settings"], self.settings)
        if diff is not None:
            raise StoreError(
                f"--out {self.path}: this store was built with another {diff}; rerun with its "
                "settings or choose another --out"
            )
        if m.get("examples") != self.examples or m.get("num_shards") != self.num_shards:
            raise StoreError(f"{where}: fields 'examples'/'num_shards' do not match its settings")
        self.done = finished_shards(m, where)
        for rec in self.done.values():
            p = self.path / rec.file
            if not p.is_file() or p.stat().st_size != rec.bytes:
                raise StoreError(
                    f"{self.path}: finished shard {rec.file} is missing or changed; nothing was rewritten "
                    "(restore it, or build the store again in another --out)"
                )
        b = m.get("build")
        if not isinstance(b, dict):
            b = {}
        self._prior_wall = float(b.get("wall_s", 0.0))
        self._prior_images = int(b.get("images_built", 0))
        self._sessions = int(b.get("sessions", 0))
        self._manifest = m
        self.resumed = len(self.done)

    # -- shards --------------------------------------------------------------------------------

    def is_done(self, k: int) -> bool:
        """Whether shard ``k`` is finished; a finished file the manifest does not list yet (the
        build was killed in between) is checked and adopted."""
        if k in self.done:
            return True
        p = self.path / shard_name(k)
        if not p.is_file():
            return False
        try:
            t = load_shard(p, str(p))
            self._check(t, str(p))
        except StoreError:
            return False  # not a finished shard: it is written again
        self._record(k, int(t["labels"].shape[0]), p.stat().st_size, sha256_file(p))
        self.resumed += 1
        return True

    def _check(self, t: dict[str, torch.Tensor], name: str) -> None:
        d = self.settings["data"]
        n = int(t["labels"].shape[0]) if "labels" in t else -1
        check_shard(t, n, len(d["classes"]), d["resolution"], self.settings["replicas"], d["train_images"], name)

    def write_shard(self, k: int, tensors: dict[str, torch.Tensor]) -> None:
        """Write shard ``k`` atomically, then list it in the manifest."""
        from safetensors.torch import save

        self._check(tensors, f"shard {k} being written")
        # One metadata key: safetensors writes a map's keys in hash order, which varies between processes.
        blob = save({n: t.contiguous() for n, t in tensors.items()}, metadata={"format": FORMAT})
        write_atomic(self.path / shard_name(k), lambda fh: fh.write(blob), _HINT)
        self.built += int(tensors["labels"].shape[0])
        self._record(k, int(tensors["labels"].shape[0]), len(blob), hashlib.sha256(blob).hexdigest())

    def _record(self, k: int, n: int, size: int, sha: str) -> None:
        self.done[k] = ShardRecord(k, shard_name(k), n, size, sha)
        self._save()

    @property
    def complete(self) -> bool:
        """Whether every shard is finished."""
        return len(self.done) == self.num_shards

    def session_s(self) -> float:
        """Time since this writer opened the store (s)."""
        return time.perf_counter() - self._start

    def wall_s(self) -> float:
        """Build time over every session so far (s)."""
        return self._prior_wall + time.perf_counter() - self._start

    def _save(self) -> None:
        m = self._manifest
        wall = self.wall_s()
        images = self._prior_images + self.built
        m["shards"] = [self.done[k].to_dict() for k in sorted(self.done)]
        m["complete"] = self.complete
        m["build"] = {
            "wall_s": round(wall, 3),
            "images_built": images,
            "sessions": self._sessions,
            "images_per_s": round(images / wall, 1) if wall > 0 and images else None,
        }
        m["updated"] = utc_timestamp()
        write_text_atomic(self.path / MANIFEST, json.dumps(m, indent=1, allow_nan=False) + "\n", _HINT)

    def finish(self) -> dict[str, Any]:
        """Write the final manifest (``complete`` when every shard is done) and return it."""
        if self.built or self.resumed < self.num_shards:
            self._save()
        return json.loads(json.dumps(self._manifest))
