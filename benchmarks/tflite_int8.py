"""The ``host-cpu-tflite-int8`` table (LiteRT XNNPACK INT8 on this machine): validation end to end, and how
its relative block costs compare with the paper's INT8 phone CPU and with this machine's FP32 onnxruntime.

1. N random architectures of the table's spaces converted whole to INT8 ``.tflite`` and timed in LiteRT
   (1 thread), against the table's prediction: within ±10%, MAPE, Kendall τ (goal as for host-cpu:
   >= 95% within ±10%, τ >= 0.9 on a quiet machine).
2. Relative block costs, measured: over the layer entries the INT8 table shares with ``pixel6-cpu``'s
   (the roofline model fitted to the paper's published Pixel 6 INT8 latencies) and with ``host-cpu``'s
   FP32 table, Kendall τ of the entry latencies and, per block kind, the median share of a block in a
   Conv-S model's total — does the host INT8 table rank blocks like the paper's INT8 CPU?

Needs the tflite extra. Usage: ``python benchmarks/tflite_int8.py [--table CSV] [--archs 40] [--seed 11]``
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from nas.latency import Predictor, TimingConfig, load_predictor, load_table, read_table, sample_archs, validate_host


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"


def block_kind(row: pd.Series) -> str:
    """A coarse class of a layer: its kind and, for UIBs, which depthwise convs it has."""
    if row["kind"] == "uir":
        return f"uib dw({row['start_dw_kernel'] > 0:d},{row['mid_dw_kernel'] > 0:d})"
    return str(row["kind"])


def compare_costs(int8: Predictor) -> dict[str, object]:
    """Kendall τ of entry latencies against pixel6-cpu and host-cpu, and per-kind cost shares."""
    others = {t: load_predictor(t).table for t in ("pixel6-cpu", "host-cpu")}
    mine = int8.table
    keys = [k for k in mine.entry_ms if all(k in o.entry_ms for o in others.values())]
    out: dict[str, object] = {"shared_entries": len(keys)}
    a = np.array([mine.entry_ms[k] for k in keys])
    for t, o in others.items():
        b = np.array([o.entry_ms[k] for k in keys])
        out[f"tau_vs_{t}"] = float(kendalltau(a, b).statistic)
        out[f"median_ratio_int8_over_{t}"] = float(np.median(a / b))
    df = mine.blocks.loc[keys].copy()
    df["class"] = df.apply(block_kind, axis=1)
    rows = []
    for cls, g in df.groupby("class"):
        ks = list(g.index)
        shares = {
            name: float(np.median([t.entry_ms[k] for k in ks]) / np.median([t.entry_ms[k] for k in keys]))
            for name, t in (("host-int8", mine), *others.items())
        }
        rows.append({"class": cls, "n": len(ks), **shares})
    out["relative_cost_by_class"] = rows
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", help="a host-cpu-tflite-int8 table (default: yours merged over the shipped one)")
    ap.add_argument("--archs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument(
        "--guard", type=float, default=1.15, help="load guard tolerance (0 = off, as the table was profiled)"
    )
    ap.add_argument("--out", default="results/bench-tflite-int8")
    args = ap.parse_args()
    table = read_table(args.table) if args.table else load_table("host-cpu-tflite-int8")
    pred = Predictor(table)
    out = Path(args.out)
    print(
        f"table {table.path} ({len(table)} entries, {table.meta.get('runtime')}; made on {table.meta.get('machine')})"
    )
    costs = compare_costs(pred)
    print(
        f"\nrelative block costs on {costs['shared_entries']} shared entries: Kendall τ vs pixel6-cpu "
        f"{costs['tau_vs_pixel6-cpu']:.3f}, vs host-cpu FP32 {costs['tau_vs_host-cpu']:.3f}"
    )
    print(pd.DataFrame(costs["relative_cost_by_class"]).round(3).to_string(index=False))
    summary: dict[str, object] = {"costs": costs}
    if args.archs:
        archs = sample_archs(table.spaces, args.archs, args.seed)
        print(f"\nvalidating on {len(archs)} architectures of {', '.join(table.spaces)} ({load()})", flush=True)
        threads = int(table.meta.get("threads", "1") or 1)
        cfg = TimingConfig(threads=threads, guard=args.guard)
        report = validate_host(pred, archs, cfg, out / "validate")
        s = report.summary
        print(
            f"within ±10% {s['within_10pct']:.1%}, ±5% {s['within_5pct']:.1%}, MAPE {s['mape']:.2f}%, τ "
            f"{s['kendall_tau']:.3f} (n={s['n']}, {s['n_disturbed']} flagged by the guard; {load()})"
        )
        summary["validation"] = s
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"wrote {out / 'summary.json'}")


if __name__ == "__main__":
    main()
