"""The pieces of the ranking benchmarks (``supernet_ranking.py``, ``ranking_truth.py``, ``predictor_ranking.py``).

- stand-alone truth: sampling the architectures (``archs.json``), training one of them, the resumable
  cache of trainings (``standalone.jsonl``, one json line per arch and seed) and the parallel jobs;
- statistics: Kendall τ / Spearman ρ (``corr``) and the noise ceilings of a truth averaged over seeds;
- the steps of ``supernet_ranking.py`` after its argument parsing: the supernet(s), the estimators'
  scores, and the report (``ranking.csv``, ``summary.json`` and the table on stdout).

The step functions take the parsed options of ``supernet_ranking.py`` (a :class:`Setup` holds them).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import json
import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from scipy import stats

from nas.cost import count_macs, count_params
from nas.data import BUILTIN_SEED, Dataset, DatasetSource, render_cached
from nas.model import build_model
from nas.space import SearchSpace, coarse_space, load_space, sample_distinct
from nas.spec import ArchSpec, parse_arch
from nas.supernet import (
    FewShotEstimator,
    SupernetEstimator,
    SupernetMacsEstimator,
    TrainConfig,
    load_data,
    load_supernet_estimator,
    make_estimator,
    standalone_accuracy,
    train_few_shot,
    train_supernet,
)
from nas.train import Recipe, fit_model

if TYPE_CHECKING:
    from nas.supernet import TrainResult

console = Console(highlight=False)


# --- statistics -------------------------------------------------------------------------------------


def corr(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Kendall τ and Spearman ρ of ``x`` against ``y`` over the pairs where both are finite (NaN under 3)."""
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return float("nan"), float("nan")
    return float(stats.kendalltau(x[ok], y[ok]).statistic), float(stats.spearmanr(x[ok], y[ok]).statistic)


