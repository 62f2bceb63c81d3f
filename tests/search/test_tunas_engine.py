"""``search --engine tunas``: REINFORCE with the absolute reward over a trained supernet's space."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from nas.errors import NasError
from nas.latency import load_predictor
from nas.search import run_search
from nas.search._tunas_engine import RESCORE_TOP
from nas.space import coarse_space, contains, load_space_file
from nas.spec import parse_arch
from nas.supernet import SupernetEstimator, TrainConfig, load_data, train_few_shot, train_supernet


def _train_tiny(space, path: Path) -> Path:
    """1-epoch supernet checkpoint of ``space`` (in its phase) on 200 built-in images, one thread."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = load_data("builtin:20", 32)
        train_supernet(space, data, path, TrainConfig(epochs=1, batch_size=32), data_spec="builtin:20")
    finally:
        torch.set_num_threads(old)
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, conv_space_path) -> tuple[Path, Path]:
    """(space file, 1-epoch supernet checkpoint on 200 built-in images)."""
    path = tmp_path_factory.mktemp("tunas") / "sn.pt"
    return conv_space_path, _train_tiny(load_space_file(conv_space_path), path)


@pytest.fixture(scope="module")
def coarse_ckpt(tmp_path_factory, ckpt) -> Path:
    """1-epoch supernet of the same space trained on its coarse stage only (``--phase coarse``)."""
    path = tmp_path_factory.mktemp("tunas-coarse") / "coarse.pt"
    return _train_tiny(coarse_space(load_space_file(ckpt[0])), path)


def _tunas(settings, ckpt, **kw):
    # The tiny 32 px space has no table entries: every block is estimated by the roofline fallback.
    # 0.064 ms is about its median member on pixel6-cpu, so the budget binds.
    base = dict(
        engine="tunas",
        estimator=f"supernet:{ckpt[1]}",
        space=None,
        fallback="roofline",
        coarse_trials=8,
        fine_trials=8,
        trials=10,
        targets=["pixel6-cpu"],
        budgets=["0.064ms"],
    )
    base.update(kw)
    return settings(**base)


def test_two_stage_tunas_search_writes_the_usual_result_folder(settings, ckpt):
    out = run_search(_tunas(settings, ckpt))
    space = load_space_file(ckpt[0])
    assert contains(space, out.best)
    assert list(out.trials["stage"]).count("coarse") == 8 and list(out.trials["stage"]).count("fine") == 8
    assert out.trials["score"].between(0, 1).all() and "reward" in out.trials
    assert 0 <= out.best_score <= 1
    pred = load_predictor("pixel6-cpu", fallback="roofline")
    assert out.best_latency_ms["pixel6-cpu"] == pytest.approx(float(pred.predict_archs([out.best]).latency_ms[0]))
    for name in ("best.json", "best.timm.txt", "trials.csv", "summary.md", "run.json"):
        assert (out.out_dir / name).is_file(), name
    run = json.loads((out.out_dir / "run.json").read_text())
    assert run["identity"]["engine"] == "tunas"
    assert [s["stage"] for s in run["tunas"]["stages"]] == ["coarse", "fine"]
    # The fine stage searches UIB variants inside the coarse stage's widths and depths.
    assert run["tunas"]["stages"][1]["arch"] == out.best.arch


def test_one_stage_and_seed_reproducibility(settings, ckpt, tmp_path):
    a = run_search(_tunas(settings, ckpt, one_stage=True, out=tmp_path / "a"))
    b = run_search(_tunas(settings, ckpt, one_stage=True, out=tmp_path / "b"))
    assert set(a.trials["stage"]) == {"joint", "rescored"} and list(a.trials["stage"]).count("joint") == 10
    assert a.best == b.best and list(a.trials["arch"]) == list(b.trials["arch"])


def test_pareto_front_comes_from_full_estimator_rescores(settings, ckpt):
    out = run_search(_tunas(settings, ckpt, coarse_trials=12, fine_trials=20))
    steps = out.trials[out.trials["stage"] != "rescored"]
    rescored = out.trials[out.trials["stage"] == "rescored"]
    feasible_archs = set(steps.loc[steps["feasible"], "arch"])
    # the best distinct within-budget samples, each once, by their mean one-batch accuracy
    assert len(rescored) == min(RESCORE_TOP, len(feasible_archs)) > 0
    assert rescored["arch"].is_unique and set(rescored["arch"]) <= feasible_archs
    mean = steps[steps["feasible"]].groupby("arch")["score"].mean()
    rest = mean.drop(list(rescored["arch"]))
    assert rest.empty or mean[list(rescored["arch"])].min() >= rest.max()
    # their scores are the full estimator's, and pareto.csv holds only them
    est = SupernetEstimator(ckpt[1])
    assert list(rescored["score"]) == pytest.approx(list(est.score([parse_arch(x) for x in rescored["arch"]])))
    pareto = pd.read_csv(out.out_dir / "pareto.csv")
    assert len(pareto) > 0 and set(pareto["arch"]) <= set(rescored["arch"])
    assert "rescored" in (out.out_dir / "summary.md").read_text()


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"estimator": "params"}, "--engine tunas needs --estimator supernet:CKPT"),
        ({"workers": 2}, "--engine tunas runs in this process"),
        ({"beta": 0.1}, "--beta must be negative"),
        ({"engine": "evolution"}, "--engine must be one of optuna, tunas"),
        ({"space": "mnv4-conv-small"}, "--space must be that space"),
    ],
)
def test_bad_settings_are_one_line_errors(settings, ckpt, kw, msg):
    s = _tunas(settings, ckpt, **kw)
    with pytest.raises(NasError, match=msg.replace("+", r"\+")) as exc:
        run_search(s)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("engine", ["tunas", "optuna"])
