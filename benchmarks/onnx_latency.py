"""End-to-end onnxruntime latency of zoo models on this host (batch 1, CPU).

Median over several fresh sessions × many runs each, per thread count. Usage:

    python benchmarks/onnx_latency.py mnv4-conv-small --threads 1 2 --runs 60 --sessions 3
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from nas.export import export_onnx, ort_session
from nas.zoo import get_spec


def measure(path: Path, shape: tuple[int, ...], threads: int, runs: int, sessions: int, warmup: int = 10) -> np.ndarray:
    """Per-run latencies (ms) over ``sessions`` fresh sessions of ``runs`` timed runs each."""
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    times = []
    for _ in range(sessions):
        sess = ort_session(path, threads=threads)
        name = sess.get_inputs()[0].name
        for _ in range(warmup):
            sess.run(None, {name: x})
        for _ in range(runs):
            t0 = time.perf_counter()
            sess.run(None, {name: x})
            times.append((time.perf_counter() - t0) * 1e3)
    return np.asarray(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--sessions", type=int, default=3)
    args = ap.parse_args()
    print(f"{'model':22s} {'threads':>7s} {'median ms':>10s} {'p10':>8s} {'p90':>8s} {'n':>5s}")
    with tempfile.TemporaryDirectory() as d:
        for name in args.models:
            spec = get_spec(name)
            path = Path(d) / f"{name}.onnx"
            export_onnx(spec, path)
            for t in args.threads:
                ms = measure(path, (1, 3, spec.resolution, spec.resolution), t, args.runs, args.sessions)
                p10, p50, p90 = np.percentile(ms, [10, 50, 90])
                print(f"{name:22s} {t:7d} {p50:10.2f} {p10:8.2f} {p90:8.2f} {len(ms):5d}")


if __name__ == "__main__":
    main()
