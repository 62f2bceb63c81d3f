"""The learned accuracy predictor: features, fit on a known function, file round trip and checks, search."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from nas.cost import count_macs, count_params
from nas.errors import NasError, SpecError
from nas.inputs import InputError
from nas.search import SearchSettings, run_search
from nas.space import coarse_space, encode, load_space, sample_distinct
from nas.spec import parse_arch
from nas.supernet import AccuracyEstimator, Predictor, fit_predictor, load_predictor, make_estimator
from nas.supernet._predictor import _MLP, Features


class KnownFunction:
    """A stand-in for a supernet estimator: a fixed function of the encoding and the MAC count."""

    def __init__(self, space, seed: int = 0) -> None:
        self.space, self.features = space, Features(space)
        self.weights = np.random.default_rng(seed).normal(0.0, 0.01, self.features.dim - 2)
        self.name, self.meaning, self.path = "known", "a known function", Path("known.pt")
        self.meta = {"created": "2026-01-01T00:00:00+00:00", "epochs_done": 7}
        self.calls = 0

    @property
    def search_space(self):
        return self.space

    def truth(self, archs) -> np.ndarray:
        x = self.features(self.features.encode(archs))
        return 0.6 + x[:, :-2] @ self.weights + 0.03 * x[:, -2]

    def score(self, archs) -> np.ndarray:
        self.calls += len(archs)
        return self.truth(archs)


@pytest.fixture(scope="module")
def fitted(conv_space) -> tuple[KnownFunction, Predictor]:
    known = KnownFunction(conv_space)
    return known, fit_predictor(known, 150, model="ridge", seed=0)


@pytest.mark.parametrize("which", ["conv_space", "hybrid_space"])
def test_features_encode_like_the_space_and_count_like_nas_cost(request, which):
    space = request.getfixturevalue(which)
    for sp in (space, coarse_space(space)):
        feats = Features(sp)
        archs = sample_distinct(sp, np.random.default_rng(0), 60)
        vecs = feats.encode(archs)
        assert all(np.array_equal(v, encode(sp, a)) for v, a in zip(vecs, archs, strict=True))
        macs, params = feats.costs(vecs)
        assert macs.tolist() == [count_macs(a) for a in archs] and params.tolist() == [count_params(a) for a in archs]
        x = feats(vecs)
        assert x.shape == (len(archs), feats.dim) and np.allclose(x[:, -2], np.log(macs))


def test_features_on_a_shipped_hybrid_space_and_non_members():
    space = load_space("mnv4-hybrid-medium")
    feats = Features(space)
    archs = sample_distinct(space, np.random.default_rng(1), 40)
    assert all(np.array_equal(v, encode(space, a)) for v, a in zip(feats.encode(archs), archs, strict=True))
    other = parse_arch("res224|cn_r1_k3_s2_c8|uir_r1_a0_k3_s2_e4_c16|head_c32_h48_cls1000")
    with pytest.raises(SpecError, match="not in space"):
        feats.encode([archs[0], other])


@pytest.fixture
def short_mlp(monkeypatch):
    """Fewer training steps: the tests check the plumbing, benchmarks/README.md the fit."""
    monkeypatch.setattr(_MLP, "STEPS", 400)


# A linear function of the features: ridge recovers it almost exactly, the small-sample MLP roughly.
@pytest.mark.parametrize("model, tau", [("ridge", 0.9), ("mlp", 0.6)])
def test_fit_on_a_known_function_recovers_its_ranking(conv_space, model, tau, short_mlp):
    known = KnownFunction(conv_space, seed=1)
    pred = fit_predictor(known, 200, model=model, seed=3)
    held = pred.record["fit"]["heldout"]
    assert held["n_test"] == 40 and held["kendall_tau"] > tau
    fresh = sample_distinct(conv_space, np.random.default_rng(9), 300)
    assert stats.kendalltau(pred.score(fresh), known.truth(fresh)).statistic > tau
    assert known.calls == 200  # every sampled member scored once by the estimator


def test_round_trip_and_what_the_file_records(fitted, tmp_path, conv_space):
    known, pred = fitted
    path = pred.save(tmp_path / "p.json")
    loaded = load_predictor(path)
    archs = sample_distinct(conv_space, np.random.default_rng(4), 50)
    assert np.array_equal(loaded.score(archs), pred.score(archs))
    assert np.array_equal(loaded.score_encoded(loaded.features.encode(archs)), pred.score(archs))
    doc = json.loads(path.read_text())
    assert doc["source"] == {
        "estimator": "known",
        "checkpoint": "known.pt",
        "created": "2026-01-01T00:00:00+00:00",
        "epochs": 7,
        "meaning": "a known function",
    }
    assert doc["fit"]["n"] == 150 and set(doc["fit"]["heldout"]) == {
        "n_train",
        "n_test",
        "kendall_tau",
        "spearman_rho",
        "rmse",
    }
    assert len(doc["samples"]) == 150 and doc["space"]["definition"]["name"] == conv_space.name
    assert doc["features"]["columns"][-2:] == ["ln_macs", "ln_params"]
    est = make_estimator(f"predictor:{path}")
    assert isinstance(est, AccuracyEstimator) and est.name == f"predictor:{path}"
    assert est.search_space.name == conv_space.name and "Kendall τ" in est.meaning
    assert np.array_equal(est.tunas_quality()(archs), pred.score(archs))
    # members at the supernet's training resolution read as the space's
    at_24 = [parse_arch(a.arch.replace("res32|", "res24|", 1)) for a in archs[:5]]
    assert np.array_equal(est.score(at_24), pred.score(archs[:5]))


def _edit(path: Path, out: Path, change) -> Path:
    doc = json.loads(path.read_text())
    change(doc)
    out.write_text(json.dumps(doc))
    return out


def _set(keys: str, value):
    def change(doc):
        *parents, last = keys.split(".")
        d = doc
        for k in parents:
            d = d[int(k)] if isinstance(d, list) else d[k]
        if isinstance(d, list):
            d[int(last)] = value
        else:
            d[last] = value

    return change


@pytest.mark.parametrize(
    "change, msg",
    [
        (_set("format", "x"), "not an mnv4-nas accuracy predictor"),
        (_set("version", 99), "version 99 is not supported"),
        (_set("space.definition.stages", 5), "field space: not a valid space definition"),
        (_set("decisions.0.choices", ["1", "2", "3"]), "field decisions: not the decisions of the recorded space"),
        (_set("features.mean", [0.0]), "field features.mean must have shape"),
        (_set("features.std.0", 0.0), "field features.std: every value must be positive"),
        (_set("features.mean.0", "a"), "field features.mean must be an array of numbers"),
        (_set("target.std", None), "field target.std must be a finite number"),
        (_set("model.kind", "gbm"), "field model.kind must be one of mlp, ridge"),
        (_set("model.weight", [[1.0]]), "field model.weight must have shape"),
        (_set("model", []), "field model must be a JSON object"),
        (_set("fit.heldout", None), "field fit.heldout must be a JSON object"),
    ],
)
def test_malformed_files_are_one_line_errors(fitted, tmp_path, change, msg):
    path = fitted[1].save(tmp_path / "p.json")
    with pytest.raises(InputError, match=msg) as err:
        load_predictor(_edit(path, tmp_path / "bad.json", change))
    assert "\n" not in str(err.value)


def test_unreadable_files_are_one_line_errors(fitted, tmp_path):
    path = fitted[1].save(tmp_path / "p.json")
    (tmp_path / "nan.json").write_text(path.read_text().replace('"bias": ', '"bias": NaN, "x": ', 1))
    for bad, msg in [
        (tmp_path / "missing.json", "no such accuracy predictor"),
        (tmp_path, "must be a regular file"),
        (tmp_path / "nan.json", "NaN is not a number JSON allows"),
    ]:
        (tmp_path / "text.json").write_text("{")
        with pytest.raises(InputError, match=msg):
            load_predictor(bad)
    with pytest.raises(InputError, match="invalid JSON"):
        load_predictor(tmp_path / "text.json")
    with pytest.raises(NasError, match="needs a file"):
        make_estimator("predictor")


def test_mlp_file_round_trip(conv_space, tmp_path, short_mlp):
    pred = fit_predictor(KnownFunction(conv_space), 40, model="mlp", seed=0)
    archs = sample_distinct(conv_space, np.random.default_rng(2), 20)
    loaded = load_predictor(pred.save(tmp_path / "mlp.json"))
    assert np.allclose(loaded.score(archs), pred.score(archs), rtol=0, atol=1e-12)
    doc = json.loads((tmp_path / "mlp.json").read_text())
    doc["model"]["nets"][0][1]["weight"] = [[1.0]]
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"field model.nets\[0\]\[1\].weight must have shape"):
        load_predictor(tmp_path / "bad.json")


@pytest.mark.parametrize(
    "kw, msg",
    [
        ({"n": 0}, "--n must be at least 10"),
        ({"n": 10, "holdout": 0.1}, "a fit needs at least 10 members and 3 held out"),
        ({"holdout": float("nan")}, "--holdout must be a finite number"),
        ({"holdout": 0.0}, "--holdout must be > 0"),
        ({"model": "gbm"}, "--model must be one of mlp, ridge"),
    ],
)
def test_bad_fit_arguments_are_one_line_errors(conv_space, kw, msg):
    args = {"n": 20, **kw}
    with pytest.raises(NasError, match=msg):
        fit_predictor(KnownFunction(conv_space), args.pop("n"), **args)


@pytest.mark.parametrize("engine", ["optuna", "tunas"])
def test_the_predictor_drives_both_search_engines(fitted, tmp_path, conv_space_path, engine):
    path = fitted[1].save(tmp_path / "p.json")
    settings = SearchSettings(
        targets=["pixel6-cpu"],
        budgets=["0.064ms"],
        space=None,
        estimator=f"predictor:{path}",
        engine=engine,
        fallback="roofline",
        coarse_trials=6,
        fine_trials=6,
        trials=8,
        out=tmp_path / "run",
        references=False,
    )
    out = run_search(settings)
    assert out.estimator == f"predictor:{path}" and np.isfinite(out.best_score)
    other = dataclasses.replace(settings, space="mnv4-conv-small", out=tmp_path / "run2")
    with pytest.raises(NasError, match="was trained on space t-conv"):
        run_search(other)
