"""Getting a table from a real device: export a bundle (one ONNX file per table entry, a manifest,
a runner script), read its results back; or fit the device model to a few end-to-end latencies.

Bundle layout::

    DIR/manifest.json      format, target, dtype, entries [{key, file, input_shape, kind}]
    DIR/models/eNNNNN.onnx one graph per entry (layers, a call probe, a few whole models)
    DIR/run_bundle.py      runner (numpy + onnxruntime only; CPU, NNAPI, CoreML, XNNPACK, QNN)
    DIR/README.txt         how to run it, and onnxruntime_perf_test as an alternative

Results come back as the runner's CSV (``# mnv4-nas bundle results`` header) or any plain CSV with
``key,latency_ms[,std_ms,n]``; :func:`import_results` validates them into a table (source ``imported``).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from nas.errors import ConfigError, NasError, SpecError
from nas.inputs import as_error, check_output_dir, path_exists, read_json, read_text
from nas.latency._bundle_entries import CALL_PROBE_KEY, PROBE_SHAPE, bundle_entries
from nas.latency._bundle_runner import BUNDLE_FORMAT, RESULTS_MAGIC
from nas.latency._calibration import calibrate
from nas.latency._catalog import Device, unsupported_in
from nas.latency._keys import call_probe_module, check_key, is_model_key, key_features
from nas.latency._onnxrt import export_key
from nas.latency._table import (
    LatencyTable,
    make_row,
    new_table,
    parse_table_text,
    read_csv_text,
    table_file,
    write_dir,
    write_table,
)
from nas.spec import ArchSpec
from nas.units import utc_timestamp

MANIFEST = "manifest.json"
BUNDLE_FORMATS: tuple[str, ...] = ("onnx", "tflite")
MAX_RESULTS_BYTES = 64 * 2**20

_README = """\
mnv4-nas latency bundle for target {target} ({dtype}{quant}): {n} graphs.

1. Copy this folder to the device (Android: e.g. Termux with an onnxruntime wheel that has NNAPI;
   Apple: a Mac/iPad dev setup with onnxruntime built with CoreML).
2. Run, one execution provider at a time (1 thread by default, resumable):

       python run_bundle.py --ep nnapi          # or cpu, coreml, xnnpack, qnn
       python run_bundle.py --ep coreml --ep-option MLComputeUnits=CPUAndNeuralEngine

   It writes results-<ep>.csv next to this file.
3. Bring the CSV back and import it:

       mnv4-nas latency import --target {target} results-nnapi.csv

Alternative without Python on the device: time each models/<file>.onnx with onnxruntime's perf tool,
e.g. `onnxruntime_perf_test -e nnapi -m times -r 100 -I models/e00001.onnx`, and write a plain CSV
`key,latency_ms[,std_ms,n]` using the key of each file in manifest.json (entry "call_probe" is the
per-call cost; rows whose key is an architecture string are whole models for calibration).
"""


@dataclass(frozen=True)
class BundleResult:
    """What ``latency bundle`` wrote."""

    path: Path
    entries: int
    skipped: tuple[str, ...]
    quantized: bool


class _RandomReader:
    """Calibration data for static INT8 quantization: a few standard-normal inputs."""

    def __init__(self, name: str, shape: Sequence[int], n: int = 4):
        self._it = iter(
            [{name: np.random.default_rng(i).standard_normal(tuple(shape), dtype=np.float32)} for i in range(n)]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    # onnxruntime.quantization logs pre-processing advice through the root logger for every graph.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_int8(src: Path, dst: Path, shape: Sequence[int]) -> None:
    """Static INT8 QDQ quantization (per-channel weights), calibrated on random inputs."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    reader = _RandomReader("input", shape)
    CalibrationDataReader.register(_RandomReader)
    with _quiet_root_logger():
        quantize_static(
            str(src),
            str(dst),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )


