"""A host table on a machine it was not made on: validation before and after calibration, and under load
with and without the load guard.

1. The shipped (or ``--table``) host table, validated here on N random architectures of its spaces
   (measured end to end once; the same measurements scored with the table as shipped and as calibrated).
2. ``latency calibrate``'s work (reference models timed here, the scale fitted): its wall time.
3. The calibrated table validated again while a second process keeps the other core busy
   (``--load-archs`` architectures): once with the guard off (every measurement kept), once with the
   guard on (seeded with the quiet reference time of step 1: disturbed measurements flagged and left out).

Goals (benchmark, not a test): after calibration >= 95% within ±10% and τ >= 0.9 on a quiet machine;
calibration <= 30 s. Prints the load average before and after each step (the figures mean little on a
busy machine: say so with them). Calibrations go to a temporary tables folder, never the user's.
Usage: ``python benchmarks/host_calibration.py [--target host-cpu] [--archs 40] [--load-archs 40] [--seed 11]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from nas.latency import (
    Predictor,
    TimingConfig,
    ensure_calibration,
    interference_guard,
    load_predictor,
    read_table,
    sample_archs,
    summarize,
    table_paths,
    validate_host,
)
from nas.spec import arch_keys, parse_arch

GOAL_WITHIN_10, GOAL_TAU, GOAL_CAL_S = 0.95, 0.9, 30.0


def load() -> str:
    """The 1-minute load average and the core count."""
    return f"load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"


def figures(label: str, predicted: np.ndarray, measured: np.ndarray, extra: str = "") -> dict[str, object]:
    s = summarize(predicted, measured)
    ratio = float(np.median(predicted / measured)) if len(measured) else float("nan")
    print(
        f"{label:44s} n={s['n']:3d}  ±10% {s['within_10pct']:6.1%}  ±5% {s['within_5pct']:6.1%}  "
        f"MAPE {s['mape']:6.2f}%  τ {s['kendall_tau']:6.3f}  pred/meas {ratio:5.2f} {extra}",
        flush=True,
    )
    return {"label": label, **s, "median_pred_over_meas": ratio, "note": extra}


def rescored(predictor: Predictor, rows: pd.DataFrame) -> np.ndarray:
    """The predictor's latency for each architecture of a report."""
    return np.array([predictor.predict_keys(arch_keys(parse_arch(a)))[0] for a in rows["arch"]])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", default="host-cpu")
    ap.add_argument("--table", help="the host table to validate (default: the shipped one)")
    ap.add_argument("--archs", type=int, default=40)
    ap.add_argument("--load-archs", type=int, default=40, help="architectures validated under load (0 = skip)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--out", default="results/bench-host-calibration")
    args = ap.parse_args()
    out = Path(args.out)
    work = Path(tempfile.mkdtemp(prefix="bench-host-calibration-"))
    os.environ["MNV4NAS_TABLES"] = str(work / "tables")  # calibrations land here, not in the user's folder
    (work / "tables").mkdir(parents=True)
    if args.table:  # a table of the user's folder (another machine's copy of it: pass --table)
        src = work / "tables" / f"{args.target}.csv"
        src.write_bytes(Path(args.table).read_bytes())
    else:
        src = table_paths(args.target, work / "tables")[0]
    table = read_table(src)
    before = Predictor(table)
    threads = int(table.meta.get("threads", "1") or 1)
    archs = sample_archs(table.spaces, args.archs, args.seed)
    results: dict[str, object] = {"table": str(src), "table_machine": table.meta.get("machine", "not recorded")}
    print(f"{args.target} table {src} ({len(table)} entries; made on: {results['table_machine']})")

    print(f"\n1. calibration ({load()})", flush=True)
    t0 = time.perf_counter()
    runs = ensure_calibration(args.target, work / "tables", force=True, only=src)
    wall = time.perf_counter() - t0
    cal = runs[0].calibration
    print(
        f"   {cal.note()}; {wall:.1f} s wall ({load()}); goal <= {GOAL_CAL_S:g} s: {'met' if wall <= GOAL_CAL_S else 'NOT met'}"
    )
    results["calibration"] = {"wall_s": wall, **cal.__dict__}
    after = Predictor(load_predictor(args.target, work / "tables").table)

    print(f"\n2. validation on {len(archs)} architectures of {', '.join(table.spaces)} ({load()})", flush=True)
    cfg = TimingConfig(threads=threads)
    quiet = validate_host(after, archs, cfg, out / "quiet")
    rows = quiet.rows[~quiet.rows["disturbed"]]
    m = rows["measured_ms"].to_numpy()
    results["quiet"] = [
        figures("as shipped (another machine's scale)", rescored(before, rows), m),
        figures("calibrated to this machine", rows["predicted_ms"].to_numpy(), m),
    ]
    results["quiet_disturbed"] = int(quiet.summary["n_disturbed"])
    results["quiet_load"] = load()
    print(f"   {quiet.summary['n_disturbed']} measurements flagged by the guard and left out ({load()})")
    ok = quiet.summary["within_10pct"] >= GOAL_WITHIN_10 and quiet.summary["kendall_tau"] >= GOAL_TAU
    print(f"   goal after calibration (±10% >= {GOAL_WITHIN_10:.0%}, τ >= {GOAL_TAU}): {'met' if ok else 'NOT met'}")

    if args.load_archs:
        quiet_ref = interference_guard(cfg).best if interference_guard(cfg) else float("nan")
        loaded = archs[: args.load_archs]
        loader = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(1.0)
            print(
                f"\n3. under load: a second process spinning ({load()}; quiet reference {quiet_ref:.3f} ms)", flush=True
            )
            off = validate_host(after, loaded, TimingConfig(threads=threads, guard=0), out / "load-no-guard")
            on_cfg = TimingConfig(threads=threads)
            interference_guard(on_cfg).seed(quiet_ref)  # type: ignore[union-attr]
            on = validate_host(after, loaded, on_cfg, out / "load-guard")
        finally:
            loader.kill()
            loader.wait()
        keep = on.rows[~on.rows["disturbed"]]
        results["load"] = [
            figures(
                "load, guard off (all kept)", off.rows["predicted_ms"].to_numpy(), off.rows["measured_ms"].to_numpy()
            ),
            figures(
                "load, guard on (flagged ones left out)",
                keep["predicted_ms"].to_numpy(),
                keep["measured_ms"].to_numpy(),
                f"{int(on.summary['n_disturbed'])} of {len(on.rows)} flagged",
            ),
        ]
        results["load_retimed_sessions"] = int(on.rows["retimed_sessions"].sum())
        print(f"   guard on: {int(on.rows['retimed_sessions'].sum())} sessions re-timed ({load()})")
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nwrote {out / 'summary.json'} and the reports under {out}")


if __name__ == "__main__":
    main()
