"""A TFLite bundle: one ``.tflite`` model per table entry and a shell runner that times each with
TFLite's standard ``benchmark_model`` tool over ``adb`` — the way Android users measure — and the
reader of ``benchmark_model``'s output that ``latency import`` uses.

Bundle layout::

    DIR/manifest.json         format (tflite), target, dtype, entries [{key, file, input_shape, kind}]
    DIR/models/eNNNNN.tflite  one model per entry (INT8 for int8 targets, else FP32), NHWC input
    DIR/run_benchmark.sh      pushes the models and runs benchmark_model on each (resumable)
    DIR/logs/eNNNNN.txt       benchmark_model's output per model (written by the runner)
    DIR/README.txt            how to run it
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from nas.errors import ConfigError
from nas.inputs import as_error, path_exists, read_json, read_text
from nas.latency._bundle_entries import CALL_PROBE_KEY, PROBE_SHAPE, bundle_entries
from nas.latency._catalog import Device
from nas.latency._keys import call_probe_module
from nas.spec import ArchSpec
from nas.units import utc_timestamp

TFLITE_BUNDLE_FORMAT = "mnv4-nas/latency-bundle-tflite-v1"

_RUNNER = r"""#!/bin/sh
# Time every model of this mnv4-nas bundle with TFLite's benchmark_model on an Android device over adb.
#
#   ./run_benchmark.sh [benchmark_model flags...]     e.g. --use_xnnpack=true | --use_gpu=true | --use_nnapi=true
#
# Environment: ADB (default "adb"; "adb -s SERIAL" for one of several devices), BENCHMARK_MODEL (path of
# the benchmark_model binary on the device, default /data/local/tmp/benchmark_model), THREADS (default 1),
# RUNS (default 100), CORES (a taskset mask for the fastest core(s), default f0). Resumable: a model whose
# log already holds a result is skipped. Then: mnv4-nas latency import --target {target} <this folder>
set -eu
cd "$(dirname "$0")"
ADB=${{ADB:-adb}}
BENCH=${{BENCHMARK_MODEL:-/data/local/tmp/benchmark_model}}
REMOTE=/data/local/tmp/mnv4nas-bundle
THREADS=${{THREADS:-1}}
RUNS=${{RUNS:-100}}
CORES=${{CORES:-f0}}
mkdir -p logs
$ADB shell mkdir -p "$REMOTE"
$ADB shell getprop ro.product.model > logs/device.txt 2>/dev/null || true
while IFS="$(printf '\t')" read -r file rest; do
  log="logs/$(basename "$file" .tflite).txt"
  if [ -f "$log" ] && grep -q "Inference (avg)" "$log"; then continue; fi
  $ADB push "$file" "$REMOTE/" > /dev/null
  $ADB shell taskset "$CORES" "$BENCH" --graph="$REMOTE/$(basename "$file")" --num_threads="$THREADS" \
    --num_runs="$RUNS" --warmup_runs=10 "$@" > "$log.tmp" 2>&1 || true
  mv "$log.tmp" "$log"
  $ADB shell rm -f "$REMOTE/$(basename "$file")"
  echo "$(grep -o 'Inference (avg): [0-9.e+]*' "$log" || echo 'no result') us  $file"
done < files.txt
echo "done: mnv4-nas latency import --target {target} $(pwd)"
"""

_README = """\
mnv4-nas TFLite latency bundle for target {target} ({kind}): {n} models.

1. Put TFLite's benchmark_model binary on the device (from the TensorFlow/LiteRT releases, or built
   with bazel): adb push benchmark_model /data/local/tmp/ && adb shell chmod +x /data/local/tmp/benchmark_model
2. Run every model (resumable; 1 thread on the fastest cores by default, as the MobileNetV4 paper measured):

       ./run_benchmark.sh --use_xnnpack=true          # CPU; or --use_gpu=true, --use_nnapi=true, …

   benchmark_model's output for each model lands in logs/.
3. Import the logs:

       mnv4-nas latency import --target {target} {path}

