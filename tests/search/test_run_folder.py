"""The run folder under crashes and concurrency: one lock whatever the storage, a killed process's optuna
lock broken at once, run.json and the result files replaced atomically, a finished run rerun at once,
storage URLs checked before any work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.storages.journal import JournalFileSymlinkLock

import nas._io
import nas.supernet
from nas.errors import NasError
from nas.latency import load_predictor
from nas.search import SilentReporter, check_space, pair_budgets, run_search
from nas.search._record import LOCK_FILE
from nas.search._storage import _engine_kwargs, open_storage
from nas.space import load_space

RESULTS = ("best.json", "best.timm.txt", "trials.csv", "pareto.csv", "pareto.png", "summary.md", "run.json")
HOLD = (
    "import sys, time; from pathlib import Path; from nas.search._record import open_run_dir; "
    "open_run_dir(Path(sys.argv[1])); print('locked', flush=True); time.sleep(120)"
)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_killed_processs_optuna_journal_lock_is_broken_at_once(settings, monkeypatch):
    out = run_search(settings()).out_dir
    journal = out / "study.journal"
    # What JournalFileSymlinkLock leaves when its process is killed inside an append: the symlink,
    # or the renamed file of a release cut short.
    os.symlink(journal, journal.with_name("study.journal.lock"))
    half = journal.with_name("study.journal.lock" + "0" * 32 + ".rename")
    half.write_text("")
    met = []
    real = JournalFileSymlinkLock.acquire

    def acquire(self):
        met.append(os.path.lexists(self._lock_file))  # True: optuna would wait out its 30 s grace period
        return real(self)

    monkeypatch.setattr(JournalFileSymlinkLock, "acquire", acquire)
    rep = SilentReporter()
    again = run_search(settings(fine_trials=8), rep)
    assert met and not any(met)
    assert not os.path.lexists(journal.with_name("study.journal.lock")) and not half.exists()
    assert any("stale optuna lock" in n for n in rep.notes)
    assert (again.trials["stage"] == "fine").sum() == 8


def test_one_lock_guards_the_folder_whatever_the_storage(settings, tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    sqlite = settings(storage=f"sqlite:///{tmp_path / 's.db'}", study="s")
    try:
        assert holder.stdout.readline().strip() == "locked"
        for s in (settings(), sqlite):  # a journal run and an RDB run alike
            with pytest.raises(
                NasError, match=rf"another mnv4-nas search is running in this folder.*\(pid {holder.pid} on "
            ):
                run_search(s)
        assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]  # the refused searches wrote nothing
    finally:
        holder.kill()
        holder.wait()
    assert (run_search(sqlite).out_dir / "best.json").exists()  # kill -9 left no stale lock


def test_a_refused_search_creates_no_folder(settings, tmp_path):
    with pytest.raises(NasError, match="below the smallest latency"):
        run_search(settings(budgets=["0.1ms"]))
    assert not (tmp_path / "run").exists()


def test_results_are_replaced_atomically(settings, monkeypatch):
    out = run_search(settings()).out_dir
    before = {n: (out / n).read_bytes() for n in RESULTS}
    real = os.replace

    def killed_at_summary(src, dst):
        if Path(dst).name == "summary.md":
            raise KeyboardInterrupt  # as if killed between writing the temporary and renaming it
        real(src, dst)

    monkeypatch.setattr(nas._io.os, "replace", killed_at_summary)
    with pytest.raises(KeyboardInterrupt):
        run_search(settings(fine_trials=8))
    assert (out / "summary.md").read_bytes() == before["summary.md"]  # the old file, whole
    assert json.loads((out / "run.json").read_text())["identity"]  # run.json readable
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


def test_corrupt_run_json_is_a_one_line_error_that_says_how_to_resume(settings):
    first = run_search(settings())
    out = first.out_dir
    (out / "run.json").write_text('{"format": "mnv4-nas/search-run-v1", "ident')
    with pytest.raises(NasError) as err:
        run_search(settings())
    msg = str(err.value)
    assert "\n" not in msg and "run.json: unreadable run record" in msg and "delete it and rerun" in msg
    (out / "run.json").unlink()
    again = run_search(settings(fine_trials=8))
    coarse = again.trials[again.trials["stage"] == "coarse"]
    assert list(coarse["trial"]) == list(first.trials[first.trials["stage"] == "coarse"]["trial"])  # kept, not rerun
    assert (again.trials["stage"] == "fine").sum() == 8


def test_a_killed_writers_temporaries_are_swept(settings):
    out = run_search(settings()).out_dir
    left = out / f".best.json.{_dead_pid()}.tmp"
    left.write_text("{half")
    run_search(settings(fine_trials=7))
    assert not left.exists()


def test_rerun_of_a_finished_search_returns_at_once_without_searching(settings, monkeypatch):
    first = run_search(settings())
    out = first.out_dir
    stamps = {n: (out / n).stat().st_mtime_ns for n in RESULTS}

    def no_estimator(*a, **k):
        raise AssertionError("a finished search built an estimator")

    monkeypatch.setattr(nas.supernet, "make_estimator", no_estimator)
    rep = SilentReporter()
    again = run_search(settings(), rep)
    assert (again.best, again.best_score, again.all_latency_ms) == (first.best, first.best_score, first.all_latency_ms)
    assert again.trials.equals(first.trials) and again.pareto.equals(first.pareto)
    assert any("this search is finished" in n for n in rep.notes)
    assert {n: (out / n).stat().st_mtime_ns for n in RESULTS} == stamps  # nothing rewritten
    summary = (out / "summary.md").read_text()
    (out / "summary.md").unlink()  # a lost result file is written again, still without searching
    run_search(settings())
    assert (out / "summary.md").read_text() == summary
    monkeypatch.undo()
    more = run_search(settings(fine_trials=8))  # a larger request searches on
    assert (more.trials["stage"] == "fine").sum() == 8


def test_budget_below_the_coarse_stages_reach_names_the_one_stage_option(settings, tmp_path):
    with pytest.raises(NasError, match=r"coarse stage of mnv4-conv-small .*cannot go below 0\.64 ms.*--one-stage"):
        run_search(settings(budgets=["0.63ms"]))
    assert not (tmp_path / "run").exists()
    budgets = pair_budgets(["pixel8-edgetpu"], ["0.63ms"], ["pixel8-edgetpu"])
    mins = check_space(load_space("mnv4-conv-small"), budgets, {"pixel8-edgetpu": load_predictor("pixel8-edgetpu")})
    assert mins["pixel8-edgetpu"] < 0.63  # one stage can meet it


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_sqlite_is_refused(settings, tmp_path, url):
    with pytest.raises(NasError, match="in-memory database: the search would save nothing"):
        run_search(settings(storage=url))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("host", ["127.0.0.1:1", "10.255.255.1:5432"])  # refused at once / unroutable
def test_unreachable_database_is_a_one_line_error_without_the_password(tmp_path, monkeypatch, host):
    pytest.importorskip("psycopg")
    monkeypatch.setattr("nas.search._storage.CONNECT_TIMEOUT_S", 2)
    with pytest.raises(NasError) as err:
        open_storage(f"postgresql://me:s3cret@{host}/db", tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "cannot connect" in msg and "me:***@" in msg and "s3cret" not in msg


def test_rdb_connections_have_timeouts():
    assert _engine_kwargs("postgresql://h/db")["connect_args"] == {"connect_timeout": 10}
    assert _engine_kwargs("mysql+pymysql://h/db")["connect_args"] == {"connect_timeout": 10}
    assert _engine_kwargs("sqlite:///x.db")["connect_args"]["timeout"] > 5


def test_rdb_resume_fails_a_dead_local_workers_trial_at_once(tmp_path):
    from nas._lock import HOST

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="s", storage=url)
    dead, alive = study.ask(), study.ask()
    dead.set_user_attr("worker", f"{HOST}:{_dead_pid()}")
    alive.set_user_attr("worker", "another-host:1")
    opened = open_storage(url, tmp_path)
    from nas.search._storage import fail_stale

    assert fail_stale(optuna.load_study(study_name="s", storage=opened.storage), opened) == 1
    states = {t.number: t.state.name for t in optuna.load_study(study_name="s", storage=url).trials}
    assert states == {dead.number: "FAIL", alive.number: "RUNNING"}  # another host's trial waits for its heartbeat
