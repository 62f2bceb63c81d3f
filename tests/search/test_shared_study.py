"""Several workers sharing one study end each stage with exactly the trials asked for."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import optuna
import pytest

import nas.search._optuna_engine as engine
from nas.latency import load_predictor
from nas.search import Evaluator, pair_budgets
from nas.search._optuna_engine import SURPLUS, StageSpec, run_local
from nas.search._storage import open_storage
from nas.space import load_space
from nas.supernet import make_estimator

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


def _stage(n: int) -> tuple[StageSpec, Evaluator]:
    budgets = pair_budgets(["pixel8-edgetpu"], ["0.72ms"], ["pixel8-edgetpu"])
    ev = Evaluator({"pixel8-edgetpu": load_predictor("pixel8-edgetpu")}, budgets, make_estimator("params"))
    return StageSpec("joint", "s:joint", load_space("mnv4-conv-small"), n), ev


def test_a_trial_another_worker_is_running_counts_towards_the_total(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    stage, ev = _stage(4)
    opened = open_storage(url, tmp_path)
    run_local(StageSpec(stage.label, stage.study_name, stage.space, 3), ev, opened, multi=False, seed=0)
    study = optuna.load_study(study_name=stage.study_name, storage=url)
    other = study.ask()  # the 4th trial, running on another machine
    other.set_user_attr("worker", "another-host:1")
    run_local(stage, ev, opened, multi=False, seed=0)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3 + ["RUNNING"]  # nothing started
    study.tell(other, state=optuna.trial.TrialState.FAIL)  # that machine died; its heartbeat failed the trial
    run_local(stage, ev, opened, multi=False, seed=0)
    assert sum(t.state.name == "COMPLETE" for t in study.trials) == 4


def test_two_workers_starting_the_last_trial_together_complete_it_once(tmp_path, monkeypatch):
    """Worker A checks (3 of 4 taken) just as worker B starts the 4th trial: A's trial, numbered after
    B's, finds the stage full and is failed as surplus without running."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    stage, ev = _stage(4)
    opened = open_storage(url, tmp_path)
    run_local(StageSpec(stage.label, stage.study_name, stage.space, 3), ev, opened, multi=False, seed=0)
    study = optuna.load_study(study_name=stage.study_name, storage=url)
    real = engine.taken

    def stale_view(st, before=None):
        if before is None and not hasattr(stale_view, "b"):
            stale_view.b = study.ask()  # B starts the 4th trial right after A counted
            stale_view.b.set_user_attr("worker", "another-host:1")
            return 3
        return real(st, before)

    monkeypatch.setattr(engine, "taken", stale_view)
    scored = []
    run_local(stage, ev, opened, multi=False, seed=0, on_trial=scored.append)
    states = [(t.state.name, t.user_attrs.get(SURPLUS, False)) for t in study.trials]
    assert states == [("COMPLETE", False)] * 3 + [("RUNNING", False), ("FAIL", True)]
    assert scored == []  # the surplus trial is not reported as a trial
    study.tell(stale_view.b, 1.0)
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials) == 4


@pytest.mark.slow
def test_two_processes_on_one_sqlite_study_complete_exactly_the_trials_asked(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    study = f"sq-{time.time_ns()}"
    cmd = [EXE, *SEARCH, "--coarse-trials", "12", "--fine-trials", "12", "--storage", url, "--study", study, "--json"]
    procs = [
        subprocess.Popen(
            [*cmd, "--out", str(tmp_path / f"w{i}")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for i in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    for stage in ("coarse", "fine"):
        trials = optuna.load_study(study_name=f"{study}:{stage}", storage=url).trials
        assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) == 12, stage
        assert all(t.user_attrs.get(SURPLUS) for t in trials if t.state.name == "FAIL")
    workers = {t.user_attrs["worker"] for t in optuna.load_study(study_name=f"{study}:coarse", storage=url).trials}
    assert len(workers) == 2  # both processes took part
