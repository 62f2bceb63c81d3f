from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from latency_helpers import TINY_CONV, FakeTimer, block_sum, fake_ms

from nas.errors import NasError
from nas.latency import TimingConfig, load_table, profile_host, read_table, time_onnx
from nas.latency._calibration import calibrate
from nas.latency._host import host_cache_mib
from nas.latency._onnxrt import export_key
from nas.latency._table import make_row, new_table
from nas.spec import arch_keys, parse_arch
from nas.zoo import get_spec

CFG = TimingConfig(threads=1, runs=3, sessions=1, warmup=1)


def _keys(arch) -> list[str]:
    return list(dict.fromkeys(arch_keys(arch)))


def test_interrupted_run_resumes_and_measures_each_entry_once(tables_dir, tiny_conv):
    keys = _keys(tiny_conv)
    models = [tiny_conv]
    first = FakeTimer(fail_after=3)
    with pytest.raises(KeyboardInterrupt):
        profile_host(keys, models, cfg=CFG, tables_dir=tables_dir, measure=first, call_ms=0.005)
    assert sum(first.calls.values()) == 3
    partial = read_table(tables_dir / "host-cpu.csv")
    assert len(partial.df) == 3  # finished entries were written as they finished
    second = FakeTimer()
    res = profile_host(keys, models, cfg=CFG, tables_dir=tables_dir, measure=second, call_ms=0.005)
    assert not set(first.calls) & set(second.calls)  # nothing measured twice
    every = {**first.calls, **second.calls}
    assert set(every) == set(keys) | {tiny_conv.arch} and all(n == 1 for n in every.values())
    assert res.measured == len(keys) + 1 - 3 and res.skipped == 3
    t = read_table(tables_dir / "host-cpu.csv")
    assert set(t.entry_ms) == set(keys) and len(t.models) == 1
    assert set(keys) <= set(load_table("host-cpu", tables_dir).entry_ms)  # merged over the shipped table
    # A third run has nothing left to do.
    third = FakeTimer()
    profile_host(keys, models, cfg=CFG, tables_dir=tables_dir, measure=third, call_ms=0.005)
    assert third.calls == {}


def test_resume_refuses_other_settings(tables_dir, tiny_conv):
    keys = _keys(tiny_conv)[:2]
    profile_host(keys, cfg=CFG, tables_dir=tables_dir, measure=FakeTimer(), call_ms=0.0)
    other = TimingConfig(threads=2, runs=3, sessions=1, warmup=1)
    with pytest.raises(NasError, match="threads=1.*--threads 1.*--fresh"):
        profile_host(keys, cfg=other, tables_dir=tables_dir, measure=FakeTimer(), call_ms=0.0)
    res = profile_host(keys, cfg=other, tables_dir=tables_dir, measure=FakeTimer(), call_ms=0.0, fresh=True)
    assert res.measured == 2 and res.table.meta["threads"] == "2"


def test_calibration_recovers_scale_overhead_and_cache_terms():
    dtype = "fp32"
    names = (
        "mnv4-conv-small",
        "mobilenet-v1",
        "mnv4-conv-medium",
        "mnv4-conv-large",
        "mobilenet-v2-200",
        "mobilenet-v2-050",
        "mnv4-hybrid-medium",
    )
    archs = [get_spec(n) for n in names]
    cache_mib = 32.0
    rows, seen = [], set()
    for a in archs:
        for k in arch_keys(a):
            if k not in seen:
                seen.add(k)
                rows.append(make_row(k, dtype, fake_ms(k)))
    for a in archs:
        w = make_row(a.arch, dtype, 1.0)["weight_bytes"] / 2**20
        measured = 1.12 * block_sum(a) + 0.3 + 0.02 * max(w - cache_mib, 0)
        rows.append(make_row(a.arch, dtype, measured))
    rows.append(make_row(get_spec("mobilenet-v2-100").arch, dtype, 99.0))  # layers not profiled: ignored
    table = new_table({"target": "t", "source": "profiled", "call_ms": "0.005"}, rows)
    cal = calibrate(table, cache_mib)
    assert cal.n_models == len(names) and cal.mape_pct < 1e-6 and cal.n_other == 0
    assert cal.context_scale == pytest.approx(1.12, rel=1e-6) and cal.overhead_ms == pytest.approx(0.3, abs=1e-6)
    assert cal.cache_ms_per_mib == pytest.approx(0.02, rel=1e-6)
    assert cal.mape_no_cache_pct > 0.1 and cal.mape_no_scale_pct > 1 and cal.mape_block_sum_pct > 5
    # with the calibrated terms the predictor reproduces every calibration model
    from nas.latency import Predictor
    from nas.latency._table import LatencyTable

    table.meta.update(cal.meta(), cache_mib=str(cache_mib))
    pred = Predictor(LatencyTable(table.meta, table.df)).predict_archs(archs).latency_ms
    np.testing.assert_allclose(pred, table.models.loc[[a.arch for a in archs], "latency_ms"], rtol=1e-6)
    # restricted to some models (e.g. the members of the profiled spaces); the others are reported apart
    conv = calibrate(table, cache_mib, use=lambda a: a.resolution == 224)
    assert conv.n_models == 4 and conv.n_other == 3 and conv.mape_other_pct < 1e-6