def mean_corr(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    """Mean (τ, ρ) over several comparisons."""
    return float(np.mean([p[0] for p in pairs])), float(np.mean([p[1] for p in pairs]))


def seed_vs_seed(per_seed: np.ndarray) -> tuple[float, float]:
    """Mean (τ, ρ) of every pair of rows (one row of accuracies per seed)."""
    k = len(per_seed)
    return mean_corr([corr(per_seed[i], per_seed[j]) for i in range(k) for j in range(i + 1, k)])


def half_vs_half(per_seed: np.ndarray) -> tuple[float, float]:
    """Mean (τ, ρ) of the mean of half the seeds (rows) against the mean of the other half, over every split.

    How well a perfect estimator of the expected accuracy could rank against a truth averaged over
    that many seeds (a lower bound for the full mean, which is less noisy still)."""
    n = len(per_seed)
    halves = [h for h in itertools.combinations(range(n), n // 2) if 0 in h]
    rest = [tuple(k for k in range(n) if k not in h) for h in halves]
    return mean_corr(
        [corr(per_seed[list(h)].mean(0), per_seed[list(r)].mean(0)) for h, r in zip(halves, rest, strict=True)]
    )


def seed_noise(per_seed: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Per-arch seed variance, its mean over the archs (the pooled seed noise) and the between-arch
    variance of the expected accuracies (the variance of the seed means less the noise they keep)."""
    var = np.var(per_seed, axis=0, ddof=1)
    noise = float(np.mean(var))
    return var, noise, max(float(np.var(per_seed.mean(0), ddof=1)) - noise / per_seed.shape[0], 1e-12)


def draw_summary(taus: Sequence[float], rhos: Sequence[float]) -> dict:
    """Mean τ / ρ over simulated draws and the 5th-95th percentile of τ."""
    return {
        "tau": float(np.mean(taus)),
        "rho": float(np.mean(rhos)),
        "tau_p5": float(np.percentile(taus, 5)),
        "tau_p95": float(np.percentile(taus, 95)),
    }


def perfect_ceiling(per_seed: np.ndarray, seed: int, draws: int = 2000) -> dict:
    """Kendall τ / Spearman ρ of a perfect estimator of the expected stand-alone accuracy against the
    mean of the seeds, simulated from the measured spreads: per-arch expectations drawn normal with the
    between-arch variance, seed noise normal with the mean within-arch variance. What no estimator can
    beat on this truth, and how far one that is exactly right still lands by chance (5th-95th
    percentile over the draws)."""
    n_seeds, n_archs = per_seed.shape
    _, noise, signal = seed_noise(per_seed)
    rng = np.random.default_rng(seed)
    mu = rng.normal(0.0, np.sqrt(signal), (draws, n_archs))
    seen = mu + rng.normal(0.0, np.sqrt(noise / n_seeds), (draws, n_archs))
    taus, rhos = zip(*(corr(m, o) for m, o in zip(mu, seen, strict=True)), strict=True)
    return {
        **draw_summary(taus, rhos),
        "seed_noise_sd_points": float(100 * np.sqrt(noise)),
        "arch_sd_points": float(100 * np.sqrt(signal)),
    }


# --- set-up and the stand-alone truth ---------------------------------------------------------------


@dataclasses.dataclass
class Setup:
    """What every step of ``supernet_ranking.py`` works on: its options, output folder, space and data."""

    a: argparse.Namespace
    out: Path
    space: SearchSpace
    data: Dataset
    test: Dataset | None  # fresh test images (``--test-per-class``), or None

    @property
    def scored(self) -> Dataset:
        """The split every model and estimator is scored on."""
        return self.test or self.data

    @property
    def metric(self) -> str:
        """The stand-alone result the truth is made of."""
        return "val_acc" if self.test is None else "test_acc"


def setup(a: argparse.Namespace) -> Setup:
    """Torch threads, the output folder, the space (in ``--phase``) and the data; prints what the run does."""
    if a.threads:
        torch.set_num_threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    space = load_space(a.space)
    space = coarse_space(space) if a.phase == "coarse" else space
    data = load_data(a.data, a.resolution, seed=a.seed)
    test = test_data(data, a.data, a.test_per_class)
    console.print(
        f"[bold]ranking benchmark[/bold]: space {space}, {data.describe()}, {a.archs} archs"
        + ("" if test is None else f"; scored on {len(test.val_y)} fresh test images")
    )
    console.print(
        f"supernet: {a.sampler}, {a.supernet_epochs} epochs; stand-alone: {a.standalone_epochs} epochs each; "
        f"batch {a.batch_size}, AdamW lr {a.lr}; torch threads {torch.get_num_threads()}"
    )
    return Setup(a, out, space, data, test)


def sample_archs(space: SearchSpace, n: int, seed: int, path: Path) -> list[str]:
    """``n`` distinct members of ``space`` drawn with ``seed``, kept in (and reused from) ``path``."""
    if path.exists():
        saved = json.loads(path.read_text())
        same = saved["seed"] == seed and saved["space"] == space.name and saved.get("phase", "joint") == space.phase
        if same and len(saved["archs"]) >= n:
            return list(saved["archs"][:n])
    out = [a.arch for a in sample_distinct(space, np.random.default_rng(seed), n)]
    if len(out) < n:
        raise SystemExit(f"--archs: the space has fewer than {n} distinct members that a sample finds ({len(out)})")
    path.write_text(json.dumps({"space": space.name, "phase": space.phase, "seed": seed, "archs": out}, indent=1))
    return out


def _append_line(path: Path, row: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_lines(path: Path) -> dict[tuple[str, int], dict]:
    """The stand-alone cache ``path`` (``standalone.jsonl``) by (arch, seed); the last line of a key wins."""
    done: dict[tuple[str, int], dict] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill: that arch is retrained
                continue
            done[(row["arch"], int(row["budget"]["seed"]))] = row
    return done


def test_data(data: Dataset, data_spec: str, per_class: int) -> Dataset | None:
    """``data`` with its held-out split replaced by ``per_class`` fresh shapes10 images per class (a
    seed neither split uses), or None without ``--test-per-class``."""
    if per_class <= 0:
        return None
    if not data_spec.startswith("builtin"):
        raise SystemExit("--test-per-class: only for builtin data (other data sets have no generator)")
    x, y = render_cached(per_class, data.resolution, BUILTIN_SEED + 2)
    return dataclasses.replace(data, val_x=torch.from_numpy(x), val_y=torch.from_numpy(y).long())


def train_one(
    arch_s: str, data: Dataset, test: Dataset | None, epochs: int, batch_size: int, lr: float, seed: int
) -> dict:
    """One stand-alone training; the caller adds the budget key."""
    arch = parse_arch(arch_s)
    model = build_model(arch, seed=seed)
    r = fit_model(
        model,
        DatasetSource(data),
        data,
        Recipe(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, ema=False),
        device="cpu",
    )
    test_acc = {} if test is None else {"test_acc": standalone_accuracy(model, test)}
    return {
        "arch": arch_s,
        "val_acc": r["val_acc"],
        **test_acc,
        "seconds": r["seconds"],
        "images_per_s": r["images_per_s"],
        "params": count_params(arch),
        "macs": count_macs(arch),
    }


_WORKER_DATA: tuple[Dataset, Dataset | None] | None = None  # set once per worker process by _worker_init


def _worker_init(data_spec: str, resolution: int, seed: int, test_per_class: int) -> None:
    global _WORKER_DATA
    torch.set_num_threads(1)
    data = load_data(data_spec, resolution, seed=seed)
    _WORKER_DATA = (data, test_data(data, data_spec, test_per_class))


def _worker_train(arch_s: str, epochs: int, batch_size: int, lr: float, seed: int) -> dict:
    assert _WORKER_DATA is not None
    return train_one(arch_s, *_WORKER_DATA, epochs, batch_size, lr, seed)


def budget_key(a: argparse.Namespace, seed: int) -> dict:
    """The budget a cached stand-alone training of ``seed`` must carry to count for this run."""
    test = {"test_per_class": a.test_per_class} if a.test_per_class > 0 else {}  # older caches have none
    return {
        "epochs": a.standalone_epochs,
        "batch_size": a.batch_size,
        "lr": a.lr,
        "data": a.data,
        "resolution": a.resolution,
        "seed": seed,
        "recipe": "adamw-cosine-zero-classifier",
        **test,
    }


def train_standalone(s: Setup, archs: list[str], seeds: list[int]) -> dict[tuple[str, int], dict]:
    """Train every (arch, seed) not yet in ``OUT/standalone.jsonl`` with the benchmark's budget
    (``--jobs`` at a time); all rows by key."""
    a, cache = s.a, s.out / "standalone.jsonl"
    done = read_lines(cache)
    todo = [(x, sd) for sd in seeds for x in archs if done.get((x, sd), {}).get("budget") != budget_key(a, sd)]
    console.print(f"stand-alone: {len(todo)} of {len(archs) * len(seeds)} trainings to run, {a.jobs} at a time")
    t0 = time.perf_counter()

    def record(i: int, x: str, sd: int, row: dict) -> None:
        row["budget"] = budget_key(a, sd)
        _append_line(cache, row)
        done[(x, sd)] = row
        console.print(
            f"  stand-alone {i}/{len(todo)} (seed {sd}): acc {row['val_acc']:.3f}"
            + (f" (test {row['test_acc']:.3f})" if "test_acc" in row else "")
            + f", {row['macs'] / 1e6:.1f} M MACs, "
            f"{row['images_per_s']:.0f} img/s, {row['seconds']:.0f} s; {time.perf_counter() - t0:.0f} s so far"
        )

    args = (a.standalone_epochs, a.batch_size, a.lr)
    if a.jobs <= 1:
        for i, (x, sd) in enumerate(todo, 1):
            record(i, x, sd, train_one(x, s.data, s.test, *args, sd))
        return done
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        a.jobs, mp_context=ctx, initializer=_worker_init, initargs=(a.data, a.resolution, a.seed, a.test_per_class)
    ) as ex:
        futs = {ex.submit(_worker_train, x, *args, sd): (x, sd) for x, sd in todo}
        for i, f in enumerate(as_completed(futs), 1):
            x, sd = futs[f]
            record(i, x, sd, f.result())
    return done


def per_seed_accuracies(
    done: dict[tuple[str, int], dict], archs: list[str], seeds: list[int], metric: str
) -> np.ndarray:
    """``metric`` of every cached training as a seeds × archs array."""
    return np.asarray([[done[(x, sd)][metric] for x in archs] for sd in seeds])


def print_standalone(s: Setup, archs: list[str], seeds: list[int], done: dict[tuple[str, int], dict]) -> None:
    """The line ``--standalone-only`` ends with (and the seed-vs-seed τ with two or more seeds)."""
    per_seed = per_seed_accuracies(done, archs, seeds, s.metric)
    noise = f"; seed vs seed τ {seed_vs_seed(per_seed)[0]:.3f}" if len(seeds) > 1 else ""
    console.print(f"stand-alone: {len(archs)} archs × {len(seeds)} seeds in {s.out / 'standalone.jsonl'}{noise}")


# --- the supernet and the estimators ----------------------------------------------------------------


@dataclasses.dataclass
class SupernetRun:
    """The trained supernet (or few-shot supernets): its checkpoint and training record."""

    ckpt: Path
    shots: list[TrainResult]  # one per shot; the one-shot supernet alone without --split
    epochs: int  # epochs done (the fewest over the shots)
    images_per_s: float  # mean over all epochs of all shots (they train one after the other)
    history: list[dict]


def _print_epoch(h: dict) -> None:
    console.print(
        f"  supernet epoch {h['epoch']}: loss {h['loss']:.3f} train acc {h['train_acc']:.3f} "
        f"{h['images_per_s']:.0f} img/s" + "".join(f" {k} {v:.3f}" for k, v in h.items() if k.startswith("val_acc"))
    )


def train_supernets(s: Setup) -> SupernetRun:
    """Train (or resume) the supernet, or with ``--split`` the few-shot supernets (first the one-shot
    start with ``--init-epochs``: this sets ``a.init_epochs`` to the epochs it holds and adds it to
    ``a.compare_supernet``)."""
    a, out = s.a, s.out
    cfg = TrainConfig(
        epochs=a.supernet_epochs,
        batch_size=a.batch_size,
        lr=a.lr,
        sampler=a.sampler,
        seed=a.seed,
        eval_every=5,
        random_subnets=a.random_subnets,
        distill=not a.no_distill,
        sandwich_ops=a.sandwich_ops,
        kernel_transform=a.kernel_transform,
    )
    t0 = time.perf_counter()
    train_kw = dict(data_spec=a.data, split_seed=a.seed, on_epoch=_print_epoch)
    if a.split:
        ckpt = out / "supernet.json"
        init_from = None
        if a.init_epochs > 0:
            init_from = out / "supernet.pt"
            console.print(f"one-shot start: {a.init_epochs} epochs -> {init_from}")
            a.init_epochs = train_supernet(
                s.space, s.data, init_from, dataclasses.replace(cfg, epochs=a.init_epochs), **train_kw
            ).epochs_done  # what the shots start from, if it already held more
            a.compare_supernet.append(str(init_from))
            cfg = dataclasses.replace(cfg, lr=a.shot_lr or a.lr)
        few = train_few_shot(
            s.space,
            s.data,
            ckpt,
            cfg,
            split=a.split,
            init_from=init_from,
            **train_kw,
            on_shot=lambda k, n, label, p: console.print(f"shot {k + 1}/{n}: {label} -> {p}"),
        )
        shots = list(few.shots.values())
    else:
        ckpt = out / "supernet.pt"
        shots = [train_supernet(s.space, s.data, ckpt, cfg, **train_kw)]
    hist = [h for r in shots for h in r.history]
    run = SupernetRun(
        ckpt, shots, min(r.epochs_done for r in shots), float(np.mean([h["images_per_s"] for h in hist])), hist
    )
    console.print(
        f"supernet: {run.epochs} epochs ({time.perf_counter() - t0:.0f} s this run), {run.images_per_s:.0f} images/s"
        + (f", {len(shots)} shots on {a.split}" if a.split else "")
    )
    return run


def _finetuned(
    sn: SupernetEstimator | FewShotEstimator, arch: ArchSpec, data: Dataset, scored: Dataset, a: argparse.Namespace
) -> float:
    """Held-out accuracy of ``arch`` after ``--finetune-epochs`` of training from the inherited weights
    (half the peak learning rate, no warm-up, classifier kept), BatchNorm recalibrated as for the supernet score."""
    shot = sn.shot_for(arch) if isinstance(sn, FewShotEstimator) else sn
    model = shot.supernet.extract(arch)
    cfg = Recipe(
        epochs=a.finetune_epochs,
        batch_size=a.batch_size,
        lr=a.lr / 2,
        seed=a.seed,
        lr_warmup=0.0,
        ema=False,
        zero_head=False,
    )
    fit_model(model, DatasetSource(data), None, cfg, device="cpu")
    return standalone_accuracy(model, scored, sn.calib)


@dataclasses.dataclass
class Scores:
    """Every estimator's scores of the sampled archs (in their order) and its time per arch."""

    supernet: np.ndarray
    supernet_seconds: float  # per arch
    estimator: SupernetEstimator | FewShotEstimator  # the supernet estimator (its BatchNorm calibration)
    combined: np.ndarray  # the supernet+macs:CKPT estimator
    combined_estimator: SupernetMacsEstimator
    combined_seconds: float  # all archs, mostly the one-off reference sample
    compared: dict[str, tuple[np.ndarray, np.ndarray]]  # --compare-supernet: (supernet, supernet+macs)
    finetuned: np.ndarray | None  # --finetune-epochs
    finetune_seconds: float  # per arch
    proxy_name: str
    proxy: np.ndarray
    proxy_seconds: float  # per arch
    params: np.ndarray  # log10 parameter count
    macs: np.ndarray


def score_estimators(s: Setup, ckpt: Path, archs: list[str]) -> Scores:
    """Score ``archs`` with the supernet at ``ckpt``, supernet+macs, the compared checkpoints, the
    fine-tuned subnets (``--finetune-epochs``), the proxy and the parameter and MAC counts."""
    a, n = s.a, len(archs)
    specs = [parse_arch(x) for x in archs]
    t = time.perf_counter()
    sn = load_supernet_estimator(ckpt, data=s.scored)
    sn_scores = sn.score(specs)
    sn_seconds = (time.perf_counter() - t) / n
    t = time.perf_counter()
    combined = SupernetMacsEstimator(ckpt, supernet=sn)
    combined_scores = combined.score(specs)
    combined_seconds = time.perf_counter() - t
    compared = {}
    for ck in a.compare_supernet:
        other = SupernetEstimator(ck, data=s.scored)
        compared[ck] = (other.score(specs), SupernetMacsEstimator(ck, supernet=other).score(specs))
    ft_scores, ft_seconds = None, 0.0
    if a.finetune_epochs > 0:
        t = time.perf_counter()
        ft_scores = np.asarray([_finetuned(sn, x, s.data, s.scored, a) for x in specs])
        ft_seconds = (time.perf_counter() - t) / n
    t = time.perf_counter()
    proxy = make_estimator(a.proxy)
    proxy_scores = proxy.score(specs)
    proxy_seconds = (time.perf_counter() - t) / n
    params_scores = make_estimator("params").score(specs)
    macs_scores = np.asarray([count_macs(x) for x in specs], dtype=float)
    return Scores(
        sn_scores,
        sn_seconds,
        sn,
        combined_scores,
        combined,
        combined_seconds,
        compared,
        ft_scores,
        ft_seconds,
        proxy.name,
        proxy_scores,
        proxy_seconds,
        params_scores,
        macs_scores,
    )


# --- the report -------------------------------------------------------------------------------------


@dataclasses.dataclass
class Truth:
    """The stand-alone truth of the sampled archs."""

    archs: list[str]
    seeds: list[int]
    done: dict[tuple[str, int], dict]  # the cache rows by (arch, seed)
    per_seed: np.ndarray  # seeds × archs
    mean: np.ndarray  # over the seeds: the truth

    @classmethod
    def of(cls, s: Setup, archs: list[str], seeds: list[int], done: dict[tuple[str, int], dict]) -> Truth:
        """The truth on the split ``s`` scores on."""
        per_seed = per_seed_accuracies(done, archs, seeds, s.metric)
        return cls(archs, seeds, done, per_seed, per_seed.mean(axis=0))


def ranking_rows(t: Truth, sc: Scores) -> list[dict]:
    """One ``ranking.csv`` row per arch: the truth, every estimator's score, the costs, each seed's accuracy."""
    rows: list[dict] = []
    for x, acc, sn, px, pr in zip(t.archs, t.mean, sc.supernet, sc.proxy, sc.params, strict=True):
        i = len(rows)
        extra = {} if sc.finetuned is None else {"finetuned_acc": float(sc.finetuned[i])}
        for name, (o_sn, o_comb) in sc.compared.items():
            extra |= {f"supernet_acc[{name}]": float(o_sn[i]), f"supernet_macs[{name}]": float(o_comb[i])}
        rows.append(
            {
                "arch": x,
                "standalone_acc": acc,
                "supernet_acc": sn,
                "supernet_macs": float(sc.combined[i]),
                **extra,
                f"{sc.proxy_name}": px,
                "log10_params": pr,
                "macs": t.done[(x, t.seeds[0])]["macs"],
                "params": t.done[(x, t.seeds[0])]["params"],
                **{f"standalone_acc_seed{sd}": float(t.per_seed[k][i]) for k, sd in enumerate(t.seeds)},
            }
        )
    return rows


def write_ranking_csv(path: Path, rows: list[dict]) -> None:
    """``rows`` as a csv with a header (the keys of the first row)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def correlations(s: Setup, t: Truth, sc: Scores) -> tuple[dict[str, tuple[float, float]], dict | None]:
    """(τ, ρ) of every estimator against the truth, and the noise ceilings; the simulated perfect-
    estimator ceiling (None with one seed)."""
    truth, seeds = t.mean, t.seeds
    results = {
        "supernet": corr(sc.supernet, truth),
        sc.proxy_name: corr(sc.proxy, truth),
        "params": corr(sc.params, truth),
        "macs": corr(sc.macs, truth),
        # Equal-weight rank average: the supernet's and the MAC count's errors run in opposite
        # directions on this space (5×5/e4/start-DW share vs width), so their mean rank is a check of
        # how complementary they are, not a fitted model.
        "supernet + MACs (mean rank)": corr(stats.rankdata(sc.supernet) + stats.rankdata(sc.macs), truth),
        # What a search gets: the same combination with ranks taken in the estimator's reference sample.
        "supernet+macs estimator": corr(sc.combined, truth),
    }
    if sc.finetuned is not None:
        results[f"supernet + {s.a.finetune_epochs}-epoch fine-tune"] = corr(sc.finetuned, truth)
    for name, pair in sc.compared.items():
        for kind, scores in zip(("supernet", "supernet+macs"), pair, strict=True):
            results[f"{kind} {name}"] = corr(np.asarray(scores), truth)
    ceiling = None
    if len(seeds) > 1:
        # How well one stand-alone run ranks like another: the ceiling for any estimator on this budget.
        results["stand-alone, seed vs seed"] = seed_vs_seed(t.per_seed)
        ceiling = perfect_ceiling(t.per_seed, s.a.seed)
        results[f"perfect estimator vs the {len(seeds)}-seed mean (simulated)"] = (ceiling["tau"], ceiling["rho"])
        if s.test is not None:  # the same models scored on the smaller held-out split: how much is evaluation noise
            val = per_seed_accuracies(t.done, t.archs, seeds, "val_acc")
            results["stand-alone, seed vs seed on the held-out split"] = seed_vs_seed(val)
    if len(seeds) >= 4:
        results["stand-alone, half vs half"] = half_vs_half(t.per_seed)
    return results, ceiling


def summary_dict(
    s: Setup, t: Truth, run: SupernetRun, sc: Scores, results: dict[str, tuple[float, float]], ceiling: dict | None
) -> dict:
    """What ``summary.json`` holds: the set-up, both trainings' recipes and speeds, every τ and ρ."""
    a = s.a
    sa_ips = float(np.mean([t.done[(x, sd)]["images_per_s"] for x in t.archs for sd in t.seeds]))
    return {
        "space": s.space.name,
        "phase": s.space.phase,
        "data": s.data.describe(),
        "scored_on": f"{len(s.scored.val_y)} {'fresh test' if s.test is not None else 'held-out'} images",
        "archs": len(t.archs),
        "standalone": {
            "epochs": a.standalone_epochs,
            "batch_size": a.batch_size,
            "lr": a.lr,
            "seeds": t.seeds,
            "acc_min": float(t.mean.min()),
            "acc_max": float(t.mean.max()),
            "spread_points": float(100 * (t.mean.max() - t.mean.min())),
            "images_per_s": sa_ips,
        },
        "supernet": {
            "sampler": a.sampler,
            "epochs": run.epochs,
            "images_per_s": run.images_per_s,
            "few_shot_split": a.split,
            "shots": len(run.shots),
            "init_epochs": a.init_epochs or None,
            "shot_lr": (a.shot_lr or a.lr) if a.split else None,
            "random_subnets": a.random_subnets,
            "distill": a.sampler == "sandwich" and not a.no_distill,
            "sandwich_ops": a.sandwich_ops if a.sampler == "sandwich" else None,
            "kernel_transform": a.kernel_transform,
            "subnets_per_step": run.history[-1]["subnets_per_step"],
            "seconds_per_arch_estimate": sc.supernet_seconds,
            "bn_calibration_images": sum(len(b) for b in sc.estimator.calib),
        },
        "finetune": None
        if sc.finetuned is None
        else {"epochs": a.finetune_epochs, "lr": a.lr / 2, "seconds_per_arch": sc.finetune_seconds},
        "compared_supernets": list(a.compare_supernet),
        "perfect_estimator_ceiling": ceiling,
        "proxy_seconds_per_arch": sc.proxy_seconds,
        "supernet_macs": {
            "reference_members": sc.combined_estimator.n_ref,
            "seconds_with_reference": sc.combined_seconds,
        },
        "kendall_tau": {k: v[0] for k, v in results.items()},
        "spearman_rho": {k: v[1] for k, v in results.items()},
        "torch_threads": torch.get_num_threads(),
    }


def _supernet_label(a: argparse.Namespace, run: SupernetRun) -> str:
    recipe = a.sampler + (", no distillation" if a.sampler == "sandwich" and a.no_distill else "")
    recipe += ", random ops" if a.sampler == "sandwich" and a.sandwich_ops == "random" else ""
    recipe += ", kernel transform" if a.kernel_transform else ""
    recipe += f", {len(run.shots)} shots on {a.split}" if a.split else ""
    recipe += f" after {a.init_epochs} one-shot ep" if a.split and a.init_epochs else ""
    return f"supernet ({recipe}, {run.epochs} ep)"


def results_table(
    s: Setup, t: Truth, run: SupernetRun, sc: Scores, results: dict[str, tuple[float, float]], ceiling: dict | None
) -> Table:
    """The stdout table: τ, ρ and seconds per arch of every estimator, then the noise ceilings."""
    a, n, seeds = s.a, len(t.archs), t.seeds
    spread = 100 * (t.mean.max() - t.mean.min())
    table = Table(title=f"ranking vs stand-alone training ({n} archs, accuracy spread {spread:.1f} points)")
    for col in ("estimator", "Kendall τ", "Spearman ρ", "s / arch"):
        table.add_column(col, justify="right" if col != "estimator" else "left")

    def row(label: str, key: str, seconds: str = "") -> None:
        table.add_row(label, f"{results[key][0]:.3f}", f"{results[key][1]:.3f}", seconds)

    row(_supernet_label(a, run), "supernet", f"{sc.supernet_seconds:.2f}")
    if sc.finetuned is not None:
        ft = f"supernet + {a.finetune_epochs}-epoch fine-tune"
        row(ft, ft, f"{sc.finetune_seconds:.2f}")
    row(sc.proxy_name, sc.proxy_name, f"{sc.proxy_seconds:.2f}")
    row("log10 params", "params", "0")
    row("MACs", "macs", "0")
    row("supernet + MACs (mean rank)", "supernet + MACs (mean rank)", f"{sc.supernet_seconds:.2f}")
    row(
        f"supernet+macs:CKPT ({sc.combined_estimator.n_ref}-member reference)",
        "supernet+macs estimator",
        f"{sc.combined_seconds / n:.2f}",
    )
    for name in sc.compared:
        for kind in ("supernet", "supernet+macs"):
            row(f"{kind} {name}", f"{kind} {name}")
    if len(seeds) > 1:
        row("stand-alone, seed vs seed (noise ceiling)", "stand-alone, seed vs seed")
    if "stand-alone, seed vs seed on the held-out split" in results:
        row(
            f"  the same, scored on the {len(s.data.val_y)} held-out images",
            "stand-alone, seed vs seed on the held-out split",
        )
    if ceiling is not None:
        c = ceiling
        label = f"a perfect estimator vs the {len(seeds)}-seed mean (simulated; 5-95%: {c['tau_p5']:.2f}-{c['tau_p95']:.2f})"
        table.add_row(label, f"{c['tau']:.3f}", f"{c['rho']:.3f}", "")
    if "stand-alone, half vs half" in results:
        half = len(seeds) // 2
        row(f"stand-alone, mean of {half} seeds vs the other {len(seeds) - half}", "stand-alone, half vs half")
    return table


def report(s: Setup, t: Truth, run: SupernetRun, sc: Scores) -> None:
    """Write ``OUT/ranking.csv`` and ``OUT/summary.json``; print the table and the throughputs."""
    write_ranking_csv(s.out / "ranking.csv", ranking_rows(t, sc))
    results, ceiling = correlations(s, t, sc)
    summary = summary_dict(s, t, run, sc, results, ceiling)
    (s.out / "summary.json").write_text(json.dumps(summary, indent=2))
    console.print(results_table(s, t, run, sc, results, ceiling))
    console.print(
        f"stand-alone accuracy {t.mean.min():.3f}-{t.mean.max():.3f}; training throughput: supernet "
        f"{run.images_per_s:.0f} images/s ({summary['supernet']['subnets_per_step']} subnets/step), stand-alone "
        f"{summary['standalone']['images_per_s']:.0f} images/s (mean over archs); wrote {s.out / 'ranking.csv'} "
        f"and {s.out / 'summary.json'}"
    )
