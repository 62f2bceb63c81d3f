"""The one two-stage orchestrator (``run_stages``) with a stand-in engine: which stages it asks for."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from nas.errors import NasError
from nas.latency import load_predictor
from nas.search import Engine, Evaluator, Flow, Stage, pair_budgets, run_stages
from nas.space import coarse_space, load_space, sample
from nas.supernet import make_estimator


@dataclass
class _Run:
    stage: Stage

    def records(self, evaluator):
        return []

    def n_complete(self) -> int:
        return self.stage.n_trials


class _Recorder:
    """Runs nothing; hands out ``n_bases`` coarse members as bases."""

    def __init__(self, n_bases: int):
        self.n_bases, self.stages = n_bases, []

    def run_stage(self, stage: Stage) -> _Run:
        self.stages.append(stage)
        return _Run(stage)

    def fine_bases(self, coarse, k):
        import numpy as np

        rng = np.random.default_rng(0)
        found = []
        while len(found) < min(k, self.n_bases):
            a = sample(coarse.stage.space, rng)
            if a.arch not in {b.arch for b in found}:
                found.append(a)
        return found


@pytest.fixture(scope="module")
def setup():
    budgets = pair_budgets(["pixel8-edgetpu"], ["0.72ms"], ["pixel8-edgetpu"])
    preds = {"pixel8-edgetpu": load_predictor("pixel8-edgetpu")}
    ev = Evaluator(preds, budgets, make_estimator("params"))
    coarse_ev = Evaluator(preds, budgets, make_estimator("params"))
    return load_space("mnv4-conv-small"), ev, coarse_ev


def test_one_stage_is_one_joint_stage(setup):
    space, ev, _ = setup
    eng: Engine = _Recorder(1)
    runs = run_stages(eng, space, Flow(True, 10, 4, 6, 1, 3), ev)
    assert [(s.label, s.n_trials, s.seed, s.space, s.warm) for s in eng.stages] == [("joint", 10, 3, space, ())]
    assert [r.stage.label for r in runs] == ["joint"]


def test_two_stages_split_the_fine_trials_between_the_bases(setup):
    space, ev, coarse_ev = setup
    eng = _Recorder(3)
    run_stages(eng, space, Flow(False, 10, 4, 7, 3, 5), ev, coarse_ev)
    coarse, *fine = eng.stages
    assert (coarse.label, coarse.n_trials, coarse.seed, coarse.evaluator) == ("coarse", 4, 5, coarse_ev)
    assert coarse.space == coarse_space(space)
    assert [(s.label, s.n_trials, s.seed) for s in fine] == [("fine1", 2, 6), ("fine2", 2, 7), ("fine3", 2, 8)]
    assert all(s.evaluator is ev for s in fine)


def test_one_base_is_the_fine_stage_and_no_base_is_an_error(setup):
    space, ev, _ = setup
    eng = _Recorder(1)
    run_stages(eng, space, Flow(False, 10, 4, 7, 2, 0), ev)
    assert [(s.label, s.n_trials, s.seed) for s in eng.stages] == [("coarse", 4, 0), ("fine", 7, 1)]
    assert eng.stages[0].evaluator is ev  # no coarse estimator: the search's own scores the coarse stage
    with pytest.raises(NasError, match="no coarse architecture met the budget in 4 trials"):
        run_stages(_Recorder(0), space, Flow(False, 10, 4, 7, 1, 0), ev)
