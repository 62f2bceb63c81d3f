"""``latency profile`` and ``latency validate`` leave no temporary folder behind: theirs is named after
the process, removed on any exception, and swept by the next run when the process was killed."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from latency_helpers import FakeTimer

from nas._lock import HOST
from nas.latency import TimingConfig, profile_host
from nas.spec import arch_keys

CFG = TimingConfig(threads=1, runs=3, sessions=1, warmup=1)


class RecordingTimer(FakeTimer):
    """A fake timer that remembers the folder it was given."""

    def __init__(self, fail_after: int | None = None):
        super().__init__(fail_after=fail_after)
        self.workdirs: set[Path] = set()

    def __call__(self, key, cfg, workdir):
        self.workdirs.add(Path(workdir))
        return super().__call__(key, cfg, workdir)


def test_an_interrupted_profile_removes_its_named_temp_folder(tables_dir, tiny_conv):
    keys = list(dict.fromkeys(arch_keys(tiny_conv)))
    timer = RecordingTimer(fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        profile_host(keys, cfg=CFG, tables_dir=tables_dir, measure=timer, call_ms=0.0)
    (work,) = timer.workdirs
    assert work.name.startswith(f"mnv4nas-profile-{os.getpid()}@{HOST}-")
    assert not work.exists()


def test_the_next_profile_sweeps_a_killed_runs_folder(tables_dir, tiny_conv):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = Path(tempfile.mkdtemp(prefix=f"mnv4nas-profile-{dead.pid}@{HOST}-"))
    (left / "entry.onnx").write_bytes(b"half an export")
    keys = list(dict.fromkeys(arch_keys(tiny_conv)))[:2]
    profile_host(keys, cfg=CFG, tables_dir=tables_dir, measure=RecordingTimer(), call_ms=0.0)
    assert not left.exists()
