"""The search engine end to end on a small space with the instant `params` estimator."""

from __future__ import annotations

import json
import math

import numpy as np
import optuna
import pandas as pd
import pytest

from nas.errors import NasError
from nas.export import export_onnx
from nas.latency import load_predictor
from nas.search import Evaluator, check_space, choose_space, min_latency, pair_budgets, run_search
from nas.space import decode, load_space, sample_vectors
from nas.spec import load_spec_file


def _lat(arch, target):
    return float(load_predictor(target).predict_archs([arch]).latency_ms[0])


def test_two_stage_result_folder_and_constraint(settings):
    out = run_search(settings())
    files = {p.name for p in out.out_dir.iterdir()}
    assert {
        "best.json",
        "best.timm.txt",
        "trials.csv",
        "pareto.csv",
        "pareto.png",
        "summary.md",
        "run.json",
        "study.journal",
    } <= files
    best = load_spec_file(out.out_dir / "best.json")
    assert best == out.best
    assert _lat(best, "pixel8-edgetpu") <= 0.72
    trials = pd.read_csv(out.out_dir / "trials.csv")
    assert set(trials["stage"]) == {"coarse", "fine"} and len(trials) == 12
    pareto = pd.read_csv(out.out_dir / "pareto.csv")
    assert (pareto["latency_ms[pixel8-edgetpu]"] <= 0.72).all() and pareto["feasible"].all()
    for arch in pareto["arch"]:
        from nas.spec import parse_arch

        assert _lat(parse_arch(arch), "pixel8-edgetpu") <= 0.72
    summary = (out.out_dir / "summary.md").read_text()
    assert "params" in summary and "roofline-fit" in summary
    # every target appears with a provenance
    assert set(out.all_latency_ms) >= {"pixel8-edgetpu", "pixel6-cpu", "host-cpu"}
    assert out.estimator == "params"


def test_best_json_builds_and_exports(settings, tmp_path):
    out = run_search(settings())
    res = export_onnx(load_spec_file(out.out_dir / "best.json"), tmp_path / "best.onnx")
    assert res.max_abs_diff <= 1e-4


def test_fine_stage_refines_the_best_coarse_architecture(settings):
    out = run_search(settings())
    trials = out.trials
    coarse = trials[(trials["stage"] == "coarse") & trials["feasible"]]
    fine = trials[trials["stage"] == "fine"]
    best_coarse = coarse.sort_values("score", ascending=False).iloc[0]["arch"]
    assert fine.iloc[0]["arch"] == best_coarse  # enqueued warm start
    assert out.best_score >= coarse["score"].max()


def test_coarse_estimator_scores_only_the_coarse_stage(settings):
    from nas.spec import parse_arch
    from nas.supernet import make_estimator

    out = run_search(settings(coarse_estimator="zen@32"))
    t = out.trials[out.trials["score"].notna()]
    for stage, name in (("coarse", "zen@32"), ("fine", "params")):
        rows = t[t["stage"] == stage]
        assert len(rows) > 0
        expect = make_estimator(name).score([parse_arch(a) for a in rows["arch"]])
        assert list(rows["score"]) == pytest.approx(list(expect)), stage
    # two scales: the best and the Pareto front come from the fine stage only
    fine = t[(t["stage"] == "fine") & t["feasible"]]
    assert out.best.arch in set(fine["arch"]) and out.best_score == pytest.approx(fine["score"].max())
    assert set(out.pareto["arch"]) <= set(fine["arch"])
    assert json.loads((out.out_dir / "run.json").read_text())["identity"]["coarse_estimator"] == "zen@32"
    assert "coarse stage was scored by `zen@32`" in (out.out_dir / "summary.md").read_text()
    with pytest.raises(NasError, match="different coarse_estimator"):
        run_search(settings())


def test_coarse_estimator_needs_two_stages(settings):
    with pytest.raises(NasError, match="--coarse-estimator scores the coarse stage"):
        run_search(settings(coarse_estimator="zen@32", one_stage=True))


def test_universal_search_meets_both_budgets(settings):
    out = run_search(settings(targets=["pixel8-edgetpu", "s23-gpu"], budgets=["0.72ms", "2.2ms"]))
    assert _lat(out.best, "pixel8-edgetpu") <= 0.72 and _lat(out.best, "s23-gpu") <= 2.2
    assert set(out.best_latency_ms) == {"pixel8-edgetpu", "s23-gpu"}
    assert {"latency_ms[pixel8-edgetpu]", "latency_ms[s23-gpu]"} <= set(out.pareto.columns)
    assert out.trials["score"].notna().all()  # NSGA-II scores every trial


def test_one_stage(settings):
    out = run_search(settings(one_stage=True, trials=8))
    assert set(out.trials["stage"]) == {"joint"} and len(out.trials) == 8


