"""Ray workers, a PostgreSQL study shared by two worker processes, and kill -9 during a search."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from nas.latency import load_predictor
from nas.search import run_search
from nas.spec import load_spec_file

EXE = shutil.which("mnv4-nas") or os.path.join(os.path.dirname(sys.executable), "mnv4-nas")
SEARCH = [
    "search",
    "--space",
    "mnv4-conv-small",
    "--estimator",
    "params",
    "--target",
    "pixel8-edgetpu",
    "--budget",
    "0.72ms",
]


@pytest.mark.slow
def test_ray_runs_four_trials_on_two_local_workers(settings, capfd):
    ray = pytest.importorskip("ray")
    try:
        out = run_search(settings(one_stage=True, trials=4, workers=2))
    finally:
        ray.shutdown()
    assert len(out.trials) == 4 and set(out.trials["stage"]) == {"joint"}
    assert load_predictor("pixel8-edgetpu").predict_archs([out.best]).latency_ms[0] <= 0.72
    assert (out.out_dir / "ray").is_dir()
    assert "NaN or Inf" not in capfd.readouterr().err  # over-budget trials report −inf: no TensorBoard noise
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(out.out_dir / "study.journal"))
    )
    trials = optuna.load_study(study_name=f"{out.out_dir.name}:joint", storage=storage).trials
    assert all("arch" in t.user_attrs for t in trials)  # so that a rerun can rewrite the results at once


def test_ray_gets_a_silent_tensorboard_logger():
    pytest.importorskip("ray")
    from ray.tune.logger import TBXLoggerCallback
    from ray.tune.utils.callback import _create_default_callbacks

    from nas.search._ray_support import NoTensorboard

    callbacks = _create_default_callbacks([NoTensorboard()])
    tbx = [c for c in callbacks if isinstance(c, TBXLoggerCallback)]
    assert len(tbx) == 1 and isinstance(tbx[0], NoTensorboard)
    tbx[0].log_trial_result(1, object(), {"score": float("-inf")})  # writes nothing, prints nothing


def _postgres_url() -> str:
    url = os.environ.get("MNV4NAS_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("MNV4NAS_TEST_POSTGRES_URL not set (.ci/run starts a server and sets it)")
    return url


@pytest.mark.slow
def test_two_workers_share_one_postgres_study(tmp_path):
    url = _postgres_url()
    study = f"pg-{os.getpid()}-{time.time_ns()}"
    cmd = [EXE, *SEARCH, "--one-stage", "--trials", "16", "--storage", url, "--study", study, "--json"]
    procs = [
        subprocess.Popen(
            [*cmd, "--out", str(tmp_path / f"w{i}")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    shared = optuna.load_study(study_name=f"{study}:joint", storage=url)
    done = [t for t in shared.trials if t.state.name == "COMPLETE"]
    assert len(done) == 16  # exact: a trial that finds the stage full is failed as surplus, not run
    assert len({t.user_attrs["worker"] for t in done}) == 2  # both processes added trials
    assert len({t.number for t in shared.trials}) == len(shared.trials)
    for i in range(2):
        assert load_spec_file(tmp_path / f"w{i}" / "best.json")


@pytest.mark.slow
def test_kill_9_loses_no_completed_trial(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [EXE, *SEARCH, "--coarse-trials", "400", "--fine-trials", "4", "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    journal = out / "study.journal"
    deadline = time.time() + 120
    storage = None
    while time.time() < deadline:
        time.sleep(0.5)
        if journal.exists():
            storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
            try:
                st = optuna.load_study(study_name=f"{out.name}:coarse", storage=storage)
            except KeyError:
                continue
            if sum(t.state.name == "COMPLETE" for t in st.trials) >= 6:
                break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert storage is not None
    before = {
        t.number: t.params
        for t in optuna.load_study(study_name=f"{out.name}:coarse", storage=storage).trials
        if t.state.name == "COMPLETE"
    }
    assert len(before) >= 6
    r = subprocess.run(
        [EXE, *SEARCH, "--coarse-trials", str(len(before) + 3), "--fine-trials", "4", "--out", str(out), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    after = optuna.load_study(study_name=f"{out.name}:coarse", storage=storage).trials
    complete = {t.number: t.params for t in after if t.state.name == "COMPLETE"}
    assert all(complete[n] == p for n, p in before.items())  # nothing completed was lost or changed
    assert len(complete) == len(before) + 3
    assert not any(t.state.name == "RUNNING" for t in after)  # the killed trial was failed, not left hanging
    assert Path(out / "best.json").exists()


@pytest.mark.slow
def test_workers_opening_a_fresh_database_together_all_succeed():
    """The first workers on an empty database race to create optuna's tables; none may fail."""
    psycopg = pytest.importorskip("psycopg")
    url = _postgres_url()
    base, _, _ = url.rpartition("/")
    name = f"mnv4nas_race_{os.getpid()}_{time.time_ns() % 10**9}"
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        code = "import sys; from nas.search._storage import _open_rdb; _open_rdb(sys.argv[1])"
        procs = [
            subprocess.Popen([sys.executable, "-c", code, f"{base}/{name}"], stderr=subprocess.PIPE, text=True)
            for _ in range(3)
        ]
        errs = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], errs
    finally:
        with psycopg.connect(base + "/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
