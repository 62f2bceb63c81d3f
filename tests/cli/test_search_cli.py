from __future__ import annotations

import json

import pytest

BASE = ["search", "--space", "mnv4-conv-small", "--estimator", "params", "--coarse-trials", "4", "--fine-trials", "4"]


def test_search_json(cli, tmp_path):
    r = cli(*BASE, "--target", "pixel8-edgetpu", "--budget", "720us", "--out", str(tmp_path / "r"), "--json")
    assert r.code == 0, r.err
    j = r.json()
    assert set(j) == {
        "arch",
        "score",
        "estimator",
        "latency_ms",
        "budget_ms",
        "within_budget",
        "classes",
        "resolution",
        "estimator_data",
        "out_dir",
    }
    assert j["within_budget"] is True and j["estimator_data"] is None  # a proxy learnt no data
    assert (j["classes"], j["resolution"]) == (1000, 224)
    assert j["estimator"] == "params" and j["budget_ms"] == {"pixel8-edgetpu": pytest.approx(0.72)}
    assert j["latency_ms"]["pixel8-edgetpu"] <= 0.72
    assert {"pixel6-cpu", "s23-gpu", "iphone13-ane", "host-cpu"} <= set(j["latency_ms"])  # all targets
    assert j["arch"].startswith("res224|")


def test_search_table_shows_all_targets_with_provenance(cli, tmp_path):
    r = cli(*BASE, "--target", "pixel8-edgetpu", "--budget", "0.72 ms", "--out", str(tmp_path / "r"))
    assert r.code == 0, r.err
    for t in ("pixel6-cpu", "pixel4-dsp", "pixel8-edgetpu", "host-cpu"):
        assert t in r.out
    assert "provenance" in r.out and "roofline-fit" in r.out and "results:" in r.out


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--budget", "4"], "budget '4' must be a positive number with a unit"),
        (["--budget", "-1ms"], "budget '-1ms'"),
        (["--budget", "fast"], "budget 'fast'"),
        (["--target", "tpu9", "--budget", "4ms"], "unknown target 'tpu9' (known: "),
        (["--target", "pixel8-edgetpu", "--target", "s23-gpu", "--budget", "4ms"], "each --target needs one --budget"),
        (["--target", "pixel8-edgetpu", "--budget", "0.1ms"], "below the smallest latency"),
        (["--target", "pixel8-edgetpu", "--budget", "4ms", "--estimator", "oracle"], "unknown estimator 'oracle'"),
        (["--target", "pixel8-edgetpu", "--budget", "4ms", "--fallback", "zero"], "--fallback must be 'roofline'"),
        (
            ["--target", "pixel8-edgetpu", "--budget", "4ms", "--engine", "tunas"],
            "--engine tunas needs --estimator supernet:CKPT",
        ),
        (
            ["--target", "pixel8-edgetpu", "--budget", "4ms", "--engine", "grid"],
            "--engine must be one of optuna, tunas",
        ),
    ],
)
def test_search_errors_are_one_line(cli, tmp_path, args, needle):
    r = cli(*BASE, *args, "--out", str(tmp_path / "r"))
    assert r.code == 2
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.err


def test_coarse_estimator_from_config(cli, tmp_path):
    """search.coarse_estimator in nas.toml scores the coarse stage of two-stage searches only."""
    cfg = tmp_path / "nas.toml"
    cfg.write_text('[search]\ncoarse_estimator = "zen@32"\n')
    args = ["--config", str(cfg), *BASE, "--target", "pixel8-edgetpu", "--budget", "720us"]
    r = cli(*args, "--out", str(tmp_path / "two"), "--json")
    assert r.code == 0, r.err
    assert json.loads((tmp_path / "two" / "run.json").read_text())["identity"]["coarse_estimator"] == "zen@32"
    r = cli(*args, "--coarse-estimator", "naswot@32", "--out", str(tmp_path / "flag"), "--json")
    assert r.code == 0, r.err  # the flag wins over the file
    assert json.loads((tmp_path / "flag" / "run.json").read_text())["identity"]["coarse_estimator"] == "naswot@32"
    r = cli(*args, "--one-stage", "--trials", "4", "--out", str(tmp_path / "one"), "--json")
    assert r.code == 0, r.err  # a one-stage search has no coarse stage: the file's default does not apply
    assert json.loads((tmp_path / "one" / "run.json").read_text())["identity"]["coarse_estimator"] is None
