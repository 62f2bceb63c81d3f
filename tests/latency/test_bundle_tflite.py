"""TFLite bundles: benchmark_model output read back (no tflite extra needed), the bundle itself (extra)."""

from __future__ import annotations

import importlib.util
import json

import pytest
from latency_helpers import TINY_CONV, fake_ms

from nas.errors import ConfigError
from nas.latency import get_device, import_results, make_bundle, read_model_latencies
from nas.latency._bundle_tflite import TFLITE_BUNDLE_FORMAT, parse_benchmark_output
from nas.spec import arch_keys, parse_arch

OUTPUT = """\
INFO: STARTING!
INFO: Graph: [/data/local/tmp/mnv4nas-bundle/e00001.tflite]
INFO: Num threads: [1]
INFO: The input model file size (MB): 0.011
INFO: Initialized session in 3.2ms.
INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=2345 first=301 curr=210 min=198 max=420 avg=213.1 std=9

INFO: Running benchmark for at least 100 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=4711 first=215 curr=207 min=199 max=390 avg={avg} std=7

INFO: Inference timings in us: Init: 3200, First inference: 301, Warmup (avg): 213.1, Inference (avg): {avg}
INFO: Memory footprint delta from the start of the tool (MB): init=2.5 overall=3.1
"""
HAS_LITERT = all(
    importlib.util.find_spec(m) is not None for m in ("litert_torch", "ai_edge_quantizer", "ai_edge_litert")
)


def test_parse_benchmark_output():
    ms, std, n = parse_benchmark_output(OUTPUT.format(avg="211.4"), "log")
    assert ms == pytest.approx(0.2114) and std == pytest.approx(0.007) and n == 4711


@pytest.mark.parametrize(
    "text, msg",
    [
        ("", "no 'Inference \\(avg\\)' line"),
        ("ERROR: Could not open 'x.tflite'.\nAborted\n", "no 'Inference \\(avg\\)' line.*Aborted"),
        (OUTPUT.format(avg="-3"), "must be a positive number"),
        (OUTPUT.format(avg="nan"), "must be a positive number"),
        (OUTPUT.format(avg="0"), "must be a positive number"),
    ],
)
def test_bad_benchmark_output_is_a_one_line_error(text, msg):
    with pytest.raises(ConfigError, match=msg) as exc:
        parse_benchmark_output(text, "logs/e00001.txt")
    assert "\n" not in str(exc.value) and "logs/e00001.txt" in str(exc.value)


def _fake_bundle(path, keys, logs):
    """A TFLite bundle's manifest and logs as the runner leaves them (no models needed to import)."""
    entries = [
        {"key": k, "file": f"models/e{i:05d}.tflite", "input_shape": [1, 3, 8, 8], "kind": "layer"}
        for i, k in enumerate(keys)
    ]
    path.mkdir()
    (path / "manifest.json").write_text(json.dumps({"format": TFLITE_BUNDLE_FORMAT, "target": "t", "entries": entries}))
    (path / "logs").mkdir()
    for i, text in logs.items():
        (path / "logs" / f"e{i:05d}.txt").write_text(text)
    (path / "logs" / "device.txt").write_text("Pixel 6\n")


def test_import_reads_benchmark_model_logs(tables_dir, tmp_path):
    keys = ["call_probe", *dict.fromkeys(arch_keys(parse_arch(TINY_CONV))), parse_arch(TINY_CONV).arch]
    logs = {
        i: OUTPUT.format(avg=f"{1e3 * (0.01 if k == 'call_probe' else fake_ms(k)):.3f}") for i, k in enumerate(keys)
    }
    del logs[3]  # a partial run imports what it has
    _fake_bundle(tmp_path / "b", keys, logs)
    path, table = import_results(get_device("pixel6-cpu", tables_dir), tmp_path / "b", tables_dir)
    assert table.source == "imported" and len(table) == len(keys) - 3 and len(table.models) == 1
    assert table.call_ms == pytest.approx(0.01) and "Pixel 6" in table.meta["note"]
    pairs = read_model_latencies(tmp_path / "b", lambda s: (parse_arch(s), s))  # --from-models on the bundle
    assert [a.arch for _, a, _ in pairs] == [keys[-1]]


def test_import_of_a_bundle_with_a_broken_log_is_a_one_line_error(tables_dir, tmp_path):
    key = arch_keys(parse_arch(TINY_CONV))[0]
    _fake_bundle(tmp_path / "b", [key], {0: "ERROR: failed to allocate tensors\n"})
    with pytest.raises(ConfigError, match="e00000.txt: no 'Inference") as exc:
        import_results(get_device("pixel6-cpu", tables_dir), tmp_path / "b", tables_dir)
    assert "\n" not in str(exc.value)
    _fake_bundle(tmp_path / "c", [key], {})
    with pytest.raises(ConfigError, match="no benchmark_model output yet"):
        import_results(get_device("pixel6-cpu", tables_dir), tmp_path / "c", tables_dir)


@pytest.mark.skipif(not HAS_LITERT, reason='needs the tflite extra: pip install -e ".[tflite]"')
@pytest.mark.slow
def test_tflite_bundle_has_a_model_per_entry_and_a_runner(tables_dir, tmp_path):
    keys = list(dict.fromkeys(arch_keys(parse_arch(TINY_CONV))))[:2]
    res = make_bundle(get_device("pixel6-cpu", tables_dir), keys, tmp_path / "b", fmt="tflite")
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert res.quantized and res.entries == 3 and manifest["format"] == TFLITE_BUNDLE_FORMAT
    assert all((tmp_path / "b" / e["file"]).stat().st_size > 0 for e in manifest["entries"])
    runner = (tmp_path / "b" / "run_benchmark.sh").read_text()
    assert "benchmark_model" in runner and "adb" in runner.lower() and "--graph=" in runner
