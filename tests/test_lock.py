"""``nas._lock``: owner-naming locks released by the kernel when the owner dies, and temporary folders a
later run removes when their owner was killed."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest

from nas._lock import HOST, LockedError, acquire, owned_tempdir, pid_alive, sweep_tempdirs

HOLD = "import sys, time; from pathlib import Path; from nas._lock import acquire; acquire(Path(sys.argv[1]), 'busy'); print('held', flush=True); time.sleep(120)"  # noqa: E501


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_second_holder_is_refused_naming_the_owner_and_a_kill_9_frees_the_lock(tmp_path):
    path = tmp_path / "x.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockedError, match=rf"^busy \(pid {holder.pid} on {HOST}, since \d{{4}}-"):
            acquire(path, "busy")
        assert f'"pid": {holder.pid}' in path.read_text()  # the refused attempt did not wipe the record
    finally:
        holder.kill()
        holder.wait()
    with acquire(path, "busy") as lock:  # no stale lock after kill -9
        assert lock.fd is not None and f'"pid": {os.getpid()}' in path.read_text()


def test_the_same_process_cannot_take_a_lock_twice(tmp_path):
    with acquire(tmp_path / "x.lock", "busy"):
        with pytest.raises(LockedError):
            acquire(tmp_path / "x.lock", "busy")


def test_pid_alive():
    assert pid_alive(os.getpid())
    assert not pid_alive(_dead_pid())
    assert not pid_alive(0)


def test_owned_tempdir_is_removed_on_exceptions_too():
    with pytest.raises(RuntimeError), owned_tempdir("test") as d:
        assert d.is_dir() and d.name.startswith(f"mnv4nas-test-{os.getpid()}@{HOST}-")
        (d / "f").write_text("x")
        raise RuntimeError("boom")
    assert not d.exists()


def test_sweep_removes_only_folders_of_dead_owners_on_this_host(tmp_path):
    dead, alive = _dead_pid(), os.getppid()
    gone = tmp_path / f"mnv4nas-profile-{dead}@{HOST}-abc_12"
    kept = [
        tmp_path / f"mnv4nas-profile-{alive}@{HOST}-abc_12",  # owner alive
        tmp_path / f"mnv4nas-profile-{dead}@another-host-abc_12",  # someone else's temp dir
        tmp_path / "mnv4nas-profile-6zlocvea",  # an old unnamed folder: owner unknown
        tmp_path / "unrelated",
    ]
    for d in [gone, *kept]:
        d.mkdir()
        (d / "entry.onnx").write_bytes(b"x")
    assert sweep_tempdirs(tmp_path) == [gone.name]
    assert not gone.exists() and all(d.exists() for d in kept)


def test_owned_tempdir_sweeps_the_system_temp_dir():
    dead = _dead_pid()
    left = tempfile.mkdtemp(prefix=f"mnv4nas-profile-{dead}@{HOST}-")
    with owned_tempdir("test"):
        assert not os.path.exists(left)
