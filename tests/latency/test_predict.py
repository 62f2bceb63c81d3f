from __future__ import annotations

import numpy as np
import pytest

import nas.space as space_mod
from nas.errors import NasError
from nas.latency import load_predictor, predict
from nas.zoo import get_spec


@pytest.mark.parametrize("name", ["mnv4-conv-small", "mnv4-hybrid-medium"])
def test_vectorised_equals_key_lookup(name):
    space = space_mod.load_space(name)
    vecs = space_mod.sample_vectors(space, np.random.default_rng(0), 300)
    archs = [space_mod.decode(space, v) for v in vecs]
    pred = load_predictor("pixel8-edgetpu")
    fast = pred.predict_encoded(space, vecs)
    slow = pred.predict_archs(archs)
    np.testing.assert_allclose(fast.latency_ms, slow.latency_ms, rtol=1e-9)
    assert fast.source == "roofline-fit" and np.all(fast.latency_ms > 0)
    np.testing.assert_allclose(predict(vecs, "pixel8-edgetpu", space=space), slow.latency_ms, rtol=1e-9)


def test_vectorised_cache_term_matches(tables_dir, tiny_conv):
    """A table with a cache term: the slot path applies it like the key path."""
    from nas.latency import load_table, write_table

    t = load_table("s23-gpu")
    t.meta.update(cache_mib="1", cache_ms_per_mib="0.05", target="s23-gpu")
    from nas.latency._table import LatencyTable

    write_table(LatencyTable(t.meta, t.df), tables_dir / "s23-gpu.csv")
    space = space_mod.load_space("mnv4-conv-medium")
    vecs = space_mod.sample_vectors(space, np.random.default_rng(1), 50)
    pred = load_predictor("s23-gpu", tables_dir)
    with_cache = pred.predict_encoded(space, vecs).latency_ms
    np.testing.assert_allclose(with_cache, pred.predict_archs([space_mod.decode(space, v) for v in vecs]).latency_ms)
    assert np.all(with_cache > load_predictor("s23-gpu").predict_encoded(space, vecs).latency_ms)


def test_vectorised_missing_key_names_it(tables_dir):
    from dataclasses import replace

    from nas.latency import get_device, load_table, save_device, write_table
    from nas.latency._table import LatencyTable

    # a user's device with no shipped table: nothing fills the gap
    save_device(replace(get_device("pixel6-cpu"), name="my-dev"), tables_dir)
    t = load_table("pixel6-cpu")
    space = space_mod.load_space("mnv4-conv-small")
    vecs = space_mod.sample_vectors(space, np.random.default_rng(0), 20)
    victim = space_mod.arch_slot_keys(space, vecs[3])[5]
    write_table(LatencyTable({**t.meta, "target": "my-dev"}, t.df[t.df["key"] != victim]), tables_dir / "my-dev.csv")
    pred = load_predictor("my-dev", tables_dir)
    with pytest.raises(NasError, match=f"no entry for {victim}.*latency build --target my-dev"):
        pred.predict_encoded(space, vecs)
    est = load_predictor("my-dev", tables_dir, fallback="roofline").predict_encoded(space, vecs)
    assert est.source == "roofline-fit+roofline-fallback" and victim in est.estimated_keys


def test_hybrid_space_on_pixel4_dsp_is_rejected():
    space = space_mod.load_space("mnv4-hybrid-medium")
    vecs = space_mod.sample_vectors(space, np.random.default_rng(0), 5)
    with pytest.raises(NasError, match="pixel4-dsp cannot run"):
        load_predictor("pixel4-dsp").predict_encoded(space, vecs)


def test_predict_api_on_specs():
    ms = predict([get_spec("mnv4-conv-small"), get_spec("mnv4-conv-large")], "pixel6-cpu")
    assert ms.shape == (2,) and 0 < ms[0] < ms[1]
    with pytest.raises(NasError, match="needs their search space"):
        predict(np.zeros((2, 3), dtype=int), "pixel6-cpu")
    with pytest.raises(NasError, match="no latency table for target 'nope'"):
        predict([get_spec("mnv4-conv-small")], "nope")


def test_zoo_predictions_track_published_latencies():
    from nas.latency import published_points

    for target in ("pixel6-cpu", "pixel8-edgetpu", "s23-gpu"):
        pts = published_points(target)
        ms = predict([get_spec(p.zoo_name) for p in pts], target)
        rel = np.abs(ms / np.array([p.latency_ms for p in pts]) - 1)
        assert np.mean(rel) < 0.1, target
