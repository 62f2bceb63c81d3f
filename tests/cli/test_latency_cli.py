from __future__ import annotations

import json
import shutil

import pytest

from nas.resources import data_dir

TINY = "res32|cn_r1_k3_s2_c8|er_r1_k3_s1_e2_c8|uir_r1_a3_k5_s2_e4_c16|uir_r1_a0_k3_s1_e2_c16|head_c32_h48_cls10"


@pytest.fixture
def cfg(tmp_path):
    """A config whose tables folder is private (a copy of the shipped catalog, no tables). The load guard
    is off: on a busy machine it leaves disturbed entries out (tests/latency/test_machine.py tests that)."""
    tables = tmp_path / "tables"
    tables.mkdir()
    shutil.copy(data_dir("latency_tables") / "devices.toml", tables / "devices.toml")
    p = tmp_path / "nas.toml"
    out = tmp_path / "results"
    p.write_text(
        f'[project]\noutput_dir = "{out}"\n[latency]\ntables_dir = "{tables}"\nruns = 3\nsessions = 1\nwarmup = 1\nguard = 0\n'
    )
    return str(p)


def _one_line_error(r, code: int = 2) -> str:
    assert r.code == code, (r.out, r.err)
    err = r.err.strip()
    assert err.startswith("mnv4-nas: error:") and "\n" not in err
    return err


def test_predict_hybrid_large_on_pixel8_edgetpu_near_published(cli):
    r = cli("latency", "predict", "--target", "pixel8-edgetpu", "--model", "mnv4-hybrid-large", "--json")
    assert r.code == 0, r.err
    j = r.json()
    assert {"target", "latency_ms", "source"} <= set(j)
    assert j["target"] == "pixel8-edgetpu" and j["source"] == "roofline-fit"
    assert j["latency_ms"] == pytest.approx(3.8, rel=0.05)
    r = cli("latency", "predict", "-t", "pixel6-cpu", "-m", "mnv4-conv-small")
    assert r.code == 0 and "ms (source roofline-fit)" in r.out


def test_predict_errors(cli, cfg, tmp_path):
    err = _one_line_error(cli("latency", "predict", "-t", "pixel4-dsp", "-m", "mnv4-hybrid-medium"))
    assert "cannot run attention" in err and "hybrid models do not run there" in err
    err = _one_line_error(cli("latency", "predict", "-t", "pixel8-edgetpu"))
    assert "--model" in err
    err = _one_line_error(cli("latency", "predict", "-t", "nope", "-m", "mnv4-conv-small"))
    assert "no latency table for target 'nope'" in err
    # a spec whose blocks no table has: missing key error, or a marked estimate with --fallback
    spec = tmp_path / "s.txt"
    spec.write_text(TINY)
    err = _one_line_error(cli("latency", "predict", "-t", "pixel6-cpu", "--spec", str(spec)))
    assert "no entry for cn_r1_k3_s2_c8@32x32x3" in err and "latency build --target pixel6-cpu" in err
    r = cli("latency", "predict", "-t", "pixel6-cpu", "--spec", str(spec), "--fallback", "roofline", "--json")
    assert r.code == 0 and r.json()["estimated"] is True and r.json()["source"] == "roofline-fit+roofline-fallback"
    assert r.json()["latency_ms"] > 0
    err = _one_line_error(cli("latency", "predict", "-t", "pixel6-cpu", "--spec", str(spec), "--fallback", "magic"))
    assert "fallback must be one of roofline" in err


def test_targets_and_fit_dry_run(cli, cfg):
    r = cli("--config", cfg, "latency", "targets", "--json")
    rows = {row["target"]: row for row in r.json()}
    assert rows["pixel8-edgetpu"]["source"] == "roofline-fit" and rows["pixel8-edgetpu"]["loo_mape_pct"] is not None
    r = cli("--config", cfg, "latency", "fit", "--target", "pixel8-edgetpu", "--dry-run", "--json")
    assert r.code == 0, r.err
    row = r.json()["targets"][0]
    assert row["n"] == 7 and row["fit_mape_pct"] < 10 and row["loo_mape_pct"] < 15 and len(row["free"]) <= 5
    assert r.json()["written"] is False


