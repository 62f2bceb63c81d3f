from __future__ import annotations

import json
import subprocess
import sys

import pytest
from latency_helpers import TINY_CONV, TINY_HYBRID, fake_ms

from nas.errors import ConfigError, NasError
from nas.latency import (
    fit_models,
    get_device,
    import_results,
    load_predictor,
    load_table,
    make_bundle,
    read_model_latencies,
    read_results,
)
from nas.latency._bundle import CALL_PROBE_KEY
from nas.spec import arch_keys, parse_arch
from nas.zoo import get_spec


def _keys(text: str) -> list[str]:
    return list(dict.fromkeys(arch_keys(parse_arch(text))))


def test_bundle_run_on_cpu_and_import(tables_dir, tmp_path, tiny_conv):
    dev = get_device("s23-cpu", tables_dir)
    out = tmp_path / "bundle"
    res = make_bundle(dev, _keys(TINY_CONV), out, models=[tiny_conv], quantize=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert res.entries == len(manifest["entries"]) == len(_keys(TINY_CONV)) + 2  # + call probe + model
    assert manifest["entries"][0]["key"] == CALL_PROBE_KEY and (out / "run_bundle.py").is_file()
    assert all((out / e["file"]).is_file() for e in manifest["entries"])
    assert "onnxruntime_perf_test" in (out / "README.txt").read_text()
    run = [sys.executable, str(out / "run_bundle.py"), "--ep", "cpu", "--runs", "3", "--sessions", "1", "--warmup", "1"]
    # interrupted after 2 entries, then resumed: every entry once
    assert subprocess.run([*run, "--limit", "2"], capture_output=True, text=True, timeout=120).returncode == 0
    done = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    results = out / "results-cpu.csv"
    assert results.read_text().startswith("# mnv4-nas bundle results")
    path, table = import_results(dev, results, tables_dir)
    assert table.source == "imported" and len(table) == len(_keys(TINY_CONV)) and len(table.models) == 1
    assert table.call_ms > 0 and "CPUExecutionProvider" in table.meta["runtime"]
    assert load_predictor("s23-cpu", tables_dir).predict_archs([tiny_conv]).latency_ms[0] > 0


def test_int8_bundle_is_quantized_and_skips_unsupported(tables_dir, tmp_path):
    dev = get_device("pixel4-dsp", tables_dir)
    keys = _keys(TINY_HYBRID)
    res = make_bundle(dev, keys, tmp_path / "b", quantize=None)
    assert res.quantized
    skipped = set(res.skipped)
    assert any(k.startswith("mqa") for k in skipped) and any("_nge" in k for k in skipped)
    import onnx

    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    layer = next(e for e in manifest["entries"] if e["kind"] == "layer")
    ops = {n.op_type for n in onnx.load(str(tmp_path / "b" / layer["file"])).graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops


def test_bundle_refuses_a_non_empty_folder(tables_dir, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("")
    with pytest.raises(NasError, match="not empty"):
        make_bundle(get_device("s23-cpu", tables_dir), _keys(TINY_CONV)[:1], tmp_path / "x")


GOOD_KEY = "uir_r1_a3_k5_s2_e4_c16@16x16x8"


@pytest.mark.parametrize(
    "text, msg",
    [
        ("key,ms\nuir_r1_a3_k5_s2_e4_c16@16x16x8,0.1\n", "missing column 'latency_ms'"),
        ("latency_ms\n0.1\n", "missing column 'key'"),
        (f"key,latency_ms\n{GOOD_KEY},-0.1\n", "latency_ms of .* must be a positive number"),
        (f"key,latency_ms\n{GOOD_KEY},nan\n", "must be a positive number"),
        (f"key,latency_ms\n{GOOD_KEY},\n", "must be a positive number"),
        (f"key,latency_ms\n{GOOD_KEY},0\n", "must be a positive number"),
        (f"key,latency_ms,std_ms\n{GOOD_KEY},0.1,-1\n", "std_ms .* non-negative"),
        ("key,latency_ms\nuir_r1_zz@16x16x8,0.1\n", "unknown key 'uir_r1_zz@16x16x8'"),
        ("key,latency_ms\nnot-a-key,0.1\n", "unknown key 'not-a-key'"),
        (f"key,latency_ms\n{GOOD_KEY},0.1\n{GOOD_KEY},0.2\n", "duplicate key"),
        (f"key,latency_ms,color\n{GOOD_KEY},0.1,red\n", "unknown column 'color'"),
    ],
)
def test_malformed_results_are_one_line_errors(tmp_path, text, msg):
    p = tmp_path / "r.csv"
    p.write_text(text)
    with pytest.raises(ConfigError, match=msg) as exc:
        read_results(p)
    assert "\n" not in str(exc.value) and str(p) in str(exc.value)


def test_plain_csv_import_and_manifest_unknown_key(tables_dir, tmp_path):
    keys = _keys(TINY_CONV)
    p = tmp_path / "plain.csv"
    p.write_text("key,latency_ms,std_ms,n\n" + "".join(f"{k},{fake_ms(k):.5f},0.001,100\n" for k in keys))
    _, table = import_results(get_device("pixel7-gpu", tables_dir), p, tables_dir)
    assert table.source == "imported" and len(table) == len(keys) and table.call_ms == 0
    assert load_table("pixel7-gpu", tables_dir).blocks.loc[keys[0], "n"] == 100
    (tmp_path / "manifest.json").write_text(
        json.dumps({"format": "mnv4-nas/latency-bundle-v1", "entries": [{"key": keys[0]}]})
    )
    with pytest.raises(ConfigError, match="not in the bundle's manifest"):
        import_results(get_device("pixel7-gpu", tables_dir), p, tables_dir)


def test_import_rejects_unsupported_blocks(tables_dir, tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("key,latency_ms\n" + "".join(f"{k},0.5\n" for k in _keys(TINY_HYBRID)))
    with pytest.raises(ConfigError, match="pixel4-dsp cannot run"):
        import_results(get_device("pixel4-dsp", tables_dir), p, tables_dir)


def test_fit_from_models_round_trip(tables_dir, tmp_path):
    """Latencies generated by a known device model are fitted back (the cheap path for a new device)."""
    from dataclasses import replace

    from nas.latency import roofline_table

    dev = get_device("s23-cpu", tables_dir)
    # a truth the priors agree with (dwconv efficiency 0.3, ridge point ≈ Tab. 16's 39.7)
    truth = replace(dev, model=replace(dev.model, peak_gmacs=80.0, bandwidth_gbs=2.0, eff_dwconv=0.3, fixed_ms=1.0))
    names = ["mnv4-conv-small", "mobilenet-v1", "mobilenet-v2-100", "mnv4-conv-medium", "mobilenet-v2-200"]
    lines = ["model_or_spec,latency_ms"]
    for n in names:
        t, _ = roofline_table(truth, arch_keys(get_spec(n)))
        ms = sum(t.entry_ms[k] for k in arch_keys(get_spec(n))) + 1.0
        lines.append(f"{n},{ms:.4f}")
    p = tmp_path / "models.csv"
    p.write_text("\n".join(lines) + "\n")

    def resolve(text):
        return get_spec(text), text

    pairs = read_model_latencies(p, resolve)
    res = fit_models(dev, pairs)
    assert res.mape_pct < 1 and res.model.peak_gmacs == pytest.approx(80.0, rel=0.1)
    bad = tmp_path / "bad.csv"
    bad.write_text("model_or_spec,latency_ms\nmnv4-conv-small,-3\n")
    with pytest.raises(ConfigError, match="must be a positive number"):
        read_model_latencies(bad, resolve)
