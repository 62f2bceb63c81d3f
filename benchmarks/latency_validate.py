"""Host-CPU latency validation: N random architectures of the profiled spaces, each exported and timed
end-to-end in onnxruntime, against the host-cpu table's prediction.

Goal: >= 95% within ±10% and Kendall τ >= 0.9 (nn-Meter reaches 99% within ±10% on phone CPUs).
Prints the figures of the full predictor and of ablations — without the cache term, without the
context scale, the plain block sum — so the table shows what each term buys, then the signed
error by weight footprint (the cache effect) and by size. Needs a profiled table
(``mnv4-nas latency profile --target host-cpu --space S``). Run it on a quiet machine, 1 thread.
Usage: ``python benchmarks/latency_validate.py [--archs 200] [--space mnv4-conv-small] [--seed 0]``;
``--rescore DIR`` re-predicts an earlier report's architectures with the current table (after a
recalibration) without measuring again.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from nas.latency import TimingConfig, load_predictor, sample_archs, summarize, validate_host

GOAL_WITHIN_10 = 0.95
GOAL_TAU = 0.9


def rescore(pred: object, df: pd.DataFrame) -> pd.DataFrame:
    """Predictions of the current table for the architectures of an earlier report (measurements kept)."""
    from nas.spec import arch_keys, parse_arch

    table = pred.table  # type: ignore[attr-defined]
    out = df.copy()
    for i, arch in enumerate(out["arch"]):
        keys = arch_keys(parse_arch(arch))
        ms, _ = pred.predict_keys(keys)  # type: ignore[attr-defined]
        raw = sum(table.raw_ms[k] for k in keys)
        weights = sum(table.weight_bytes[k] for k in keys)
        cache = float(table.cache_ms(float(weights)))
        out.loc[i, ["predicted_ms", "predicted_no_cache_ms", "predicted_no_scale_ms", "block_sum_ms"]] = [
            ms,
            ms - cache,
            ms - sum(table.entry_ms[k] for k in keys) + raw,
            raw,
        ]
    out["error_pct"] = (out["predicted_ms"] / out["measured_ms"] - 1) * 100
    return out


def print_report(df: pd.DataFrame) -> None:
    """Figures of the predictor and its ablations, then the signed error by footprint and by size."""
    m = df["measured_ms"].to_numpy()
    header = f"{'predictor':34s} {'±5%':>6s} {'±10%':>6s} {'MAPE %':>7s} {'bias %':>7s} {'tau':>6s}"
    print(header)
    print("-" * len(header))
    for label, col in (
        ("table (all terms)", "predicted_ms"),
        ("  without the cache term", "predicted_no_cache_ms"),
        ("  without the context scale", "predicted_no_scale_ms"),
        ("  plain block sum", "block_sum_ms"),
    ):
        p = df[col].to_numpy()
        s = summarize(p, m)
        bias = float(np.mean(p / m - 1) * 100)
        print(
            f"{label:34s} {s['within_5pct']:6.1%} {s['within_10pct']:6.1%} {s['mape']:7.2f} {bias:7.2f} "
            f"{s['kendall_tau']:6.3f}"
        )
    s = summarize(df["predicted_ms"].to_numpy(), m)
    ok = s["within_10pct"] >= GOAL_WITHIN_10 and s["kendall_tau"] >= GOAL_TAU
    print(f"goal (±10% >= {GOAL_WITHIN_10:.0%}, τ >= {GOAL_TAU}): {'met' if ok else 'NOT met'}")
    print("\nsigned error (%) by weight footprint and by measured latency:")
    df = df.copy()
    df["weights"] = pd.cut(
        df["weight_mib"], [0, 8, 16, 32, 64, 1e9], labels=["<8", "8-16", "16-32", "32-64", ">64 MiB"]
    )
    df["size"] = pd.qcut(df["measured_ms"], 4, labels=["fastest 25%", "2nd", "3rd", "slowest 25%"], duplicates="drop")
    for col in ("weights", "size"):
        g = df.groupby(col, observed=True)["error_pct"].agg(["count", "mean", "std"])
        print(g.round(2).to_string())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--archs", type=int, default=200)
    ap.add_argument("--space", action="append", default=[], help="default: the spaces the table was profiled for")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--sessions", type=int, default=3)
    ap.add_argument("--output", default="results", help="parent folder of the report folder")
    ap.add_argument("--rescore", metavar="DIR", help="re-predict an earlier report's architectures (no measuring)")
    args = ap.parse_args()
    pred = load_predictor("host-cpu")
    table = pred.table
    if args.rescore:
        df = rescore(pred, pd.read_csv(Path(args.rescore) / "report.csv"))
        print(f"re-scored {len(df)} architectures of {args.rescore} with the current host-cpu table")
        print_report(df)
        return
    spaces = args.space or table.spaces
    # Whole models are timed back to back, without flushing the caches: as deployed.
    cfg = TimingConfig(threads=int(table.meta.get("threads", "1")), runs=args.runs, sessions=args.sessions)
    archs = sample_archs(spaces, args.archs, args.seed)
    out = Path(args.output) / f"latency-validate-bench-{datetime.now():%Y%m%d-%H%M%S}"

    def progress(done: int, total: int, name: str) -> None:
        if done % 20 == 0 or done == total:
            print(f"  measured {done}/{total}", flush=True)

    print(f"host-cpu table: {len(table)} entries, {table.meta.get('runtime')}, threads {cfg.threads}")
    print(f"validating on {len(archs)} architectures of {', '.join(spaces)} (seed {args.seed}) → {out}")
    report = validate_host(pred, archs, cfg, out, progress=progress)
    print_report(report.rows)
    print(f"\nwrote {out / 'report.csv'}, {out / 'scatter.png'}, {out / 'summary.json'}")


if __name__ == "__main__":
    main()
