#!/usr/bin/env python3
"""Time every ONNX file of an mnv4-nas latency bundle on this device with onnxruntime.

Copied into each bundle as ``run_bundle.py``; needs only ``numpy`` and ``onnxruntime`` (on Android,
e.g. Termux + an onnxruntime wheel with NNAPI; on macOS/iOS dev boards, onnxruntime with CoreML).

    python run_bundle.py --ep cpu|nnapi|coreml|xnnpack|qnn [--threads 1] [--runs 100] [--output results.csv]

Each entry of ``manifest.json`` runs at batch 1: ``--warmup`` untimed runs, then ``--runs`` timed
runs in each of ``--sessions`` fresh sessions; the result is the smallest session median (background
activity only adds time).
Results are appended to the output CSV as they finish, so an interrupted run resumes where it
stopped. Bring the CSV back and run ``mnv4-nas latency import --target NAME results.csv``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

RESULTS_MAGIC = "# mnv4-nas bundle results"
BUNDLE_FORMAT = "mnv4-nas/latency-bundle-v1"
EXECUTION_PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "nnapi": "NnapiExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "xnnpack": "XnnpackExecutionProvider",
    "qnn": "QNNExecutionProvider",
}
DEFAULT_EP_OPTIONS = {"coreml": {"ModelFormat": "MLProgram", "MLComputeUnits": "ALL"}}


def make_session(path: Path, ep: str, threads: int, ep_options: dict[str, str]):
    """An onnxruntime session on execution provider ``ep`` (CPU as the fallback for unsupported nodes)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    so.add_session_config_entry("session.set_denormal_as_zero", "1")
    providers: list = ["CPUExecutionProvider"]
    if ep != "cpu":
        opts = {**DEFAULT_EP_OPTIONS.get(ep, {}), **ep_options}
        providers.insert(0, (EXECUTION_PROVIDERS[ep], opts))
    return ort.InferenceSession(str(path), so, providers=providers)


def time_file(
    path: Path, shape: list[int], args: argparse.Namespace, ep_options: dict[str, str], flush: bool
) -> tuple[float, float, int]:
    """(median ms, std ms, timed runs) of one graph."""
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    # Single layers run after evicting the caches (as inside a model); whole models back to back.
    lines = np.zeros(int(args.flush_mib * 2**20) // 64 if flush else 0, dtype=np.int64).reshape(-1, 1)
    medians, samples = [], []
    for _ in range(args.sessions):
        sess = make_session(path, args.ep, args.threads, ep_options)
        feed = {sess.get_inputs()[0].name: x}
        for _ in range(args.warmup):
            sess.run(None, feed)
        t = np.empty(args.runs)
        for i in range(args.runs):
            if len(lines):
                lines += 1  # one write per 64-byte cache line
            t0 = time.perf_counter()
            sess.run(None, feed)
            t[i] = (time.perf_counter() - t0) * 1e3
        medians.append(float(np.median(t)))
        samples.append(t)
    allt = np.concatenate(samples)
    return float(np.min(medians)), float(np.std(allt)), int(allt.size)  # least disturbed session


def _done_keys(out: Path) -> set[str]:
    if not out.exists():
        return set()
    data = out.read_bytes()
    if data and not data.endswith(b"\n"):  # a line cut short by a kill: drop it
        with open(out, "rb+") as fh:
            fh.truncate(data.rfind(b"\n") + 1)
    rows = [line for line in out.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    return {r[0] for r in csv.reader(rows[1:])} if rows else set()


def main(argv: list[str] | None = None) -> int:
    """Run the bundle in this script's folder (or ``--bundle DIR``)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=str(Path(__file__).resolve().parent), help="bundle folder (default: here)")
    ap.add_argument("--ep", choices=sorted(EXECUTION_PROVIDERS), default="cpu", help="execution provider")
    ap.add_argument("--ep-option", action="append", default=[], metavar="KEY=VALUE", help="provider option")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--sessions", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--flush-mib", type=float, default=4.0, help="memory written before each run of a layer")
    ap.add_argument("--output", default=None, help="results CSV (default: <bundle>/results-<ep>.csv)")
    ap.add_argument("--limit", type=int, default=0, help="time at most this many entries (0 = all)")
    args = ap.parse_args(argv)
    bundle = Path(args.bundle)
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    if manifest.get("format") != BUNDLE_FORMAT:
        print(f"error: {bundle / 'manifest.json'} is not an mnv4-nas bundle manifest", file=sys.stderr)
        return 2
    ep_options = dict(opt.split("=", 1) for opt in args.ep_option)
    out = Path(args.output) if args.output else bundle / f"results-{args.ep}.csv"
    done = _done_keys(out)
    if not done:
        import onnxruntime as ort

        meta = {
            "target": manifest["target"],
            "dtype": manifest.get("dtype", ""),
            "runtime": f"onnxruntime {ort.__version__} ({EXECUTION_PROVIDERS[args.ep]})",
            "threads": args.threads,
            "runs": args.runs,
            "sessions": args.sessions,
            "warmup": args.warmup,
            "flush_mib": args.flush_mib,
            "device": f"{platform.system()} {platform.machine()} {platform.node()}",
            "created": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),  # noqa: UP017 - py3.8 devices
        }
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(RESULTS_MAGIC + "\n" + "".join(f"# {k}: {v}\n" for k, v in meta.items()))
            fh.write("key,latency_ms,std_ms,n\n")
    entries = [e for e in manifest["entries"] if e["key"] not in done]
    if args.limit:
        entries = entries[: args.limit]
    total = len(entries)
    t_start = time.time()
    with open(out, "a", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        for i, e in enumerate(entries):
            ms, std, n = time_file(bundle / e["file"], e["input_shape"], args, ep_options, e.get("kind") == "layer")
            writer.writerow([e["key"], f"{ms:.6g}", f"{std:.6g}", n])
            fh.flush()
            os.fsync(fh.fileno())
            eta = (time.time() - t_start) / (i + 1) * (total - i - 1)
            print(f"[{i + 1}/{total}] {ms:9.3f} ms  {e['key'][:70]}  (ETA {eta:5.0f} s)", flush=True)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