def test_real_timing_of_a_tiny_block(tmp_path):
    key = arch_keys(parse_arch(TINY_CONV))[2]
    shape = export_key(key, tmp_path / "b.onnx")
    t = time_onnx(tmp_path / "b.onnx", shape, CFG)
    assert t.n == 3 and 0 < t.median_ms < 50 and t.std_ms >= 0
    assert host_cache_mib() > 0


@pytest.mark.slow
def test_kill_9_then_rerun_completes_without_duplicates(tmp_path):
    """The CLI profile, killed with SIGKILL mid-run, resumes and ends with every entry exactly once."""
    # guard off: on a busy machine it would leave disturbed entries out of the rerun too
    (tmp_path / "nas.toml").write_text(
        '[latency]\ntables_dir = "tables"\nruns = 400\nsessions = 1\nwarmup = 1\nguard = 0\n'
    )
    exe = os.path.join(os.path.dirname(sys.executable), "mnv4-nas")
    args = [exe, "latency", "profile", "--no-zoo", "--no-fit", "--model", TINY_CONV]
    table = tmp_path / "tables" / "host-cpu.csv"
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        lines = table.read_text().splitlines() if table.exists() else []
        if sum(not line.startswith("#") for line in lines[:-1]) >= 3:  # column line + 2 complete rows
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = read_table(table)
    keys = _keys(parse_arch(TINY_CONV))
    assert 0 < len(before.df) < len(keys) + 1
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    after = read_table(table)
    assert sorted(after.df["key"]) == sorted([*keys, parse_arch(TINY_CONV).arch])  # each entry exactly once
    np.testing.assert_array_equal(
        after.df.set_index("key").loc[before.df["key"], "latency_ms"], before.df.set_index("key")["latency_ms"]
    )


def test_interference_guard_retimes_disturbed_sessions():
    from nas.latency._timing import InterferenceGuard

    # reference-graph times: quiet (1.0), busy (1.8) around the first two attempts, quiet again
    probes = iter([1.0, 1.8, 1.8, 1.8, 1.0, 1.0, 1.0, 1.0])
    naps: list[float] = []
    guard = InterferenceGuard(lambda: next(probes), tolerance=1.15, sleep=naps.append)
    sessions = iter([np.array([9.0]), np.array([8.0]), np.array([5.0]), np.array([6.0])])
    assert guard.run(lambda: next(sessions)).tolist() == [5.0]  # the first session seen undisturbed
    assert guard.retries == 2 and naps == [0.25, 0.5]
    assert guard.run(lambda: np.array([5.5])).tolist() == [5.5] and guard.retries == 2
    # never quiet: after the retries, the least disturbed attempt
    busy = InterferenceGuard(lambda: 3.0 if busy.best < 3.0 else 1.0, tolerance=1.15, sleep=lambda s: None)
    busy.best = 1.0
    runs = iter([np.array([x]) for x in (9.0, 7.0, 8.0, 9.5, 10.0)])
    assert busy.run(lambda: next(runs)).tolist() == [7.0] and busy.retries == InterferenceGuard.RETRIES


def test_interference_guard_retimes_a_session_that_lost_the_cpu():
    """More processes than cores: the thread waits whole time slices, which the reference graph's median
    does not show; its CPU time against the wall clock does."""
    import time

    from nas.latency._timing import InterferenceGuard

    # thread CPU clock readings around each attempt: 1 ms of CPU in a >= 20 ms session, then all of it
    cpu = iter([0.0, 0.001, 1.0, 2.0])
    guard = InterferenceGuard(lambda: 1.0, tolerance=1.15, sleep=lambda s: None, cpu_clock=lambda: next(cpu))
    sessions = iter([np.array([9.0]), np.array([5.0])])

    def session():
        time.sleep(0.02)
        return next(sessions)

    assert guard.run(session).tolist() == [5.0] and guard.retries == 1 and guard.disturbed == 0


def test_real_timing_reports_retries_and_guard_can_be_off(tmp_path):
    key = arch_keys(parse_arch(TINY_CONV))[1]
    shape = export_key(key, tmp_path / "b.onnx")
    off = TimingConfig(threads=1, runs=3, sessions=2, warmup=1, guard=0)
    t = time_onnx(tmp_path / "b.onnx", shape, off, flush=True)
    assert t.retries == 0 and t.n == 6
    with pytest.raises(NasError, match="guard must be 0"):
        TimingConfig(guard=0.5)


def test_calibration_models_are_spread_among_the_layers():
    from nas.latency._profile import _interleave

    layers, models = [f"l{i}" for i in range(10)], ["m0", "m1", "m2"]
    order = _interleave(layers, models)
    assert sorted(order) == sorted(layers + models)
    assert [order.index(m) for m in models] == [3, 6, 10]
    assert _interleave([], models) == models and _interleave(layers, []) == layers