def test_fit_and_build_write_the_configured_folder(cli, cfg, tmp_path):
    r = cli("--config", cfg, "latency", "fit", "--target", "s23-gpu", "--json")
    assert r.code == 0, r.err
    assert r.json()["rebuilt"] == [str(tmp_path / "tables" / "s23-gpu.csv")]
    assert "[devices.s23-gpu.fit]" in (tmp_path / "tables" / "devices.toml").read_text()
    r = cli("--config", cfg, "latency", "build", "--target", "pixel4-dsp", "--json")
    assert r.code == 0, r.err
    out = r.json()[0]
    assert out["entries"] > 100 and out["skipped"] > 0
    err = _one_line_error(cli("--config", cfg, "latency", "build"))
    assert "--target" in err


def test_profile_tiny_model_then_predict(cli, cfg):
    r = cli("--config", cfg, "latency", "profile", "--no-zoo", "--model", TINY, "--json")
    assert r.code == 0, r.err
    j = r.json()
    assert j["entries"] == 5 and j["models"] == 1 and j["measured_now"] == 6
    r = cli("--config", cfg, "latency", "profile", "--no-zoo", "--model", TINY, "--json")
    assert r.json()["measured_now"] == 0 and r.json()["already_present"] == 6
    r = cli("--config", cfg, "latency", "predict", "-t", "host-cpu", "--spec", TINY, "--json")
    assert r.code == 0 and r.json()["source"] == "profiled" and r.json()["latency_ms"] > 0
    err = _one_line_error(cli("--config", cfg, "latency", "profile", "-t", "pixel6-cpu"))
    assert "only host-cpu" in err
    err = _one_line_error(cli("--config", cfg, "latency", "profile", "--no-zoo", "--model", TINY, "--threads", "2"))
    assert "--threads 1" in err