Each models/<file>.tflite has its key in manifest.json ("call_probe" is a trivial model: the per-call
cost; rows whose key is an architecture string are whole models that calibrate the per-inference
overhead).
"""


def make_tflite_bundle(
    device: Device,
    keys: Sequence[str],
    out: Path,
    models: Sequence[ArchSpec],
    quantize: bool | None,
    progress: Callable[[int, int, str], None] | None,
) -> tuple[int, tuple[str, ...], bool]:
    """Write the bundle into the (new, empty) folder ``out``; returns (entries, skipped keys, quantized)."""
    from nas.export.tflite import export_module_tflite, require_litert
    from nas.latency._litert import export_key_tflite

    require_litert()
    int8 = device.dtype == "int8" if quantize is None else quantize

    def export(key: str, path: Path) -> tuple[int, ...]:
        if key == CALL_PROBE_KEY:
            export_module_tflite(call_probe_module(), PROBE_SHAPE, path, int8=int8, check=False)
            return PROBE_SHAPE
        return export_key_tflite(key, path, int8=int8)

    entries, skipped = bundle_entries(device, keys, models, out, ".tflite", export, progress)
    manifest = {
        "format": TFLITE_BUNDLE_FORMAT,
        "target": device.name,
        "dtype": device.dtype,
        "quantized": int8,
        "created": utc_timestamp(),
        "entries": entries,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    (out / "files.txt").write_text("".join(f"{e['file']}\t{e['key'][:40]}\n" for e in entries), encoding="utf-8")
    runner = out / "run_benchmark.sh"
    runner.write_text(_RUNNER.format(target=device.name), encoding="utf-8")
    runner.chmod(0o755)
    kind_text = "INT8, full-integer" if int8 else "FP32"
    (out / "README.txt").write_text(
        _README.format(target=device.name, kind=kind_text, n=len(entries), path=out), encoding="utf-8"
    )
    return len(entries), skipped, int8


_AVG = re.compile(r"Inference \(avg\):\s*([-+0-9.eE]+|nan|inf)")
_COUNT = re.compile(r"count=(\d+)\b.*?\bavg=([-+0-9.eE]+|nan|inf)\s+std=([-+0-9.eE]+|nan|inf)")


def parse_benchmark_output(text: str, source: str) -> tuple[float, float, int]:
    """``(latency_ms, std_ms, runs)`` of one ``benchmark_model`` output: the mean of the timed runs
    (``Inference (avg)``, µs), the standard deviation and count of its last ``count=… avg=… std=…``
    line. Output without a result, or a result that is not a positive finite number, is a one-line
    :class:`ConfigError` naming ``source``."""
    avg = _AVG.findall(text)
    if not avg:
        last = next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "empty")
        raise ConfigError(f"{source}: no 'Inference (avg)' line (benchmark_model failed? last line: {last[:100]!r})")
    us = float(avg[-1])
    if not (math.isfinite(us) and us > 0):
        raise ConfigError(f"{source}: Inference (avg) must be a positive number of microseconds (got {avg[-1]!r})")
    counts = _COUNT.findall(text)
    std_ms, n = math.nan, 0
    if counts:
        c, _, std = counts[-1]
        std_v = float(std)
        if math.isfinite(std_v) and std_v >= 0:
            std_ms = std_v / 1e3
        n = min(int(c), 2**31)
    return us / 1e3, std_ms, n


def is_tflite_bundle(path: Path) -> bool:
    """Whether ``path`` is a folder holding a TFLite bundle's manifest."""
    m = Path(path) / "manifest.json"
    if not Path(path).is_dir() or not path_exists(m):
        return False
    with as_error(ConfigError):
        data = read_json(m, "bundle manifest")
    return isinstance(data, dict) and data.get("format") == TFLITE_BUNDLE_FORMAT


def read_benchmark_logs(bundle: Path) -> tuple[dict[str, str], pd.DataFrame]:
    """A TFLite bundle's ``logs/`` → (metadata, rows ``key, latency_ms, std_ms, n``). Entries without a
    log yet are left out (a partial run imports what it has); a log without a result is an error."""
    with as_error(ConfigError):
        manifest = read_json(bundle / "manifest.json", "bundle manifest")
    entries = manifest.get("entries")
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("key"), str) and isinstance(e.get("file"), str) for e in entries
    ):
        raise ConfigError(f"{bundle / 'manifest.json'}: malformed (entries must be a list of {{key, file, …}} objects)")
    rows = []
    for e in entries:
        log = bundle / "logs" / f"{Path(e['file']).stem}.txt"
        if not path_exists(log):
            continue
        with as_error(ConfigError):
            text = read_text(log, "benchmark_model output", 2**22)
        ms, std, n = parse_benchmark_output(text, str(log))
        rows.append({"key": e["key"], "latency_ms": ms, "std_ms": std, "n": n})
    if not rows:
        raise ConfigError(f"{bundle / 'logs'}: no benchmark_model output yet; run {bundle / 'run_benchmark.sh'} first")
    device = bundle / "logs" / "device.txt"
    model = read_text(device, "device name", 4096).strip() if path_exists(device) else ""
    meta = {"runtime": "TFLite benchmark_model", "device": model or "an Android device (adb)"}
    return meta, pd.DataFrame(rows)


__all__ = [
    "TFLITE_BUNDLE_FORMAT",
    "is_tflite_bundle",
    "make_tflite_bundle",
    "parse_benchmark_output",
    "read_benchmark_logs",
]
