from __future__ import annotations

import numpy as np
import optuna
import pytest

from nas.errors import SpecError
from nas.space import (
    arch_from_params,
    coarse_space,
    decisions,
    encode,
    fix_coarse,
    load_space,
    params_from_arch,
    suggest,
)
from nas.zoo import get_spec

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize("phase", ["joint", "coarse", "fine"])
def test_trial_params_decode_to_the_same_spec(phase):
    space = load_space("mnv4-hybrid-medium")
    if phase == "coarse":
        space = coarse_space(space)
    elif phase == "fine":
        space = fix_coarse(space, get_spec("mnv4-hybrid-medium"))
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    archs = {}

    def objective(trial):
        arch = suggest(space, trial)
        archs[trial.number] = arch
        return float(len(arch.blocks))

    study.optimize(objective, n_trials=12)
    for t in study.trials:
        assert arch_from_params(space, t.params) == archs[t.number]
        assert set(t.params) == {d.name for d in decisions(space)}


def test_params_from_arch_round_trip_and_enqueue():
    space = load_space("mnv4-conv-medium")
    ref = get_spec("mnv4-conv-medium")
    params = params_from_arch(space, ref)
    assert params["stage3.channels"] == 256 and params["stage1.block0.uib"] == "a3_k5_e4"
    assert arch_from_params(space, params) == ref
    study = optuna.create_study()
    study.enqueue_trial(params)
    got = []
    study.optimize(lambda t: got.append(suggest(space, t)) or 0.0, n_trials=1)
    assert got[0] == ref
    np.testing.assert_array_equal(encode(space, got[0]), encode(space, ref))


def test_bad_params_are_rejected():
    space = load_space("mnv4-conv-small")
    with pytest.raises(SpecError, match="missing"):
        arch_from_params(space, {})
    params = params_from_arch(space, get_spec("mnv4-conv-small"))
    params["stage1.channels"] = 100
    with pytest.raises(SpecError, match="not among"):
        arch_from_params(space, params)
