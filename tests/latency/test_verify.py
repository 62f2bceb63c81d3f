"""search --verify's library part: picks measured on host targets, bundled for device targets."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from latency_helpers import TINY_CONV, FakeTimer, block_sum

from nas.latency import Timing, TimingConfig, load_predictor, profile_host
from nas.latency._verify import picks_of, verify_picks
from nas.spec import arch_keys, parse_arch


def test_verify_measures_host_picks_and_bundles_device_picks(tables_dir, tmp_path):
    archs = [parse_arch(TINY_CONV), parse_arch(TINY_CONV.replace("uir_r1_a0_k3_s1_e2_c16|", ""))]
    keys = list(dict.fromkeys(k for a in archs for k in arch_keys(a)))
    profile_host(
        keys, cfg=TimingConfig(runs=1, sessions=1, warmup=0), tables_dir=tables_dir, measure=FakeTimer(), call_ms=0.005
    )
    predicted = load_predictor("host-cpu", tables_dir).predict_archs(archs).latency_ms
    budget = float(predicted.mean())  # the first pick (the bigger one) is over it when measured

    def measure(target, arch, cfg, workdir):
        return Timing(block_sum(arch) * 1.05, 0.0, 3)

    pareto = pd.DataFrame({"arch": [archs[1].arch, archs[0].arch]})
    picks = picks_of(archs[0], pareto)
    assert [label for label, _ in picks] == ["best", "pareto0"]
    report = verify_picks(
        picks,
        {"host-cpu": budget, "s23-gpu": 5.0},
        tmp_path,
        tables_dir=tables_dir,
        measure=measure,
        bundle_format="onnx",
    )
    rows = report.rows
    assert list(rows["target"]) == ["host-cpu", "host-cpu"] and list(rows["pick"]) == ["best", "pareto0"]
    assert rows["measured_ms"].tolist() == pytest.approx([block_sum(a) * 1.05 for a in archs])
    assert rows["within_budget_measured"].tolist() == [False, True] and not report.all_within_budget
    assert (tmp_path / "verify.csv").is_file()
    manifest = json.loads((report.bundles["s23-gpu"] / "manifest.json").read_text())
    assert [e["key"] for e in manifest["entries"] if e["kind"] == "model"] == [a.arch for a in archs]
