"""Two-stage (coarse → fine) vs one-stage search at equal trial count, over several seeds.

Usage: ``python benchmarks/search_stages.py [--target pixel8-edgetpu --budget 2.4ms --space mnv4-conv-large]
[--trials 100] [--seeds 0 1 2] [--estimator zen]``. Prints the best score within the budget per seed and
the mean, for both modes.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from nas.search import SearchSettings, run_search


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--target", default="pixel8-edgetpu")
    ap.add_argument("--budget", default="2.4ms")
    ap.add_argument("--space", default="mnv4-conv-large")
    ap.add_argument("--estimator", default="zen")
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    n_coarse = round(args.trials * 0.4)
    results: dict[str, list[float]] = {"two-stage": [], "one-stage": []}
    print(f"{args.space} on {args.target} within {args.budget}, {args.trials} trials, estimator {args.estimator}")
    for seed in args.seeds:
        for mode in results:
            with tempfile.TemporaryDirectory() as d:
                out = run_search(
                    SearchSettings(
                        targets=[args.target],
                        budgets=[args.budget],
                        space=args.space,
                        estimator=args.estimator,
                        one_stage=mode == "one-stage",
                        trials=args.trials,
                        coarse_trials=n_coarse,
                        fine_trials=args.trials - n_coarse,
                        seed=seed,
                        out=Path(d) / "run",
                        references=False,
                    )
                )
            results[mode].append(out.best_score)
            print(f"seed {seed}  {mode:9s}  best {out.best_score:9.3f}  at {out.best_latency_ms[args.target]:.3f} ms")
    for mode, scores in results.items():
        print(f"{mode:9s} mean {statistics.mean(scores):9.3f}  per seed {', '.join(f'{s:.3f}' for s in scores)}")


if __name__ == "__main__":
    main()
