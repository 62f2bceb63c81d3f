"""Does an accuracy predictor fitted to a supernet rank architectures as well as the supernet itself?

Takes a finished run of ``supernet_ranking.py`` (its folder: ``supernet.pt`` or ``supernet.json``,
``archs.json``, ``ranking.csv``, ``summary.json`` and the stand-alone cache ``standalone.jsonl``) and

1. scores ``--n`` sampled members of the supernet's space with the supernet once (batched) and fits
   one predictor per ``--model`` on those scores (``OUT/predictor-<model>-<n>.json``; each reports its
   fit on a held-out fifth of the members);
2. scores the run's architectures with the supernet again (the batched estimator: the same numbers as
   the run's ``supernet_acc`` column up to float rounding) and with every predictor, and reports
   Kendall τ / Spearman ρ of each against the mean of the first ``--seeds`` stand-alone seeds (default:
   the run's), next to the MAC count and the mean rank of each with the MAC count — does the
   predictor's smoothing help or hurt?;
3. candidates per second of the supernet (batched) and of the predictors, measured here;
4. with ``--search-seconds T``: an evolutionary search (aging evolution over the space's encodings:
   tournaments of 8 in a population of 64, one decision mutated per child, MACs ≤ ``--macs-budget``,
   default the median of the run's architectures) run for T seconds of wall time scoring with the
   supernet, and for the same T with the first ``--model``'s predictor — the time to score its
   training members counted in its T (it is fitted on as many members as the supernet scored in T/2) —;
   the best score each found, both picks scored by the supernet, and with ``--train-picks`` both picks
   trained stand-alone with the run's recipe and seeds (their accuracy is the answer that counts).

Writes ``OUT/predictor-ranking.json`` and prints the tables::

    python benchmarks/predictor_ranking.py benchmarks/results/supernet_ranking/RUN --n 100 --model ridge mlp \\
        --search-seconds 300 --train-picks
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from ranking import corr, test_data, train_one
from ranking_truth import stand_alone_truth
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from scipy import stats

from nas.data import Dataset, load_data
from nas.space import SearchSpace, canonical, decode, sample_distinct, sample_vectors
from nas.spec import ArchSpec, parse_arch
from nas.supernet import (
    Features,
    FewShotEstimator,
    Predictor,
    SupernetEstimator,
    fit_predictor,
    load_supernet_estimator,
)

console = Console(highlight=False, width=160)


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("run", type=Path, help="result folder of supernet_ranking.py (with its supernet checkpoint)")
    p.add_argument("--n", type=int, default=200, help="members the predictors are fitted on")
    p.add_argument("--model", nargs="+", default=["ridge", "mlp"], help="predictor models")
    p.add_argument("--seeds", type=int, default=None, help="stand-alone seeds in the truth (default: the run's)")
    p.add_argument("--search-seconds", type=float, default=0.0, help="wall time of each search (0: no search)")
    p.add_argument(
        "--macs-budget",
        type=float,
        default=None,
        help="MACs limit of the searches (default: median of the run's archs)",
    )
    p.add_argument(
        "--train-picks", action="store_true", help="train both searches' picks stand-alone (the run's recipe)"
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


class _Scored:
    """The supernet estimator with its scores of the fitting sample already known (one scoring pass
    serves every model)."""

    def __init__(self, est, archs, scores) -> None:
        self.est, self.known = est, {a.arch: float(s) for a, s in zip(archs, scores, strict=True)}
        self.name, self.meaning, self.path, self.meta = est.name, est.meaning, est.path, est.meta

    @property
    def search_space(self) -> SearchSpace:
        return self.est.search_space

    def score(self, archs) -> np.ndarray:
        missing = [a for a in archs if a.arch not in self.known]
        if missing:
            self.known.update((a.arch, float(s)) for a, s in zip(missing, self.est.score(missing), strict=True))
        return np.asarray([self.known[a.arch] for a in archs])


def _evolve(
    space: SearchSpace,
    score_vecs: Callable[[np.ndarray], np.ndarray],
    macs_budget: float,
    seconds: float,
    batch: int,
    rng: np.random.Generator,
    population: int = 64,
    tournament: int = 8,
) -> dict:
    """Aging evolution on canonical encodings under a MACs limit for ``seconds`` of wall time."""
    feats = Features(space)
    radix = np.asarray([d.radix for d in feats.decisions])
    pop: list[tuple[float, np.ndarray]] = []
    seen: dict[bytes, float] = {}
    best = (-np.inf, None)
    deadline, stale = time.perf_counter() + seconds, 0
    while time.perf_counter() < deadline and stale < 50:
        if len(pop) < population:
            kids = sample_vectors(space, rng, batch)
        else:
            kids = np.empty((batch, len(radix)), dtype=np.int64)
            for k in range(batch):
                pick = rng.choice(len(pop), size=min(tournament, len(pop)), replace=False)
                kid = pop[max(pick, key=lambda i: pop[i][0])][1].copy()
                d = rng.integers(len(radix))
                kid[d] = rng.integers(radix[d])
                kids[k] = kid
            kids = canonical(space, kids)
        ok = feats.costs(kids)[0] <= macs_budget
        kids = np.unique(kids[ok], axis=0) if ok.any() else kids[:0]
        kids = kids[[v.tobytes() not in seen for v in kids]] if len(kids) else kids
        if not len(kids):
            stale += 1
            continue
        stale = 0
        scores = score_vecs(kids)
        for v, s in zip(kids, scores, strict=True):
            seen[v.tobytes()] = float(s)
            pop.append((float(s), v))
            if s > best[0]:
                best = (float(s), v)
        pop = pop[-population:]
    return {
        "evaluations": len(seen),
        "best_score": best[0],
        "best": None if best[1] is None else decode(space, best[1]),
        "exhausted": stale >= 50,
    }


def _search(a: argparse.Namespace, est, pred_model: str, macs_budget: float, truth_ctx: dict) -> dict:
    space = est.search_space
    rng = np.random.default_rng(a.seed + 7)
    t0 = time.perf_counter()
    sn = _evolve(space, lambda v: est.score([decode(space, x) for x in v]), macs_budget, a.search_seconds, 16, rng)
    sn["seconds"] = time.perf_counter() - t0
    n_fit = max(10, sn["evaluations"] // 2)
    t0 = time.perf_counter()
    pred = fit_predictor(est, n_fit, model=pred_model, seed=a.seed + 8)
    fit_s = time.perf_counter() - t0
    pr = _evolve(
        space,
        pred.score_encoded,
        macs_budget,
        max(0.0, a.search_seconds - fit_s),
        1024,
        np.random.default_rng(a.seed + 9),
    )
    pr["seconds"] = time.perf_counter() - t0
    out = {
        "macs_budget": macs_budget,
        "seconds": a.search_seconds,
        "supernet": {
            "evaluations": sn["evaluations"],
            "best_score": sn["best_score"],
            "exhausted": sn["exhausted"],
            "arch": sn["best"].arch,
            "wall_s": sn["seconds"],
        },
        "predictor": {
            "model": pred_model,
            "fit_members": pred.record["fit"]["n"],
            "fit_s": fit_s,
            "evaluations": pr["evaluations"],
            "best_predicted": pr["best_score"],
            "exhausted": pr["exhausted"],
            "arch": pr["best"].arch,
            "wall_s": pr["seconds"],
        },
    }
    out["predictor"]["supernet_score"] = float(est.score([pr["best"]])[0])
    for side in ("supernet", "predictor"):  # a pick among the run's archs has its stand-alone truth already
        known = truth_ctx["known"].get(out[side]["arch"])
        out[side]["standalone_known"] = None if known is None else float(known)
    if a.train_picks:
        for side, arch in (("supernet", sn["best"]), ("predictor", pr["best"])):
            accs = [
                train_one(arch.arch, *truth_ctx["data"], *truth_ctx["recipe"], sd)[truth_ctx["metric"]]
                for sd in truth_ctx["seeds"]
            ]
            out[side]["standalone"] = {"mean": float(np.mean(accs)), "per_seed": accs}
    return out


@dataclasses.dataclass
class _Run:
    """A finished supernet_ranking.py run: its archs, recorded scores, truth, data and supernet."""

    path: Path
    ckpt: Path
    rows: list[dict]  # ranking.csv
    arch_strs: list[str]
    archs: list[ArchSpec]
    n_seeds: int
    seeds: list[int]
    metric: str
    truth: np.ndarray  # the mean over the seeds
    budget: dict  # of the stand-alone trainings (the first cache line's)
    data: Dataset
    test: Dataset | None
    est: SupernetEstimator | FewShotEstimator  # batched

    @property
    def space(self) -> SearchSpace:
        return self.est.search_space


def _open_run(run: Path, seeds: int | None) -> _Run:
    """Read ``run`` (refusing an unfinished one), its truth over ``seeds`` seeds (default: the run's),
    its data and its supernet."""
    ckpt = run / "supernet.json" if (run / "supernet.json").exists() else run / "supernet.pt"
    for need in (ckpt, run / "archs.json", run / "ranking.csv", run / "summary.json", run / "standalone.jsonl"):
        if not need.exists():
            raise SystemExit(f"{run}: no {need.name}; give a finished supernet_ranking.py folder with its checkpoint")
    summary = json.loads((run / "summary.json").read_text())
    with open(run / "ranking.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    arch_strs = [r["arch"] for r in rows]
    n_seeds = seeds or len(summary["standalone"]["seeds"])
    per_seed, seed_list, metric = stand_alone_truth(run, arch_strs, n_seeds, run / "standalone.jsonl")
    budget = json.loads((run / "standalone.jsonl").read_text().splitlines()[0])["budget"]
    data = load_data(budget["data"], budget["resolution"], seed=summary["standalone"]["seeds"][0])
    test = test_data(data, budget["data"], budget.get("test_per_class", 0))
    est = load_supernet_estimator(ckpt, data=test or data)
    archs = [parse_arch(s) for s in arch_strs]
    console.print(
        f"[bold]{run}[/bold]: {est.search_space}, {len(archs)} archs, truth = mean of {n_seeds} seeds ({metric}); "
        f"supernet {ckpt.name} ({est.meta['epochs_done']} epochs)"
    )
    truth = per_seed.mean(0)
    return _Run(run, ckpt, rows, arch_strs, archs, n_seeds, seed_list, metric, truth, budget, data, test, est)


def _fit_predictors(a: argparse.Namespace, r: _Run) -> tuple[int, float, dict[str, Predictor]]:
    """Score ``--n`` members with the supernet once and fit one predictor per ``--model`` on them
    (saved in the run's folder); the members, the supernet's candidates per second, the predictors."""
    sample = sample_distinct(r.space, np.random.default_rng(a.seed), a.n)
    t0 = time.perf_counter()
    sample_scores = r.est.score(sample)
    sn_rate = len(sample) / (time.perf_counter() - t0)
    scored = _Scored(r.est, sample, sample_scores)
    preds: dict[str, Predictor] = {}
    for model in a.model:
        preds[model] = fit_predictor(scored, a.n, model=model, seed=a.seed)
        preds[model].save(r.path / f"predictor-{model}-{len(sample)}.json")
    return len(sample), sn_rate, preds


def _rank(r: _Run, n: int, sn_rate: float, preds: dict[str, Predictor]) -> tuple[dict, np.ndarray]:
    """τ / ρ of the supernet, the MAC count and every predictor against the truth and the candidates
    per second of each (printed); the report so far and the archs' MACs."""
    sn_scores = r.est.score(r.archs)
    macs = Features(r.space).costs(Features(r.space).encode(r.archs))[0]
    recorded = np.asarray([float(row["supernet_acc"]) for row in r.rows])
    columns = {
        "supernet (recorded in ranking.csv)": recorded,
        "supernet (rescored, batched)": sn_scores,
        "MAC count": macs,
    }
    rates = {"supernet (batched)": sn_rate}
    for model, pred in preds.items():
        columns[f"predictor {model} ({n} members)"] = pred.score(r.archs)
        vecs = sample_vectors(r.space, np.random.default_rng(1), 20000)
        members = [decode(r.space, v) for v in vecs]
        t0 = time.perf_counter()
        pred.score(members)
        rates[f"predictor {model} (ArchSpec in)"] = len(members) / (time.perf_counter() - t0)
    results = {k: corr(v, r.truth) for k, v in columns.items()}
    for k in [k for k in columns if k != "MAC count"]:
        results[f"{k} + MACs (mean rank)"] = corr(stats.rankdata(columns[k]) + stats.rankdata(macs), r.truth)
    table = Table(title=f"against the {r.n_seeds}-seed stand-alone mean ({len(r.archs)} archs)")
    for col in ("estimator", "Kendall τ", "Spearman ρ"):
        table.add_column(col, justify="left" if col == "estimator" else "right")
    for k, (tau, rho) in results.items():
        table.add_row(escape(k), f"{tau:.3f}", f"{rho:.3f}")
    console.print(table)
    for model, pred in preds.items():
        h = pred.record["fit"]["heldout"]
        console.print(
            f"predictor {model}: held-out fit on {h['n_test']} of {pred.record['fit']['n']} members: "
            f"τ {h['kendall_tau']}, ρ {h['spearman_rho']}, RMSE {h['rmse']:.4f}"
        )
    console.print("candidates/s: " + ", ".join(f"{k} {v:,.1f}" for k, v in rates.items()))
    out = {
        "run": str(r.path),
        "space": r.space.name,
        "phase": r.space.phase,
        "n": n,
        "truth_seeds": r.seeds,
        "metric": r.metric,
        "kendall_tau": {k: v[0] for k, v in results.items()},
        "spearman_rho": {k: v[1] for k, v in results.items()},
        "candidates_per_s": rates,
        "predictor_fit": {m: p.record["fit"] for m, p in preds.items()},
        "max_abs_rescore_difference": float(np.abs(sn_scores - recorded).max()),
    }
    return out, macs


def _equal_time_search(a: argparse.Namespace, r: _Run, macs: np.ndarray) -> dict:
    """The supernet's and the first predictor's searches (printed)."""
    macs_budget = a.macs_budget or float(np.median(macs))
    ctx = {
        "data": (r.data, r.test),
        "recipe": (r.budget["epochs"], r.budget["batch_size"], r.budget["lr"]),
        "seeds": r.seeds,
        "metric": r.metric,
        "known": dict(zip(r.arch_strs, r.truth, strict=True)),
    }
    s = _search(a, r.est, a.model[0], macs_budget, ctx)
    for side in ("supernet", "predictor"):
        console.print(
            f"search with the {side} ({a.search_seconds:.0f} s, MACs ≤ {macs_budget:,.0f}): "
            + json.dumps({k: v for k, v in s[side].items() if k != "arch"})
            + f"\n  pick {s[side]['arch']}"
        )
    return s


def main(argv: list[str] | None = None) -> int:
    a = _args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    r = _open_run(a.run, a.seeds)

    # 1. one scoring pass, one predictor per model
    n, sn_rate, preds = _fit_predictors(a, r)

    # 2. ranking against the truth (3. and the candidates per second)
    out, macs = _rank(r, n, sn_rate, preds)

    # 4. equal-time search
    if a.search_seconds > 0:
        out["search"] = _equal_time_search(a, r, macs)
    (r.path / "predictor-ranking.json").write_text(json.dumps(out, indent=2))
    console.print(f"wrote {r.path / 'predictor-ranking.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