def make_bundle(
    device: Device,
    keys: Sequence[str],
    out_dir: str | Path,
    *,
    models: Sequence[ArchSpec] = (),
    quantize: bool | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    fmt: str = "onnx",
) -> BundleResult:
    """Export one graph per key (plus a call probe and ``models`` whole) into ``out_dir``: ONNX graphs and a
    Python runner (``fmt="onnx"``), or ``.tflite`` models and a ``benchmark_model`` runner over adb
    (``fmt="tflite"``, the tflite extra).

    ``quantize`` defaults to the target's dtype being int8 (static INT8 quantization); FP16 targets get
    FP32 graphs, which CoreML (MLProgram) and GPU delegates run in FP16.
    """
    if fmt not in BUNDLE_FORMATS:
        raise NasError(f"--format must be one of {', '.join(BUNDLE_FORMATS)} (got {fmt!r})")
    out = check_output_dir(out_dir, "--output")
    if out.exists() and any(out.iterdir()):
        raise NasError(f"{out} exists and is not empty; pick a new --output folder")
    try:
        if fmt == "tflite":
            from nas.latency._bundle_tflite import make_tflite_bundle

            n, skipped, quant = make_tflite_bundle(device, keys, out, models, quantize, progress)
            return BundleResult(out, n, skipped, quant)
        return _write_bundle(device, keys, out, models, quantize, progress)
    except OSError as exc:  # a full disk or a folder that turned unwritable midway
        raise NasError(
            f"cannot write the bundle to {out} ({exc.strerror or type(exc).__name__}); "
            "give --output a writable folder with room"
        ) from None


