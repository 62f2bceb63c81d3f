"""``latency import`` says what its calibration rests on, on the console and in --json."""

from __future__ import annotations

import shutil

import pytest

from nas.resources import data_dir
from nas.spec import arch_keys

TINY = "res32|cn_r1_k3_s2_c8|er_r1_k3_s1_e2_c8|uir_r1_a3_k5_s2_e4_c16|uir_r1_a0_k3_s1_e2_c16|head_c32_h48_cls10"


@pytest.fixture
def cfg(tmp_path):
    tables = tmp_path / "tables"
    tables.mkdir()
    shutil.copy(data_dir("latency_tables") / "devices.toml", tables / "devices.toml")
    p = tmp_path / "nas.toml"
    p.write_text(f'[project]\noutput_dir = "{tmp_path / "results"}"\n[latency]\ntables_dir = "{tables}"\n')
    return str(p)


def test_an_import_calibrated_on_one_model_warns_that_its_error_says_nothing(cli, cfg, tmp_path):
    from nas.spec import parse_arch

    keys = list(dict.fromkeys(arch_keys(parse_arch(TINY))))
    csv = tmp_path / "r.csv"
    csv.write_text(
        "key,latency_ms\n" + "".join(f"{k},{0.01 * (i + 1):.4f}\n" for i, k in enumerate(keys)) + f"{TINY},0.2\n"
    )
    r = cli("--config", cfg, "latency", "import", "--target", "s23-cpu", str(csv))
    assert r.code == 0, r.err
    assert "calibrated on 1 whole models" in r.out  # the fit, on the console (was only in the CSV header)
    assert "warning: the calibration rests on 1 whole model for 2 fitted terms" in r.err
    r = cli("--config", cfg, "latency", "import", "--target", "s23-cpu", str(csv), "--json")
    cal = r.json()["calibration"]
    assert cal["n_models"] == 1 and "says nothing" in cal["warnings"][0]