def test_import_plain_csv_and_malformed(cli, cfg, tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("key,latency_ms\ncn_r1_k3_s2_c8@32x32x3,0.01\nhead_c32_h48_cls10@8x8x16,0.02\n")
    r = cli("--config", cfg, "latency", "import", "--target", "s23-cpu", str(good), "--json")
    assert r.code == 0, r.err
    assert r.json()["source"] == "imported" and r.json()["entries"] == 2
    for text, msg in (
        ("key,latency_ms\ncn_r1_k3_s2_c8@32x32x3,-1\n", "must be a positive number"),
        ("key\ncn_r1_k3_s2_c8@32x32x3\n", "missing column 'latency_ms'"),
        ("key,latency_ms\nbogus@1x1x1,1\n", "unknown key 'bogus@1x1x1'"),
    ):
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        assert msg in _one_line_error(cli("--config", cfg, "latency", "import", "-t", "s23-cpu", str(bad)))
    err = _one_line_error(cli("--config", cfg, "latency", "import", "-t", "s23-cpu"))
    assert "--from-models" in err


def test_import_from_models(cli, cfg, tmp_path):
    csv = tmp_path / "m.csv"
    csv.write_text(
        "model_or_spec,latency_ms\nmnv4-conv-small,2.5\nmobilenet-v1,6.0\nmobilenet-v2-100,5.1\n"
        "mobilenet-v2-200,14.0\nmnv4-conv-large,60.0\n"
    )
    r = cli("--config", cfg, "latency", "import", "-t", "s23-cpu", "--from-models", str(csv), "--json")
    assert r.code == 0, r.err
    j = r.json()
    assert j["n"] == 5 and j["fit_mape_pct"] < 15 and j["source"] == "roofline-fit"
    r = cli("--config", cfg, "latency", "predict", "-t", "s23-cpu", "-m", "mnv4-conv-small", "--json")
    assert r.json()["latency_ms"] == pytest.approx(2.5, rel=0.2)


def test_validate_published_json(cli, cfg, tmp_path):
    r = cli("--config", cfg, "latency", "validate", "-t", "pixel6-cpu", "--published", "--json")
    assert r.code == 0, r.err
    j = r.json()
    assert {"n", "within_5pct", "within_10pct", "mape", "kendall_tau"} <= set(j)
    assert j["n"] == 7 and j["mape"] < 10
    assert (tmp_path / "results").is_dir() and json.loads(
        open(j["report"].replace("report.csv", "summary.json")).read()
    )
    err = _one_line_error(cli("--config", cfg, "latency", "validate", "-t", "pixel6-cpu"))
    assert "--published" in err


def test_bundle_cli(cli, cfg, tmp_path):
    r = cli(
        "--config",
        cfg,
        "latency",
        "bundle",
        "-t",
        "s23-gpu",
        "--no-zoo",
        "--model",
        TINY,
        "-o",
        str(tmp_path / "b"),
        "--json",
    )
    assert r.code == 0, r.err
    assert r.json()["entries"] == 7 and r.json()["quantized"] is False
    assert (tmp_path / "b" / "manifest.json").is_file()


def test_console_script_predict(console_script):
    r = console_script("latency", "predict", "--target", "pixel8-edgetpu", "--model", "mnv4-hybrid-large", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["latency_ms"] == pytest.approx(3.8, rel=0.05)


def test_device_add_and_tables_option(cli, tmp_path):
    mine = tmp_path / "mine"
    r = cli(
        "--tables",
        str(mine),
        "latency",
        "device",
        "add",
        "my-phone",
        "--class",
        "cpu",
        "--dtype",
        "int8",
        "--runtime",
        "TFLite XNNPACK",
        "--json",
    )
    assert r.code == 0, r.err
    assert r.json()["catalog"] == str(mine / "devices.toml")
    rows = {row["target"]: row for row in cli("--tables", str(mine), "latency", "targets", "--json").json()}
    assert rows["my-phone"]["dtype"] == "int8" and "pixel8-edgetpu" in rows and "host-cpu-tflite-int8" in rows
    err = _one_line_error(
        cli(
            "--tables",
            str(mine),
            "latency",
            "device",
            "add",
            "my-phone",
            "--class",
            "cpu",
            "--dtype",
            "int8",
            "--runtime",
            "x",
        )
    )
    assert "exists already" in err
    err = _one_line_error(cli("--tables", "", "latency", "targets"))
    assert "--tables must not be empty" in err


def test_profile_refuses_device_targets_and_names_both_host_targets(cli, cfg):
    err = _one_line_error(cli("--config", cfg, "latency", "profile", "-t", "pixel6-cpu"))
    assert "host-cpu and host-cpu-tflite-int8" in err


def test_export_tflite_needs_an_output(cli):
    err = _one_line_error(cli("export", "mnv4-conv-small", "--format", "tflite", "--int8"))
    assert "--output PATH is required" in err or "tflite extra" in err
    err = _one_line_error(cli("export", "mnv4-conv-small", "--format", "json", "--int8"))
    assert "--int8 applies to --format tflite only" in err


@pytest.mark.parametrize(
    "args, field",
    [(["--archs", "0"], "--archs"), (["--runs", "0"], "runs"), (["--threads", "0"], "threads")],
)
def test_validate_checks_its_options_before_calibrating(cli, cfg, monkeypatch, args, field):
    """A bad option is refused at once, not after tens of seconds of calibration."""

    def calibrate(*a, **k):
        raise AssertionError("calibrated before checking the options")

    monkeypatch.setattr("nas.cli.latency.ensure_calibrated", calibrate)
    err = _one_line_error(cli("--config", cfg, "latency", "validate", "--target", "host-cpu", *args))
    assert field in err
