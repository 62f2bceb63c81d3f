"""Latency predictions per second: the vectorised slot path on random encodings of each shipped search space.

Goal: >= 1,000,000 architectures/s on 2 cores. The lookup tables of a space are built once per
(predictor, space) — the first call, reported separately — then every call is a gather and a sum over slots. For
comparison, the key-lookup path on ArchSpecs (decode + per-layer dict lookups) on a subsample.
Usage: ``python benchmarks/latency_predict.py [--n 100000] [--target pixel8-edgetpu] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from nas.errors import NasError
from nas.latency import load_predictor
from nas.space import decode, list_spaces, load_space, sample_vectors

GOAL = 1_000_000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--target", default="pixel8-edgetpu")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--spec-sample", type=int, default=500, help="ArchSpecs timed on the key-lookup path")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"target {args.target}, {args.n:,} random architectures per space, best of {args.repeat}")
    header = f"{'space':20s} {'1st call s':>11s} {'predict s':>10s} {'archs/s':>13s} {'x goal':>7s} {'specs/s':>9s} {'agree':>6s}"
    print(header)
    print("-" * len(header))
    rates = []
    for name in list_spaces():
        space = load_space(name)
        if args.target == "pixel4-dsp" and "hybrid" in name:
            continue
        vecs = sample_vectors(space, rng, args.n)
        pred = load_predictor(args.target)
        t0 = time.perf_counter()
        try:
            pred.predict_encoded(space, vecs)  # builds the lookup tables (and checks every key is there)
        except NasError as exc:
            print(f"{name:20s} skipped: {str(exc)[:90]}")
            continue
        build = time.perf_counter() - t0
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            fast = pred.predict_encoded(space, vecs).latency_ms
            best = min(best, time.perf_counter() - t0)
        k = args.spec_sample
        archs = [decode(space, v) for v in vecs[:k]]
        t0 = time.perf_counter()
        slow = pred.predict_archs(archs).latency_ms
        spec_rate = k / (time.perf_counter() - t0)
        agree = bool(np.allclose(fast[:k], slow, rtol=1e-9))
        rate = args.n / best
        rates.append(rate)
        print(
            f"{name:20s} {build:11.2f} {best:10.4f} {rate:13,.0f} {rate / GOAL:7.1f} {spec_rate:9,.0f} {str(agree):>6s}"
        )
    print("-" * len(header))
    if not rates:
        return
    print(f"{'min over spaces':20s} {'':11s} {'':10s} {min(rates):13,.0f} {min(rates) / GOAL:7.1f}")


if __name__ == "__main__":
    main()
