from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from latency_helpers import TINY_CONV, FakeTimer, block_sum

from nas.latency import (
    Timing,
    TimingConfig,
    load_predictor,
    profile_host,
    summarize,
    validate_host,
    validate_published,
)
from nas.spec import arch_keys, parse_arch


def test_summary_figures():
    s = summarize(np.array([1.0, 2.09, 3.0, 4.8]), np.array([1.0, 2.0, 3.3, 4.0]))
    assert s["n"] == 4 and s["within_5pct"] == 0.5 and s["within_10pct"] == 0.75
    assert s["mape"] == pytest.approx((0 + 4.5 + 100 * 0.3 / 3.3 + 20) / 4)
    assert s["kendall_tau"] == pytest.approx(1.0)


def test_published_validation_report(tmp_path):
    r = validate_published(load_predictor("pixel8-edgetpu"), tmp_path / "out")
    assert r.summary["n"] == 7 and r.summary["mape"] < 10 and r.summary["kendall_tau"] > 0.5
    assert (tmp_path / "out" / "report.csv").is_file() and (tmp_path / "out" / "scatter.png").stat().st_size > 1000
    r = validate_published(load_predictor("pixel4-dsp"))
    assert r.summary["n"] == 6 and "mnv4-hybrid-large" not in set(r.rows["model"])


def test_host_validation_with_a_fake_timer(tables_dir, tmp_path):
    variants = [TINY_CONV, TINY_CONV.replace("_c16|", "_c24|", 1), TINY_CONV.replace("ds_r1_k3_s2_c24|", "")]
    archs = [parse_arch(a) for a in variants]
    keys = list(dict.fromkeys(k for a in archs for k in arch_keys(a)))
    profile_host(
        keys, cfg=TimingConfig(runs=1, sessions=1, warmup=0), tables_dir=tables_dir, measure=FakeTimer(), call_ms=0.005
    )
    pred = load_predictor("host-cpu", tables_dir)

    def measure(arch, cfg, workdir):  # the model runs 5% slower than its block sum
        return Timing(block_sum(arch) * 1.05, 0.0, 3)

    out = tmp_path / "v"
    r = validate_host(pred, [(f"a{i}", a) for i, a in enumerate(archs)], TimingConfig(), out, measure=measure)
    assert r.summary["n"] == 3 and r.summary["within_10pct"] == 1.0 and r.summary["within_5pct"] == 1.0
    assert r.summary["mape"] == pytest.approx(100 * (1 - 1 / 1.05), rel=1e-3)
    df = pd.read_csv(out / "report.csv")
    assert len(df) == 3 and {"predicted_ms", "measured_ms", "error_pct", "arch"} <= set(df.columns)
    summary = json.loads((out / "summary.json").read_text())
    assert {
        "n",
        "within_5pct",
        "within_10pct",
        "mape",
        "kendall_tau",
        "no_cache_term",
        "no_context_scale",
        "block_sum_only",
    } <= set(summary)
    assert (out / "scatter.png").is_file()
