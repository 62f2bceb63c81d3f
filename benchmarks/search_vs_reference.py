""" "Beat MNv4 at its own budget": for each reference model and target, search that model's space with
budget = the model's predicted latency there, and compare the best score found with the model's own
(same estimator, same latency tables).

Usage: ``python benchmarks/search_vs_reference.py [--coarse-trials 40 --fine-trials 60] [--estimator zen]
[--models …] [--targets …] [--csv results/bench-vs-reference.csv]``. Rows already in the CSV are skipped,
so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

from nas.errors import NasError
from nas.latency import load_predictor
from nas.search import SearchSettings, run_search
from nas.space import list_spaces, load_space
from nas.supernet import make_estimator
from nas.zoo import get_spec

PAPER_TARGETS = ["pixel6-cpu", "s23-cpu", "pixel4-dsp", "pixel7-gpu", "s23-gpu", "iphone13-ane", "pixel8-edgetpu"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", nargs="+", default=[s for s in list_spaces() if load_space(s).reference])
    ap.add_argument("--targets", nargs="+", default=PAPER_TARGETS)
    ap.add_argument("--estimator", default="zen")
    ap.add_argument("--coarse-trials", type=int, default=40)
    ap.add_argument("--fine-trials", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--csv", type=Path, default=Path("results/bench-vs-reference.csv"))
    args = ap.parse_args()
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    done = pd.read_csv(args.csv) if args.csv.exists() else pd.DataFrame()
    rows = done.to_dict("records")
    est = make_estimator(args.estimator)
    for space_name in args.models:
        ref_name = load_space(space_name).reference
        ref = get_spec(ref_name)
        ref_score = float(est.score([ref])[0])
        for target in args.targets:
            if any(r["space"] == space_name and r["target"] == target for r in rows):
                continue
            try:
                budget = float(load_predictor(target).predict_archs([ref]).latency_ms[0])
            except NasError as exc:
                print(f"{space_name:20s} {target:15s} skipped: {str(exc)[:70]}")
                continue
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory() as d:
                out = run_search(
                    SearchSettings(
                        targets=[target],
                        budgets=[f"{budget:.6f}ms"],
                        space=space_name,
                        estimator=args.estimator,
                        coarse_trials=args.coarse_trials,
                        fine_trials=args.fine_trials,
                        seed=args.seed,
                        out=Path(d) / "run",
                        references=False,
                    )
                )
            row = {
                "space": space_name,
                "reference": ref_name,
                "target": target,
                "budget_ms": budget,
                "reference_score": ref_score,
                "found_score": out.best_score,
                "found_latency_ms": out.best_latency_ms[target],
                "beats_reference": out.best_score >= ref_score,
                "seconds": time.perf_counter() - t0,
                "found_arch": out.best.arch,
            }
            rows.append(row)
            pd.DataFrame(rows).to_csv(args.csv, index=False)
            print(
                f"{space_name:20s} {target:15s} budget {budget:8.3f} ms  ref {ref_score:9.3f}  found {out.best_score:9.3f} "
                f"at {row['found_latency_ms']:8.3f} ms  {'BEATS' if row['beats_reference'] else 'below'}  ({row['seconds']:.0f} s)"
            )
    df = pd.DataFrame(rows)
    if not df.empty:
        print(
            f"\nbeats or matches the reference in {int(df['beats_reference'].sum())}/{len(df)} (space, target) pairs; "
            f"all found architectures within budget: {bool((df['found_latency_ms'] <= df['budget_ms'] + 1e-9).all())}"
        )
        print(df.pivot(index="space", columns="target", values="beats_reference").to_string())


if __name__ == "__main__":
    main()