def test_supernet_macs_estimator_drives_both_engines(settings, ckpt, engine):
    out = run_search(_tunas(settings, ckpt, engine=engine, estimator=f"supernet+macs:{ckpt[1]}", trials=6))
    assert contains(load_space_file(ckpt[0]), out.best)
    assert out.estimator.startswith("supernet+macs:") and np.isfinite(out.best_score)
    assert "reference sample of 64" in (out.out_dir / "summary.md").read_text()


def test_coarse_stage_supernet_drives_the_coarse_stage(settings, ckpt, coarse_ckpt):
    out = run_search(_tunas(settings, ckpt, coarse_estimator=f"supernet:{coarse_ckpt}"))
    run = json.loads((out.out_dir / "run.json").read_text())
    coarse_arch = parse_arch(run["tunas"]["stages"][0]["arch"])
    assert contains(coarse_space(load_space_file(ckpt[0])), coarse_arch)
    # the coarse supernet's one-batch scores are on its own scale: only fine samples are re-scored
    fine = set(out.trials.loc[out.trials["stage"] == "fine", "arch"])
    rescored = out.trials[out.trials["stage"] == "rescored"]
    assert len(rescored) > 0 and set(rescored["arch"]) <= fine
    assert "coarse stage was scored by" in (out.out_dir / "summary.md").read_text()


@pytest.fixture(scope="module")
def few_shot_coarse(tmp_path_factory, ckpt) -> Path:
    """1-epoch few-shot supernet of the coarse stage: one shot per width of the first UIB stage."""
    path = tmp_path_factory.mktemp("few-shot") / "coarse.json"
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_few_shot(
            coarse_space(load_space_file(ckpt[0])),
            load_data("builtin:20", 32),
            path,
            TrainConfig(epochs=1, batch_size=32),
            split="stage2.channels",
            data_spec="builtin:20",
        )
    finally:
        torch.set_num_threads(old)
    return path


@pytest.mark.parametrize("engine", ["tunas", "optuna"])
def test_few_shot_coarse_supernet_drives_the_coarse_stage(settings, ckpt, few_shot_coarse, engine):
    out = run_search(_tunas(settings, ckpt, engine=engine, coarse_estimator=f"supernet:{few_shot_coarse}"))
    assert contains(load_space_file(ckpt[0]), out.best)
    coarse = out.trials[out.trials["stage"] == "coarse"]
    scored = coarse["score"].dropna()  # optuna does not score members its latency check already rejected
    assert len(coarse) == 8 and len(scored) > 0 and scored.between(0, 1).all()
    assert f"supernet:{few_shot_coarse}" in (out.out_dir / "summary.md").read_text()


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"estimator": "COARSE"}, "was trained on the coarse stage only"),
        ({"coarse_estimator": "params"}, "--engine tunas needs --coarse-estimator supernet:CKPT"),
        (
            {"engine": "optuna", "estimator": "params", "space": "mnv4-conv-small", "coarse_estimator": "CKPT"},
            "--coarse-estimator supernet:.* was trained on space",
        ),
    ],
)
def test_bad_coarse_estimators_are_one_line_errors(settings, ckpt, coarse_ckpt, kw, msg):
    names = {"COARSE": f"supernet:{coarse_ckpt}", "CKPT": f"supernet:{ckpt[1]}"}
    s = _tunas(settings, ckpt, **{k: names.get(v, v) for k, v in kw.items()})
    with pytest.raises(NasError, match=msg) as exc:
        run_search(s)
    assert "\n" not in str(exc.value)


def test_results_state_the_supernets_data_and_a_finished_run_is_rewritten_at_once(settings, ckpt, monkeypatch):
    import nas.supernet
    from nas.search import outcome_json

    first = run_search(_tunas(settings, ckpt))
    data = {"data": "builtin:20", "classes": 10, "resolution": 32}
    assert first.estimator_data == data
    assert json.loads((first.out_dir / "run.json").read_text())["estimator_data"] == data
    j = outcome_json(first)
    assert j["estimator_data"] == data and (j["classes"], j["resolution"]) == (
        first.best.num_classes,
        first.best.resolution,
    )
    summary = (first.out_dir / "summary.md").read_text()
    assert "a supernet trained on `builtin:20` (10 classes) at 32 px" in summary
    assert f"`best.json` keeps the space's deployment head and input ({first.best.num_classes} classes" in summary

    def no_estimator(*a, **k):
        raise AssertionError("a finished search built an estimator")

    monkeypatch.setattr(nas.supernet, "make_estimator", no_estimator)
    again = run_search(_tunas(settings, ckpt))
    assert (again.best, again.best_score) == (first.best, first.best_score)
    assert again.estimator_data == data and again.trials.equals(first.trials)


def test_an_over_budget_pick_is_flagged_in_summary_and_json(settings, ckpt):
    from nas.search import min_latency, outcome_json

    floor, _ = min_latency(load_space_file(ckpt[0]), load_predictor("pixel6-cpu", fallback="roofline"))
    # A budget at the space's floor and a latency penalty too weak to matter: TuNAS picks over budget.
    out = run_search(_tunas(settings, ckpt, one_stage=True, budgets=[f"{floor * 1.001:.6f}ms"], beta=-1e-9))
    assert not out.within_budget and out.over_budget
    assert outcome_json(out)["within_budget"] is False
    assert "**OVER BUDGET** on pixel6-cpu" in (out.out_dir / "summary.md").read_text()
