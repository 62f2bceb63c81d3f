"""Score finished ranking-benchmark runs against a truth averaged over more stand-alone seeds.

``supernet_ranking.py`` writes every estimator's score per architecture to ``OUT/ranking.csv`` and
caches every stand-alone training in ``OUT/standalone.jsonl`` (keyed by arch, seed and budget). When
that cache has since gained seeds (a later ``supernet_ranking.py --standalone-seeds K`` on the same
archs, or its ``--standalone-only`` step), this script re-ranks the recorded estimator scores of each
run against the mean of the first ``--seeds`` seeds, without retraining or rescoring anything: the
scores do not depend on the truth, only τ does. It refuses a run whose cache lacks a seed for an
arch, or holds it with another budget than the run's own. ``--standalone FILE`` reads the
stand-alone results from one cache shared by several runs of the same archs instead of each run's
own (the seeds are trained once, in one folder, and every run is re-ranked against them).

    python benchmarks/supernet_ranking.py --phase coarse ... --standalone-seeds 4 --standalone-only --out SEEDS
    python benchmarks/ranking_truth.py --seeds 4 --standalone SEEDS/standalone.jsonl \
        benchmarks/results/supernet_ranking/coarse-d2000-test10k*

Prints one table per run and writes ``RUN/summary-<K>seeds.json`` next to the run's ``summary.json``:
Kendall τ / Spearman ρ of every estimator column against the K-seed mean, the seed-vs-seed and
half-vs-half noise ceilings and the simulated perfect-estimator ceiling for that truth, with the seed
noise pooled over the archs and with each arch's own.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
from ranking import corr, draw_summary, half_vs_half, perfect_ceiling, read_lines, seed_noise, seed_vs_seed
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from scipy import stats

console = Console(highlight=False)

# ranking.csv columns that are not an estimator's score (the truth, or a duplicate of log10_params)
_NOT_SCORES = {"arch", "standalone_acc", "params"}


def stand_alone_truth(run: Path, archs: list[str], n_seeds: int, cache: Path) -> tuple[np.ndarray, list[int], str]:
    """Per-seed stand-alone accuracies (seeds × archs) from ``cache``, the seeds, the metric."""
    summary = json.loads((run / "summary.json").read_text())
    metric = "test_acc" if "fresh test" in summary.get("scored_on", "") else "val_acc"
    done = read_lines(cache)
    first = summary["standalone"].get("seeds", [0])[0]
    seeds = [first + k for k in range(n_seeds)]
    # the run's own budget (its first training) without the seed: every seed must match it
    ref = done.get((archs[0], first), {}).get("budget", {"missing": True})
    budget = {k: v for k, v in ref.items() if k != "seed"}
    rows, missing = [], []
    for sd in seeds:
        row = []
        for s in archs:
            hit = done.get((s, sd))
            if hit is None or {k: v for k, v in hit["budget"].items() if k != "seed"} != budget:
                missing.append(sd)
                continue
            row.append(hit[metric])
        rows.append(row)
    if missing:
        raise SystemExit(
            f"--seeds: {cache} lacks {len(missing)} of the {len(seeds) * len(archs)} "
            f"trainings (seeds {sorted(set(missing))}) with the run's budget; add them with "
            f"supernet_ranking.py --standalone-only --standalone-seeds {n_seeds}"
        )
    return np.asarray(rows, dtype=float), seeds, metric


def _own_noise_ceiling(per_seed: np.ndarray, seed: int, draws: int = 2000) -> dict:
    """Perfect-estimator ceiling when every arch keeps its own seed noise rather than the pooled one.

    ``perfect_ceiling`` draws the noise from the mean within-arch variance; on data where a few archs
    (typically the weakest) carry most of the seed noise, that understates what an exact estimator
    reaches. Here the expected accuracies are the observed means shrunk toward their mean by the
    share of their variance that is signal, each arch's K-seed mean is simulated with that arch's own
    variance / K, and the same simulation with the pooled variance is reported beside it, so the two
    differ only in how the noise is spread over the archs."""
    n_seeds = per_seed.shape[0]
    means = per_seed.mean(0)
    var, pooled, signal = seed_noise(per_seed)
    total = float(np.var(means, ddof=1))
    expected = means.mean() + (means - means.mean()) * np.sqrt(signal / max(total, 1e-12))
    out: dict = {}
    for name, noise in (("own", var), ("pooled", np.full_like(var, pooled))):
        rng = np.random.default_rng(seed)
        seen = expected + rng.normal(0.0, 1.0, (draws, len(var))) * np.sqrt(noise / n_seeds)
        out[name] = draw_summary(*zip(*(corr(expected, o) for o in seen), strict=True))
    out["seed_noise_sd_points_min_max"] = [float(100 * np.sqrt(var.min())), float(100 * np.sqrt(var.max()))]
    return out


def rescore(run: Path, n_seeds: int, cache: Path | None = None) -> dict:
    """τ / ρ of every estimator column of ``run/ranking.csv`` against the ``n_seeds``-seed mean of the
    stand-alone results in ``cache`` (default: the run's own ``standalone.jsonl``)."""
    cache = cache or run / "standalone.jsonl"
    with open(run / "ranking.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    archs = [r["arch"] for r in rows]
    per_seed, seeds, metric = stand_alone_truth(run, archs, n_seeds, cache)
    truth = per_seed.mean(axis=0)
    columns = [c for c in rows[0] if c not in _NOT_SCORES and not c.startswith("standalone_acc_seed")]
    scores = {c: np.asarray([float(r[c]) for r in rows]) for c in columns}
    results = {c: corr(v, truth) for c, v in scores.items()}
    for c in [c for c in columns if c.startswith("supernet_acc")]:  # as supernet_ranking.py reports it
        results[f"{c} + MACs (mean rank)"] = corr(stats.rankdata(scores[c]) + stats.rankdata(scores["macs"]), truth)
    results["stand-alone, seed vs seed"] = seed_vs_seed(per_seed)
    if n_seeds >= 4:
        results["stand-alone, half vs half"] = half_vs_half(per_seed)
    ceiling = perfect_ceiling(per_seed, seeds[0])
    results[f"perfect estimator vs the {n_seeds}-seed mean (simulated)"] = (ceiling["tau"], ceiling["rho"])
    own = _own_noise_ceiling(per_seed, seeds[0])
    results["the same, each arch with its own seed noise (simulated)"] = (own["own"]["tau"], own["own"]["rho"])
    return {
        "run": str(run),
        "truth": {
            "standalone": str(cache),
            "seeds": seeds,
            "metric": metric,
            "acc_min": float(truth.min()),
            "acc_max": float(truth.max()),
            "spread_points": float(100 * (truth.max() - truth.min())),
        },
        "perfect_estimator_ceiling": ceiling,
        "perfect_estimator_ceiling_own_noise": own,
        "kendall_tau": {k: v[0] for k, v in results.items()},
        "spearman_rho": {k: v[1] for k, v in results.items()},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("runs", nargs="+", type=Path, help="result folders of supernet_ranking.py")
    p.add_argument("--seeds", type=int, required=True, help="seeds in the truth (the first K of each run's cache)")
    p.add_argument(
        "--standalone",
        type=Path,
        default=None,
        metavar="FILE",
        help="stand-alone cache (standalone.jsonl) to take the truth from for every run (default: each run's own)",
    )
    a = p.parse_args(argv)
    if a.seeds < 2:
        raise SystemExit("--seeds: at least 2 (the ceilings need two runs per arch)")
    if a.standalone is not None and not a.standalone.is_file():
        raise SystemExit(f"--standalone: {a.standalone} is not a file; give a standalone.jsonl of supernet_ranking.py")
    for run in a.runs:
        for name in ("ranking.csv", "summary.json") + (("standalone.jsonl",) if a.standalone is None else ()):
            if not (run / name).is_file():
                raise SystemExit(f"runs: {run} has no {name}; give result folders of supernet_ranking.py")
    for run in a.runs:
        r = rescore(run, a.seeds, a.standalone)
        (run / f"summary-{a.seeds}seeds.json").write_text(json.dumps(r, indent=2))
        t = r["truth"]
        table = Table(
            title=f"{run}: against the {a.seeds}-seed mean ({t['metric']}, spread {t['spread_points']:.1f} points)"
        )
        for col in ("estimator", "Kendall τ", "Spearman ρ"):
            table.add_column(col, justify="left" if col == "estimator" else "right")
        for k, tau in r["kendall_tau"].items():
            table.add_row(escape(k), f"{tau:.3f}", f"{r['spearman_rho'][k]:.3f}")
        console.print(table)
        console.print(f"wrote {run / f'summary-{a.seeds}seeds.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
