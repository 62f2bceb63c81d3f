"""TFLite export: LiteRT parity with torch on a tiny spec, FP32 and INT8 (the tflite extra; skipped without)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

HAS_LITERT = all(
    importlib.util.find_spec(m) is not None for m in ("litert_torch", "ai_edge_quantizer", "ai_edge_litert")
)
pytestmark = [
    pytest.mark.skipif(not HAS_LITERT, reason='needs the tflite extra: pip install -e ".[tflite]"'),
    pytest.mark.slow,
]

TINY = "res32|cn_r1_k3_s2_c8|er_r1_k3_s1_e2_c8|uir_r1_a3_k5_s2_e4_c16|uir_r1_a0_k3_s1_e2_c16|ds_r1_k3_s2_c24|head_c32_h48_cls10"


def test_fp32_and_int8_export_match_torch(tmp_path):
    from nas.export.tflite import FP32_ATOL, INT8_REL_TOL, export_tflite, interpreter
    from nas.spec import parse_arch

    arch = parse_arch(TINY)
    fp32 = export_tflite(arch, tmp_path / "m.tflite", calib="builtin:2")
    assert fp32.max_abs_diff is not None and fp32.max_abs_diff <= FP32_ATOL and fp32.rel_error < 1e-4
    int8 = export_tflite(arch, tmp_path / "m8.tflite", int8=True, calib="builtin:2")
    assert int8.rel_error is not None and int8.rel_error <= INT8_REL_TOL and int8.calib == "builtin:2"
    inp = interpreter(tmp_path / "m8.tflite").get_input_details()[0]
    assert inp["dtype"] == np.int8 and list(inp["shape"]) == [1, 32, 32, 3]  # full-integer, NHWC
    assert not list(tmp_path.glob(".*tmp"))  # no temporary files left


def test_litert_host_times_a_layer(tmp_path):
    from nas.latency import TimingConfig
    from nas.latency._litert import LiteRtHost
    from nas.spec import arch_keys, parse_arch

    rt = LiteRtHost()
    t = rt.measure_key(arch_keys(parse_arch(TINY))[2], TimingConfig(runs=3, sessions=1, warmup=1), tmp_path)
    assert t.n == 3 and 0 < t.median_ms < 50 and "XNNPACK" in rt.runtime_name()


def test_export_cli_tflite_int8(cli_run, tmp_path):
    r = cli_run(
        "export", TINY, "--format", "tflite", "--int8", "--calib", "builtin:2", "-o", str(tmp_path / "x.tflite")
    )
    assert r.code == 0, r.err
    assert "INT8, calibrated on builtin:2" in r.out and (tmp_path / "x.tflite").stat().st_size > 1000


@pytest.fixture
def cli_run(capsys):
    from nas.cli import main

    class R:
        def __init__(self, code, out, err):
            self.code, self.out, self.err = code, out, err

    def run(*args):
        code = main(list(args))
        cap = capsys.readouterr()
        return R(code, cap.out, cap.err)

    return run
