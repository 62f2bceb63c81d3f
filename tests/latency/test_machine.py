"""Host tables follow the machine: fingerprints, calibration of a table made elsewhere, the load guard."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from latency_helpers import TINY_CONV, FakeTimer, block_sum

from nas.errors import ConfigError
from nas.latency import (
    Timing,
    TimingConfig,
    ensure_calibration,
    load_predictor,
    load_table,
    profile_host,
    read_table,
    validate_host,
)
from nas.latency._machine import calibration_file, fit_scale, read_calibrations, this_machine
from nas.spec import arch_keys, parse_arch

VARIANTS = [
    TINY_CONV,
    TINY_CONV.replace("uir_r1_a0_k3_s1_e2_c16|", ""),
    TINY_CONV.replace("ds_r1_k3_s2_c24|", "ds_r1_k3_s2_c24|uir_r1_a3_k3_s1_e2_c24|"),
    TINY_CONV.replace("_c16|", "_c24|", 1),
    TINY_CONV.replace("er_r1_k3_s1_e2_c8|", ""),
]
CFG = TimingConfig(runs=1, sessions=1, warmup=0)


@pytest.fixture(autouse=True)
def _only_user_tables(monkeypatch):
    """The shipped host-cpu table (made on another machine) would be calibrated too: these tests look
    at the user's table alone."""
    monkeypatch.setattr("nas.latency._table.shipped_tables_dir", lambda: None)


def _archs():
    return [parse_arch(a) for a in VARIANTS]


def _profile(tables_dir, measure=None, cfg=CFG, real=False):
    archs = _archs()
    keys = list(dict.fromkeys(k for a in archs for k in arch_keys(a)))
    timer = None if real else (measure or FakeTimer())
    return profile_host(keys, archs, cfg=cfg, tables_dir=tables_dir, measure=timer, call_ms=None if real else 0.005)


def _make_foreign(path):
    text = path.read_text()
    lines = [
        "# fingerprint: 0000000000000000" if line.startswith("# fingerprint:") else line for line in text.splitlines()
    ]
    path.write_text("\n".join(lines).replace("# machine: ", "# machine: another box; was ") + "\n")


def test_profiled_table_records_this_machine(tables_dir):
    res = _profile(tables_dir)
    here = this_machine(res.table.meta["runtime"], 1)
    assert res.table.meta["fingerprint"] == here.fingerprint and here.cpu in res.table.meta["machine"]
    assert load_table("host-cpu", tables_dir).meta["calibration"] == "native"
    assert ensure_calibration("host-cpu", tables_dir, measure=lambda *a: pytest.fail("measured")) == []


def test_a_foreign_table_triggers_calibration_once(tables_dir):
    res = _profile(tables_dir)
    _make_foreign(res.path)
    before = load_predictor("host-cpu", tables_dir)
    assert before.table.meta["calibration"].startswith("none: measured on another box")
    calls: list[str] = []

    def measure(arch, cfg, workdir):  # this machine runs everything 1.6x slower, plus 0.2 ms
        calls.append(arch.arch)
        return Timing(1.6 * (before.predict_archs([arch]).latency_ms[0] - before.table.overhead_ms) + 0.2, 0.0, 3)

    runs = ensure_calibration("host-cpu", tables_dir, measure=measure)
    assert len(runs) == 1 and len(calls) >= 3
    cal = runs[0].calibration
    assert cal.scale == pytest.approx(1.6, rel=1e-3) and cal.overhead_ms == pytest.approx(0.2, abs=1e-3)
    assert (
        cal.mape_pct < 0.1 and cal.mape_before_pct > 10 and runs[0].stored == calibration_file(tables_dir, "host-cpu")
    )
    after = load_predictor("host-cpu", tables_dir)
    archs = _archs()
    want = 1.6 * (before.predict_archs(archs).latency_ms - before.table.overhead_ms) + 0.2
    np.testing.assert_allclose(after.predict_archs(archs).latency_ms, want, rtol=1e-4)
    assert after.table.meta["calibration"].startswith("calibrated to this machine")
    # stored: the next use does not measure again; `calibrate` (force) does
    assert ensure_calibration("host-cpu", tables_dir, measure=lambda *a: pytest.fail("measured again")) == []
    assert len(ensure_calibration("host-cpu", tables_dir, measure=measure, force=True)) == 1
    assert len(read_calibrations(calibration_file(tables_dir, "host-cpu"))) == 1  # replaced, not added


def test_fit_scale_recovers_scale_and_overhead():
    pred = np.array([1.0, 2.0, 4.0, 8.0]) + 0.3
    meas = 2.5 * (pred - 0.3) + 0.1
    s, o = fit_scale(pred, 0.3, meas)
    assert s == pytest.approx(2.5, rel=1e-6) and o == pytest.approx(0.1, abs=1e-6)
    s, o = fit_scale(pred[:2], 0.3, 2 * pred[:2])  # too few models: the scale alone
    assert s == pytest.approx(2.0) and o == pytest.approx(0.6)


def test_fit_scale_alone_minimises_relative_error():
    pred = np.array([1.0, 2.0, 4.0])
    s, o = fit_scale(pred, 0.5, 3.0 * pred, with_overhead=False)
    assert s == pytest.approx(3.0) and o == pytest.approx(1.5)  # the overhead scales with the body
    # relative least squares: min Σ(s·p/m − 1)² gives s = Σ(p/m) / Σ(p/m)²
    meas = np.array([2.0, 5.0, 7.0])
    r = pred / meas
    assert fit_scale(pred, 0.5, meas, with_overhead=False)[0] == pytest.approx(np.sum(r) / np.sum(r * r))