def test_infeasible_budget_is_detected_before_searching(settings):
    with pytest.raises(NasError) as exc:
        run_search(settings(budgets=["0.3ms"]))
    msg = str(exc.value)
    assert "below the smallest latency" in msg and "mnv4-conv-small" in msg and "ms" in msg
    assert not (settings().out / "trials.csv").exists()
    with pytest.raises(NasError, match="spaces that fit: .*mnv4-conv-small"):
        run_search(settings(space="mnv4-conv-large", budgets=["0.9ms"]))


def test_min_latency_is_a_lower_bound_on_samples():
    space = load_space("mnv4-conv-medium")
    pred = load_predictor("pixel8-edgetpu")
    ms, arch = min_latency(space, pred)
    lat = pred.predict_encoded(space, sample_vectors(space, np.random.default_rng(0), 5000)).latency_ms
    assert ms <= lat.min() + 1e-9
    assert _lat(arch, "pixel8-edgetpu") == pytest.approx(ms)


def test_unsupported_hardware_is_refused(settings):
    with pytest.raises(NasError, match="pixel4-dsp cannot run"):
        run_search(settings(space="mnv4-hybrid-medium", targets=["pixel4-dsp"], budgets=["50ms"]))


def test_space_auto_selection():
    budgets = pair_budgets(["pixel8-edgetpu"], ["4ms"], ["pixel8-edgetpu"])
    name, why = choose_space(budgets, {"pixel8-edgetpu": load_predictor("pixel8-edgetpu")})
    assert name == "mnv4-hybrid-large" and "largest reference within budget" in why
    budgets = pair_budgets(["pixel8-edgetpu"], ["1ms"], ["pixel8-edgetpu"])
    name, _ = choose_space(budgets, {"pixel8-edgetpu": load_predictor("pixel8-edgetpu")})
    assert name == "mnv4-conv-medium"


def test_resume_after_interruption_loses_and_duplicates_nothing(settings, monkeypatch):
    from nas.supernet._estimators import ParamsEstimator

    calls = {"n": 0}
    real = ParamsEstimator._score_one

    def flaky(self, arch):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # like Ctrl-C in the middle of the coarse stage
        return real(self, arch)

    monkeypatch.setattr(ParamsEstimator, "_score_one", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_search(settings(coarse_trials=8, fine_trials=6))
    monkeypatch.setattr(ParamsEstimator, "_score_one", real)
    out = run_search(settings(coarse_trials=8, fine_trials=6))
    assert (out.trials["stage"] == "coarse").sum() == 8 and (out.trials["stage"] == "fine").sum() == 6
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(out.out_dir / "study.journal"))
    )
    coarse = optuna.load_study(study_name=f"{out.out_dir.name}:coarse", storage=storage)
    numbers = [t.number for t in coarse.trials]
    assert len(numbers) == len(set(numbers))
    states = [t.state.name for t in coarse.trials]
    assert states.count("COMPLETE") == 8 and "RUNNING" not in states


def test_resume_refuses_other_settings(settings):
    run_search(settings())
    with pytest.raises(NasError, match="different targets"):
        run_search(settings(targets=["s23-gpu"], budgets=["3ms"]))


def test_sqlite_storage(settings, tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    out = run_search(settings(storage=url, study="s1"))
    assert (tmp_path / "study.db").exists() and json.loads((out.out_dir / "run.json").read_text())["storage"] == url
    again = run_search(settings(storage=url, study="s1"))  # nothing left to run: same best
    assert again.best == out.best


def test_torn_journal_is_repaired(settings):
    out = run_search(settings())
    journal = out.out_dir / "study.journal"
    with open(journal, "ab") as f:
        f.write(b'{"op_code": 5, "worker_id": "x", "trial_id"')  # kill -9 in the middle of a write
    again = run_search(settings(fine_trials=8))
    assert (again.trials["stage"] == "fine").sum() == 8
    assert journal.read_bytes().endswith(b"\n")


def test_check_space_reports_smallest_latency():
    space = load_space("mnv4-conv-small")
    pred = load_predictor("pixel8-edgetpu")
    mins = check_space(space, pair_budgets(["pixel8-edgetpu"], ["1ms"], ["pixel8-edgetpu"]), {"pixel8-edgetpu": pred})
    assert 0 < mins["pixel8-edgetpu"] < 1 and math.isfinite(mins["pixel8-edgetpu"])


def test_evaluator_skips_scoring_over_budget():
    class Count:
        name, meaning = "count", "number of calls"
        n = 0

        def score(self, archs):
            Count.n += len(archs)
            return np.ones(len(archs))

    space = load_space("mnv4-conv-small")
    pred = load_predictor("pixel8-edgetpu")
    ev = Evaluator({"pixel8-edgetpu": pred}, pair_budgets(["pixel8-edgetpu"], ["0.65ms"], ["pixel8-edgetpu"]), Count())
    archs = [decode(space, v) for v in sample_vectors(space, np.random.default_rng(1), 20)]
    results = [ev.evaluate(a) for a in archs]
    assert all((r.score is None) != r.feasible for r in results)
    assert Count.n == sum(r.feasible for r in results)