def _write_bundle(
    device: Device,
    keys: Sequence[str],
    out: Path,
    models: Sequence[ArchSpec],
    quantize: bool | None,
    progress: Callable[[int, int, str], None] | None,
) -> BundleResult:
    quant = device.dtype == "int8" if quantize is None else quantize

    def export(key: str, path: Path) -> tuple[int, ...]:
        if key == CALL_PROBE_KEY:
            from nas.export.onnx import export_module

            export_module(call_probe_module(), PROBE_SHAPE, path, check=False)
            return PROBE_SHAPE
        shape = export_key(key, path)
        if quant:
            quantize_int8(path, path, shape)
        return shape

    entries, skipped = bundle_entries(device, keys, models, out, ".onnx", export, progress)
    manifest = {
        "format": BUNDLE_FORMAT,
        "target": device.name,
        "dtype": device.dtype,
        "quantized": quant,
        "created": utc_timestamp(),
        "entries": entries,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    shutil.copyfile(Path(__file__).with_name("_bundle_runner.py"), out / "run_bundle.py")
    (out / "README.txt").write_text(
        _README.format(target=device.name, dtype=device.dtype, quant=", INT8 QDQ" if quant else "", n=len(entries)),
        encoding="utf-8",
    )
    return BundleResult(out, len(entries), skipped, quant)


def read_results(path: str | Path, manifest_keys: set[str] | None = None) -> tuple[dict[str, str], pd.DataFrame]:
    """Validated results CSV → (metadata, rows ``key, latency_ms, std_ms, n``).

    Accepts the bundle runner's output and plain ``key,latency_ms[,std_ms,n]`` CSVs. A missing column,
    a negative, zero or NaN latency, a duplicate or an unknown key is a one-line :class:`ConfigError`.
    """
    p = Path(path)
    with as_error(ConfigError):
        text = read_text(p, "results CSV")
    if text and not text.endswith("\n"):
        text += "\n"  # a hand-written CSV without a final newline is complete
    meta, df = parse_table_text(text, str(p))
    if df.empty and "key" not in df.columns:
        raise ConfigError(f"{p}: no rows (expected a CSV with columns key,latency_ms[,std_ms,n])")
    df.columns = [str(c).strip() for c in df.columns]
    for col in ("key", "latency_ms"):
        if col not in df.columns:
            raise ConfigError(f"{p}: missing column {col!r} (expected key,latency_ms[,std_ms,n])")
    extra = sorted(set(df.columns) - {"key", "latency_ms", "std_ms", "n"})
    if extra:
        raise ConfigError(f"{p}: unknown column {extra[0]!r} (allowed: key, latency_ms, std_ms, n)")
    df["key"] = df["key"].astype(str).str.strip()
    for col in ("latency_ms", "std_ms", "n"):
        if col not in df.columns:
            continue
        raw = df[col]
        num = pd.to_numeric(raw, errors="coerce")
        if col == "latency_ms":
            bad = ~np.isfinite(num.to_numpy(dtype=np.float64)) | (num.to_numpy(dtype=np.float64) <= 0)
        else:
            blank = raw.isna() | (raw.astype(str).str.strip() == "")
            vals = num.to_numpy(dtype=np.float64)
            bad = (~blank).to_numpy() & ~(np.isfinite(vals) & (vals >= 0))
            if col == "n":
                bad |= (~blank).to_numpy() & np.isfinite(vals) & ((vals != np.round(vals)) | (vals > 2**31))
        if bad.any():
            i = df.index[bad][0]
            what = "a positive number" if col == "latency_ms" else "a non-negative number"
            raise ConfigError(
                f"{p}: {col} of {str(df.at[i, 'key'])[:80]!r} must be {what} (got {str(raw.at[i])[:40]!r})"
            )
        df[col] = num
    dup = df["key"][df["key"].duplicated()]
    if len(dup):
        raise ConfigError(f"{p}: duplicate key {dup.iloc[0]!r}")
    for key in df["key"]:
        if key == CALL_PROBE_KEY:
            continue
        shown = key if len(key) <= 80 else f"{key[:60]}…"
        if manifest_keys is not None and key not in manifest_keys:
            raise ConfigError(f"{p}: unknown key {shown!r} (not in the bundle's manifest)")
        try:
            check_key(key)
        except SpecError as exc:
            raise ConfigError(f"{p}: unknown key {shown!r} ({exc})") from None
    if "std_ms" not in df.columns:
        df["std_ms"] = math.nan
    if "n" not in df.columns:
        df["n"] = 0
    df["n"] = df["n"].fillna(0).astype(np.int64)
    if not text.startswith(RESULTS_MAGIC):
        meta = {}  # comments of a plain CSV are not metadata
    return meta, df[["key", "latency_ms", "std_ms", "n"]]


def _is_runner_output(p: Path) -> bool:
    with as_error(ConfigError):
        return read_text(p, "results CSV", MAX_RESULTS_BYTES).startswith(RESULTS_MAGIC)


def _manifest_keys(results: Path) -> set[str] | None:
    m = results.parent / MANIFEST
    if not path_exists(m):
        return None
    with as_error(ConfigError):
        data = read_json(m, "bundle manifest")
    if not isinstance(data, dict) or data.get("format") != BUNDLE_FORMAT:
        return None
    entries = data.get("entries", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) and isinstance(e.get("key"), str) for e in entries):
        raise ConfigError(f"{m}: malformed bundle manifest (entries must be a list of {{key, file, …}} objects)")
    return {e["key"] for e in entries}