@pytest.mark.parametrize("overhead_here, two_terms", [(0.4, True), (None, False)])
def test_calibration_keeps_an_overhead_term_only_where_it_predicts_left_out_models_better(
    tables_dir, overhead_here, two_terms
):
    from nas.latency._machine import calibrate_host

    table = _profile(tables_dir).table
    ovh = table.overhead_ms
    archs = _archs()
    pred = {a.arch: 1.0 + i + ovh for i, a in enumerate(archs)}
    # the machine here: 1.5x slower with its own fixed overhead, or 1.5x slower with a little noise (the
    # second term would only fit the noise)
    noise = dict(zip(pred, [1.02, 0.97, 1.01, 0.99, 1.03], strict=True))

    def measure(arch):
        p = pred[arch.arch]
        return 1.5 * (p - ovh) + overhead_here if overhead_here is not None else 1.5 * p * noise[arch.arch]

    cal = calibrate_host(table, this_machine("x", 1), archs, lambda a: pred[a.arch], measure)
    if two_terms:
        assert cal.scale == pytest.approx(1.5, rel=1e-4) and cal.overhead_ms == pytest.approx(0.4, abs=1e-4)
    else:
        assert cal.overhead_ms == pytest.approx(cal.scale * ovh)  # the scale alone
        assert cal.scale == pytest.approx(1.5, rel=0.03)
    assert cal.loo_mape_pct is not None and cal.loo_mape_pct < 3.0


@pytest.mark.parametrize(
    "text, msg",
    [
        ("{}", "not an mnv4-nas calibration file"),
        ('{"format": "mnv4-nas/host-calibration-v1", "calibrations": [{"scale": 1}]}', "calibration 0 is malformed"),
        ("[1,", "calibration.json: invalid JSON"),
    ],
)
def test_malformed_calibration_files_are_one_line_errors(tmp_path, text, msg):
    p = tmp_path / "host-cpu.calibration.json"
    p.write_text(text)
    with pytest.raises(ConfigError, match=msg) as exc:
        read_calibrations(p)
    assert "\n" not in str(exc.value)


def test_a_calibration_with_a_nan_or_zero_scale_is_refused(tables_dir):
    res = _profile(tables_dir)
    _make_foreign(res.path)
    runs = ensure_calibration("host-cpu", tables_dir, measure=lambda a, c, w: Timing(1.0, 0.0, 1))
    p = runs[0].stored
    good = json.loads(p.read_text())
    for bad, msg in ((float("nan"), "NaN is not a number"), (-1.0, "scale must lie in"), (0.0, "scale must lie in")):
        good["calibrations"][0]["scale"] = bad
        p.write_text(json.dumps(good))
        with pytest.raises(ConfigError, match=msg):
            load_table("host-cpu", tables_dir)


def test_disturbed_entries_are_not_kept_and_a_rerun_measures_them(tables_dir):
    victim = arch_keys(parse_arch(TINY_CONV))[2]

    class Busy(FakeTimer):
        def __call__(self, key, cfg, workdir):
            t = super().__call__(key, cfg, workdir)
            return Timing(t.median_ms, t.std_ms, t.n, 4, disturbed=key == victim)

    res = _profile(tables_dir, Busy())
    assert res.disturbed == (victim,) and victim not in set(read_table(res.path).df["key"])
    again = FakeTimer()
    _profile(tables_dir, again)
    assert list(again.calls) == [victim]


def test_validation_leaves_disturbed_measurements_out(tables_dir, tmp_path):
    _profile(tables_dir)
    pred = load_predictor("host-cpu", tables_dir)
    archs = [(f"a{i}", a) for i, a in enumerate(_archs())]

    def measure(arch, cfg, workdir):  # one measurement taken while the machine was busy: 3x slower
        busy = arch.arch == archs[0][1].arch
        return Timing(block_sum(arch) * (3.0 if busy else 1.0), 0.0, 3, disturbed=busy)

    r = validate_host(pred, archs, TimingConfig(), tmp_path / "v", measure=measure)
    assert r.summary["n"] == len(archs) - 1 and r.summary["n_disturbed"] == 1
    df = pd.read_csv(tmp_path / "v" / "report.csv")
    assert df["disturbed"].sum() == 1 and len(df) == len(archs)


@pytest.mark.slow
def test_real_tiny_calibration_end_to_end(tables_dir):
    """Profiled for real on tiny shapes, marked as made elsewhere: a real calibration measures the
    table's whole models here, stores the fit, and predictions use it."""
    # guard off: on a busy machine it leaves disturbed entries out, and fewer whole models remain
    res = _profile(tables_dir, cfg=TimingConfig(runs=3, sessions=1, warmup=1, guard=0), real=True)
    _make_foreign(res.path)
    runs = ensure_calibration("host-cpu", tables_dir)
    assert len(runs) == 1 and runs[0].calibration.n == len(VARIANTS)
    assert 0.05 <= runs[0].calibration.scale <= 20 and runs[0].stored.is_file()
    table = load_table("host-cpu", tables_dir)
    assert table.meta["calibration"].startswith("calibrated") and ensure_calibration("host-cpu", tables_dir) == []