def import_results(
    device: Device,
    results: str | Path,
    tables_dir: Path | None = None,
    cache_mib: float | None = None,
) -> tuple[Path, LatencyTable]:
    """Import device measurements into ``device``'s table (source ``imported``), replacing the user's:
    a results CSV, or a TFLite bundle folder whose ``logs/`` hold ``benchmark_model``'s output."""
    from nas.latency._bundle_tflite import is_tflite_bundle, read_benchmark_logs

    p = Path(results)
    if is_tflite_bundle(p):
        meta_in, df = read_benchmark_logs(p)
    else:
        meta_in, df = read_results(p, _manifest_keys(p))
    call_ms = 0.0
    if CALL_PROBE_KEY in set(df["key"]):
        call_ms = float(df.loc[df["key"] == CALL_PROBE_KEY, "latency_ms"].iloc[0])
        df = df[df["key"] != CALL_PROBE_KEY]
    bad = [k for k in df["key"] if unsupported_in(device, key_features(k))]
    if bad:
        raise ConfigError(f"{p}: target {device.name} cannot run {bad[0]!r} ({', '.join(device.unsupported)})")
    rows = [make_row(r.key, device.dtype, r.latency_ms, r.std_ms, r.n) for r in df.itertuples(index=False)]
    layer_rows = [r for r in rows if r["kind"] != "model"]
    if not layer_rows:
        raise ConfigError(f"{p}: no layer entries (only whole models); use `latency import --from-models` instead")
    meta = {
        "target": device.name,
        "source": "imported",
        "runtime": meta_in.get("runtime", f"{device.runtime} (plain CSV import)"),
        "dtype": device.dtype,
        "created": utc_timestamp(),
        "call_ms": f"{call_ms:.6g}",
        "note": f"imported from {p.name}" + (f" measured on {meta_in['device']}" if "device" in meta_in else ""),
    }
    for k in ("threads", "runs", "sessions", "warmup", "flush_mib"):
        if k in meta_in:
            meta[k] = meta_in[k]
    table = new_table(meta, rows)
    # Whole-model rows calibrate the per-inference overhead; no cache term unless a cache size is given.
    cal = calibrate(table, math.inf if cache_mib is None else cache_mib)
    table.meta.update(cal.meta())
    if cal.n_models:
        table.meta["note"] += f"; {cal.note()}"
    if cache_mib is not None:
        table.meta["cache_mib"] = f"{cache_mib:g}"
    table = LatencyTable(table.meta, table.df)
    path = write_table(table, write_dir(tables_dir) / table_file(device.name))
    return path, table


def read_model_latencies(
    path: str | Path, resolve: Callable[[str], tuple[ArchSpec, str]] | None = None
) -> list[tuple[str, ArchSpec, float]]:
    """A CSV ``model_or_spec,latency_ms`` → ``(label, arch, ms)``; each spec resolved by ``resolve``. Also
    the whole models of a bundle's results: a TFLite bundle folder (its ``benchmark_model`` logs) or an
    ONNX bundle runner's results CSV (what ``search --verify`` writes for a device target). ``resolve``
    defaults to :func:`nas.zoo.resolve` (zoo name, arch string or spec file)."""
    from nas.latency._bundle_tflite import is_tflite_bundle, read_benchmark_logs
    from nas.zoo import resolve as zoo_resolve

    p = Path(path)
    if is_tflite_bundle(p) or (path_exists(p) and p.is_file() and _is_runner_output(p)):
        _, df = read_benchmark_logs(p) if p.is_dir() else read_results(p, _manifest_keys(p))
        from nas.spec import parse_arch

        return [("arch", parse_arch(k), float(ms)) for k, ms in zip(df["key"], df["latency_ms"]) if is_model_key(k)]
    with as_error(ConfigError):
        text = read_text(p, "model latencies CSV")
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    df = read_csv_text(body, str(p))
    df.columns = [str(c).strip() for c in df.columns]
    name_col = next((c for c in ("model_or_spec", "model", "spec") if c in df.columns), None)
    if name_col is None or "latency_ms" not in df.columns:
        raise ConfigError(f"{p}: expected columns model_or_spec,latency_ms")
    out = []
    for _, row in df.iterrows():
        label = str(row[name_col]).strip()
        shown = label if len(label) <= 80 else f"{label[:60]}…"
        ms = float(pd.to_numeric(row["latency_ms"], errors="coerce"))  # "2" is numpy's int64, not a float
        if not (math.isfinite(ms) and ms > 0):
            raise ConfigError(
                f"{p}: latency_ms of {shown!r} must be a positive number (got {str(row['latency_ms'])[:40]!r})"
            )
        try:
            arch, name = (resolve or zoo_resolve)(label)
        except NasError as exc:
            raise ConfigError(f"{p}: {shown!r}: {exc}") from None
        out.append((name, arch, float(ms)))
    if len({a.arch for _, a, _ in out}) != len(out):
        raise ConfigError(f"{p}: the same architecture is listed twice")
    return out


__all__ = [
    "CALL_PROBE_KEY",
    "BundleResult",
    "import_results",
    "make_bundle",
    "quantize_int8",
    "read_model_latencies",
    "read_results",
]
