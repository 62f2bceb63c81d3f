"""Ranking quality of the supernet: does weight sharing rank architectures the way training them does?

1. sample N architectures (seeded, distinct; ``OUT/archs.json``);
2. train each stand-alone on the same data with the same recipe and a fixed budget, once per seed
   (``--standalone-seeds``, default 2; ``--jobs`` runs in parallel, one torch thread each; cached per
   arch and seed in ``OUT/standalone.jsonl``, so an interrupted run continues where it stopped); the
   truth is the mean over seeds, and the τ between seeds is reported as the noise ceiling no estimator
   can beat on this budget (with 4 or more seeds also the τ between the means of two halves of them),
   next to a simulated ceiling: the τ a perfect estimator of each arch's expected accuracy would get
   against the seed mean, given the measured seed-to-seed and arch-to-arch spreads;
3. train a supernet over the space on the same data (resumable: ``OUT/supernet.pt``; with ``--split
   DECISION`` a few-shot supernet instead, one supernet per option of that decision: ``OUT/supernet.json``
   and its shots beside it; with ``--init-epochs N`` the shots start from the one-shot supernet
   ``OUT/supernet.pt`` trained N epochs, which is scored as well);
4. score the same architectures with the supernet (inherited weights, BatchNorm recalibrated, held-out
   accuracy), the training-free Zen-score proxy and the parameter-count and MAC-count baselines; with
   ``--finetune-epochs E`` also the supernet's subnets after E epochs of training from the inherited
   weights (how much a short fine-tune per candidate buys); and the equal-weight mean of the
   supernet's and the MAC count's ranks, both among the sampled archs and as the ``supernet+macs:CKPT`` estimator
   a search uses (ranks in a 64-member reference sample of the space);
5. Kendall τ and Spearman ρ of each against the stand-alone held-out accuracies; table on stdout,
   ``OUT/ranking.csv`` (one row per architecture) and ``OUT/summary.json``.

``--phase coarse`` samples the space's coarse stage instead (widths and depths, every block the coarse
block: the candidates stage 1 of the two-stage search ranks) and trains the supernet in that phase,
as ``mnv4-nas supernet train --phase coarse`` does for ``search --coarse-estimator``.
``--compare-supernet CKPT`` scores the same archs with another checkpoint too (e.g. the joint-space
supernet of an earlier run on the coarse archs: does stage 1 need its own supernet?).
``--standalone-only`` stops after step 2: with a larger ``--standalone-seeds`` it adds seeds to the
cache, and ``ranking_truth.py`` then re-ranks the recorded estimator scores of earlier runs against
the mean of more seeds.

With builtin data, ``--test-per-class N`` scores every stand-alone model and every estimator on N
freshly generated images per class instead of the held-out split (the held-out accuracies are kept
too, and the seed-vs-seed τ on them is reported next to the one on the test set — how much of the
stand-alone noise is the evaluation's).

Full run (about 1 h 45 min on 2 CPU cores: 40 stand-alone runs of 60 epochs, ~4 min each, in 2
parallel jobs — 80 min —, then the supernet at ~290 images/s on 2 threads, 18 min; the recorded result
is in ``benchmarks/results/supernet_ranking/``; 30 epochs left the smaller models far from converged,
so the ranking measured speed of convergence more than accuracy)::

    python benchmarks/supernet_ranking.py --jobs 2 --out benchmarks/results/supernet_ranking

Reduced end-to-end check (a few minutes)::

    python benchmarks/supernet_ranking.py --archs 4 --data builtin:40 --supernet-epochs 1 \\
        --standalone-epochs 1 --batch-size 32 --out /tmp/ranking-smoke
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from scipy import stats

from nas.cost import count_macs, count_params
from nas.data import BUILTIN_SEED, Dataset, DatasetSource, render_cached
from nas.model import build_model
from nas.space import coarse_space, load_space, sample_distinct
from nas.spec import parse_arch
from nas.supernet import (
    SAMPLERS,
    SANDWICH_OPS,
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

HERE = Path(__file__).resolve().parent
console = Console(highlight=False)


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--space", default=str(HERE / "ranking_space.toml"), help="space name or .toml")
    p.add_argument("--data", default="builtin:500", help="builtin[:N], .npz or image folder")
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--archs", type=int, default=20, help="sampled architectures")
    p.add_argument(
        "--phase",
        default="joint",
        choices=["joint", "coarse"],
        help="sample the joint space, or its coarse stage (widths and depths, every block the coarse "
        "block: what stage 1 of the two-stage search ranks); the supernet is trained in that phase",
    )
    p.add_argument(
        "--standalone-only",
        action="store_true",
        help="stop after the stand-alone trainings (e.g. to add seeds; see ranking_truth.py)",
    )
    p.add_argument("--supernet-epochs", type=int, default=60)
    p.add_argument("--standalone-epochs", type=int, default=60)
    p.add_argument(
        "--standalone-seeds",
        type=int,
        default=2,
        help="train every arch this many times (seeds seed, seed+1, …); the truth is the mean and the "
        "seed-to-seed τ is the noise ceiling of any estimator",
    )
    p.add_argument("--sampler", default="sandwich", choices=list(SAMPLERS))
    p.add_argument(
        "--random-subnets",
        type=int,
        default=2,
        help="sandwich: random subnets per step besides the largest and smallest; uniform: subnets per step",
    )
    p.add_argument("--no-distill", action="store_true", help="sandwich: no in-place distillation from the largest")
    p.add_argument(
        "--sandwich-ops",
        default="extreme",
        choices=list(SANDWICH_OPS),
        help="sandwich: block variants of the pinned largest/smallest members (random: drawn each step)",
    )
    p.add_argument(
        "--kernel-transform",
        action="store_true",
        help="supernet: Once-for-All kernel transformation (learned 9×9 map from the 5×5 centre to 3×3)",
    )
    p.add_argument(
        "--split",
        default=None,
        metavar="DECISION",
        help="few-shot: one supernet per option of this width/depth decision (e.g. stage1.channels; "
        "several, comma-separated: one per combination), each "
        "trained --supernet-epochs on its members (OUT/supernet.json names them); members are scored "
        "by the shot that holds them",
    )
    p.add_argument(
        "--init-epochs",
        type=int,
        default=0,
        metavar="N",
        help="with --split: first train the one-shot supernet OUT/supernet.pt for N epochs, then start every "
        "shot from its weights (few-shot NAS's transfer); the one-shot supernet is scored too",
    )
    p.add_argument(
        "--shot-lr",
        type=float,
        default=None,
        help="with --init-epochs: peak learning rate of the shots (default: --lr)",
    )
    p.add_argument(
        "--finetune-epochs",
        type=int,
        default=0,
        help="also score every arch after this many epochs of fine-tuning from the inherited weights",
    )
    p.add_argument(
        "--test-per-class",
        type=int,
        default=0,
        help="builtin data: score stand-alone models and estimators on this many freshly generated "
        "test images per class instead of the held-out split (less evaluation noise)",
    )
    p.add_argument(
        "--compare-supernet",
        action="append",
        default=[],
        metavar="CKPT",
        help="also score the archs with this supernet checkpoint (repeatable; e.g. a joint-space "
        "supernet on --phase coarse archs): rows 'supernet CKPT' and 'supernet+macs CKPT'",
    )
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=4e-3)
    p.add_argument("--proxy", default="zen", help="training-free proxy estimator (make_estimator name)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (supernet and estimators)")
    p.add_argument("--jobs", type=int, default=1, help="stand-alone trainings in parallel (one torch thread each)")
    p.add_argument("--out", default=str(HERE / "results" / "ranking"))
    return p.parse_args(argv)


def _sample_archs(space, n: int, seed: int, path: Path) -> list[str]:
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


def _standalone(
    a: argparse.Namespace, archs: list[str], data: Dataset, test: Dataset | None, seeds: list[int], cache: Path
) -> dict[tuple[str, int], dict]:
    """Train every (arch, seed) not yet in ``cache`` with the benchmark's budget; all rows by key."""
    done = read_lines(cache)

    def key(sd: int) -> dict:
        test = {"test_per_class": a.test_per_class} if a.test_per_class > 0 else {}  # older caches have none
        return {
            "epochs": a.standalone_epochs,
            "batch_size": a.batch_size,
            "lr": a.lr,
            "data": a.data,
            "resolution": a.resolution,
            "seed": sd,
            "recipe": "adamw-cosine-zero-classifier",
            **test,
        }

    todo = [(s, sd) for sd in seeds for s in archs if done.get((s, sd), {}).get("budget") != key(sd)]
    console.print(f"stand-alone: {len(todo)} of {len(archs) * len(seeds)} trainings to run, {a.jobs} at a time")
    t0 = time.perf_counter()

    def record(i: int, s: str, sd: int, row: dict) -> None:
        row["budget"] = key(sd)
        _append_line(cache, row)
        done[(s, sd)] = row
        console.print(
            f"  stand-alone {i}/{len(todo)} (seed {sd}): acc {row['val_acc']:.3f}"
            + (f" (test {row['test_acc']:.3f})" if "test_acc" in row else "")
            + f", {row['macs'] / 1e6:.1f} M MACs, "
            f"{row['images_per_s']:.0f} img/s, {row['seconds']:.0f} s; {time.perf_counter() - t0:.0f} s so far"
        )

    args = (a.standalone_epochs, a.batch_size, a.lr)
    if a.jobs <= 1:
        for i, (s, sd) in enumerate(todo, 1):
            record(i, s, sd, train_one(s, data, test, *args, sd))
        return done
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        a.jobs, mp_context=ctx, initializer=_worker_init, initargs=(a.data, a.resolution, a.seed, a.test_per_class)
    ) as ex:
        futs = {ex.submit(_worker_train, s, *args, sd): (s, sd) for s, sd in todo}
        for i, f in enumerate(as_completed(futs), 1):
            s, sd = futs[f]
            record(i, s, sd, f.result())
    return done


def _finetuned(
    sn: SupernetEstimator | FewShotEstimator, arch, data: Dataset, scored: Dataset, a: argparse.Namespace
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


def mean_corr(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    """Mean (τ, ρ) over several comparisons."""
    return float(np.mean([p[0] for p in pairs])), float(np.mean([p[1] for p in pairs]))


def seed_vs_seed(per_seed: np.ndarray) -> tuple[float, float]:
    """Mean (τ, ρ) of every pair of rows (one row of accuracies per seed)."""
    k = len(per_seed)
    return mean_corr([corr(per_seed[i], per_seed[j]) for i in range(k) for j in range(i + 1, k)])


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


def corr(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return float("nan"), float("nan")
    return float(stats.kendalltau(x[ok], y[ok]).statistic), float(stats.spearmanr(x[ok], y[ok]).statistic)


def main(argv: list[str] | None = None) -> int:
    a = _args(argv)
    if (a.init_epochs or a.shot_lr) and not a.split:
        raise SystemExit(
            "--init-epochs/--shot-lr: only with --split (they start the few-shot supernets from a one-shot one)"
        )
    if a.threads:
        torch.set_num_threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    space = load_space(a.space)
    space = coarse_space(space) if a.phase == "coarse" else space
    data = load_data(a.data, a.resolution, seed=a.seed)
    test = test_data(data, a.data, a.test_per_class)
    scored = test or data  # the split every model and estimator is scored on
    console.print(
        f"[bold]ranking benchmark[/bold]: space {space}, {data.describe()}, {a.archs} archs"
        + ("" if test is None else f"; scored on {len(test.val_y)} fresh test images")
    )
    console.print(
        f"supernet: {a.sampler}, {a.supernet_epochs} epochs; stand-alone: {a.standalone_epochs} epochs each; "
        f"batch {a.batch_size}, AdamW lr {a.lr}; torch threads {torch.get_num_threads()}"
    )

    # 1. architectures
    archs = _sample_archs(space, a.archs, a.seed + 1, out / "archs.json")

    # 2. stand-alone training
    seeds = [a.seed + k for k in range(a.standalone_seeds)]
    done = _standalone(a, archs, data, test, seeds, out / "standalone.jsonl")
    if a.standalone_only:
        metric = "val_acc" if test is None else "test_acc"
        per_seed = np.asarray([[done[(s, sd)][metric] for s in archs] for sd in seeds])
        noise = f"; seed vs seed τ {seed_vs_seed(per_seed)[0]:.3f}" if len(seeds) > 1 else ""
        console.print(f"stand-alone: {len(archs)} archs × {len(seeds)} seeds in {out / 'standalone.jsonl'}{noise}")
        return 0

    # 3. supernet
    distill = a.sampler == "sandwich" and not a.no_distill
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
    train_kw = dict(
        data_spec=a.data,
        split_seed=a.seed,
        on_epoch=lambda h: console.print(
            f"  supernet epoch {h['epoch']}: loss {h['loss']:.3f} train acc {h['train_acc']:.3f} "
            f"{h['images_per_s']:.0f} img/s" + "".join(f" {k} {v:.3f}" for k, v in h.items() if k.startswith("val_acc"))
        ),
    )
    if a.split:
        ckpt = out / "supernet.json"
        init_from = None
        if a.init_epochs > 0:
            init_from = out / "supernet.pt"
            console.print(f"one-shot start: {a.init_epochs} epochs -> {init_from}")
            a.init_epochs = train_supernet(
                space, data, init_from, dataclasses.replace(cfg, epochs=a.init_epochs), **train_kw
            ).epochs_done  # what the shots start from, if it already held more
            a.compare_supernet.append(str(init_from))
            cfg = dataclasses.replace(cfg, lr=a.shot_lr or a.lr)
        few = train_few_shot(
            space,
            data,
            ckpt,
            cfg,
            split=a.split,
            init_from=init_from,
            **train_kw,
            on_shot=lambda k, n, label, p: console.print(f"shot {k + 1}/{n}: {label} -> {p}"),
        )
        shot_results = list(few.shots.values())
    else:
        ckpt = out / "supernet.pt"
        shot_results = [train_supernet(space, data, ckpt, cfg, **train_kw)]
    sn_hist = [h for r in shot_results for h in r.history]
    sn_epochs = min(r.epochs_done for r in shot_results)
    # The shots train one after the other, so the few-shot rate is the mean over all their epochs.
    sn_ips = float(np.mean([h["images_per_s"] for h in sn_hist]))
    console.print(
        f"supernet: {sn_epochs} epochs ({time.perf_counter() - t0:.0f} s this run), {sn_ips:.0f} images/s"
        + (f", {len(shot_results)} shots on {a.split}" if a.split else "")
    )

    # 4. estimators
    archs_spec = [parse_arch(s) for s in archs]
    t = time.perf_counter()
    sn = load_supernet_estimator(ckpt, data=scored)
    sn_scores = sn.score(archs_spec)
    sn_seconds = (time.perf_counter() - t) / len(archs)
    t = time.perf_counter()
    combined = SupernetMacsEstimator(ckpt, supernet=sn)
    combined_scores = combined.score(archs_spec)
    combined_seconds = time.perf_counter() - t  # mostly the one-off reference sample
    compared = {}  # --compare-supernet path -> (supernet scores, supernet+macs scores)
    for ck in a.compare_supernet:
        other = SupernetEstimator(ck, data=scored)
        compared[ck] = (other.score(archs_spec), SupernetMacsEstimator(ck, supernet=other).score(archs_spec))
    ft_scores, ft_seconds = None, 0.0
    if a.finetune_epochs > 0:
        t = time.perf_counter()
        ft_scores = np.asarray([_finetuned(sn, x, data, scored, a) for x in archs_spec])
        ft_seconds = (time.perf_counter() - t) / len(archs)
    t = time.perf_counter()
    proxy = make_estimator(a.proxy)
    proxy_scores = proxy.score(archs_spec)
    proxy_seconds = (time.perf_counter() - t) / len(archs)
    params_scores = make_estimator("params").score(archs_spec)
    macs_scores = np.asarray([count_macs(x) for x in archs_spec], dtype=float)
    metric = "val_acc" if test is None else "test_acc"
    per_seed = np.asarray([[done[(s, sd)][metric] for s in archs] for sd in seeds])
    truth = per_seed.mean(axis=0)

    # 5. report
    rows = []
    for s, acc, sc, px, pr in zip(archs, truth, sn_scores, proxy_scores, params_scores, strict=True):
        extra = {} if ft_scores is None else {"finetuned_acc": float(ft_scores[len(rows)])}
        for name, (o_sn, o_comb) in compared.items():
            extra |= {
                f"supernet_acc[{name}]": float(o_sn[len(rows)]),
                f"supernet_macs[{name}]": float(o_comb[len(rows)]),
            }
        rows.append(
            {
                "arch": s,
                "standalone_acc": acc,
                "supernet_acc": sc,
                "supernet_macs": float(combined_scores[len(rows)]),
                **extra,
                f"{proxy.name}": px,
                "log10_params": pr,
                "macs": done[(s, seeds[0])]["macs"],
                "params": done[(s, seeds[0])]["params"],
                **{f"standalone_acc_seed{sd}": float(per_seed[k][len(rows)]) for k, sd in enumerate(seeds)},
            }
        )
    with open(out / "ranking.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    results = {
        "supernet": corr(sn_scores, truth),
        proxy.name: corr(proxy_scores, truth),
        "params": corr(params_scores, truth),
        "macs": corr(macs_scores, truth),
        # Equal-weight rank average: the supernet's and the MAC count's errors run in opposite
        # directions on this space (5×5/e4/start-DW share vs width), so their mean rank is a check of
        # how complementary they are, not a fitted model.
        "supernet + MACs (mean rank)": corr(stats.rankdata(sn_scores) + stats.rankdata(macs_scores), truth),
        # What a search gets: the same combination with ranks taken in the estimator's reference sample.
        "supernet+macs estimator": corr(combined_scores, truth),
    }
    if ft_scores is not None:
        results[f"supernet + {a.finetune_epochs}-epoch fine-tune"] = corr(ft_scores, truth)
    compared_rows = []
    for name, pair in compared.items():
        for kind, scores in zip(("supernet", "supernet+macs"), pair, strict=True):
            compared_rows.append(f"{kind} {name}")
            results[compared_rows[-1]] = corr(np.asarray(scores), truth)
    if len(seeds) > 1:
        # How well one stand-alone run ranks like another: the ceiling for any estimator on this budget.
        results["stand-alone, seed vs seed"] = seed_vs_seed(per_seed)
        ceiling = perfect_ceiling(per_seed, a.seed)
        results[f"perfect estimator vs the {len(seeds)}-seed mean (simulated)"] = (ceiling["tau"], ceiling["rho"])
        if test is not None:  # the same models scored on the smaller held-out split: how much is evaluation noise
            val = np.asarray([[done[(s, sd)]["val_acc"] for s in archs] for sd in seeds])
            results["stand-alone, seed vs seed on the held-out split"] = seed_vs_seed(val)
    else:
        ceiling = None
    if len(seeds) >= 4:
        # The mean of half the seeds against the mean of the other half (every split): how well a
        # perfect estimator of the expected accuracy could rank against a truth averaged over that
        # many seeds (a lower bound for the full mean, which is less noisy still).
        halves = [h for h in itertools.combinations(range(len(seeds)), len(seeds) // 2) if 0 in h]
        rest = [tuple(k for k in range(len(seeds)) if k not in h) for h in halves]
        pairs = [corr(per_seed[list(h)].mean(0), per_seed[list(r)].mean(0)) for h, r in zip(halves, rest)]
        results["stand-alone, half vs half"] = mean_corr(pairs)
    sa_ips = float(np.mean([done[(s, sd)]["images_per_s"] for s in archs for sd in seeds]))
    summary = {
        "space": space.name,
        "phase": space.phase,
        "data": data.describe(),
        "scored_on": f"{len(scored.val_y)} {'fresh test' if test is not None else 'held-out'} images",
        "archs": len(archs),
        "standalone": {
            "epochs": a.standalone_epochs,
            "batch_size": a.batch_size,
            "lr": a.lr,
            "seeds": seeds,
            "acc_min": float(truth.min()),
            "acc_max": float(truth.max()),
            "spread_points": float(100 * (truth.max() - truth.min())),
            "images_per_s": sa_ips,
        },
        "supernet": {
            "sampler": a.sampler,
            "epochs": sn_epochs,
            "images_per_s": sn_ips,
            "few_shot_split": a.split,
            "shots": len(shot_results),
            "init_epochs": a.init_epochs or None,
            "shot_lr": (a.shot_lr or a.lr) if a.split else None,
            "random_subnets": a.random_subnets,
            "distill": distill,
            "sandwich_ops": a.sandwich_ops if a.sampler == "sandwich" else None,
            "kernel_transform": a.kernel_transform,
            "subnets_per_step": sn_hist[-1]["subnets_per_step"],
            "seconds_per_arch_estimate": sn_seconds,
            "bn_calibration_images": sum(len(b) for b in sn.calib),
        },
        "finetune": None
        if ft_scores is None
        else {"epochs": a.finetune_epochs, "lr": a.lr / 2, "seconds_per_arch": ft_seconds},
        "compared_supernets": list(a.compare_supernet),
        "perfect_estimator_ceiling": ceiling,
        "proxy_seconds_per_arch": proxy_seconds,
        "supernet_macs": {"reference_members": combined.n_ref, "seconds_with_reference": combined_seconds},
        "kendall_tau": {k: v[0] for k, v in results.items()},
        "spearman_rho": {k: v[1] for k, v in results.items()},
        "torch_threads": torch.get_num_threads(),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))

    table = Table(
        title=f"ranking vs stand-alone training ({len(archs)} archs, accuracy spread "
        f"{summary['standalone']['spread_points']:.1f} points)"
    )
    for col in ("estimator", "Kendall τ", "Spearman ρ", "s / arch"):
        table.add_column(col, justify="right" if col != "estimator" else "left")
    recipe = a.sampler + (", no distillation" if a.sampler == "sandwich" and not distill else "")
    recipe += ", random ops" if a.sampler == "sandwich" and a.sandwich_ops == "random" else ""
    recipe += ", kernel transform" if a.kernel_transform else ""
    recipe += f", {len(shot_results)} shots on {a.split}" if a.split else ""
    recipe += f" after {a.init_epochs} one-shot ep" if a.split and a.init_epochs else ""
    table.add_row(
        f"supernet ({recipe}, {sn_epochs} ep)",
        f"{results['supernet'][0]:.3f}",
        f"{results['supernet'][1]:.3f}",
        f"{sn_seconds:.2f}",
    )
    if ft_scores is not None:
        r = results[f"supernet + {a.finetune_epochs}-epoch fine-tune"]
        table.add_row(
            f"supernet + {a.finetune_epochs}-epoch fine-tune", f"{r[0]:.3f}", f"{r[1]:.3f}", f"{ft_seconds:.2f}"
        )
    table.add_row(proxy.name, f"{results[proxy.name][0]:.3f}", f"{results[proxy.name][1]:.3f}", f"{proxy_seconds:.2f}")
    table.add_row("log10 params", f"{results['params'][0]:.3f}", f"{results['params'][1]:.3f}", "0")
    table.add_row("MACs", f"{results['macs'][0]:.3f}", f"{results['macs'][1]:.3f}", "0")
    r = results["supernet + MACs (mean rank)"]
    table.add_row("supernet + MACs (mean rank)", f"{r[0]:.3f}", f"{r[1]:.3f}", f"{sn_seconds:.2f}")
    r = results["supernet+macs estimator"]
    table.add_row(
        f"supernet+macs:CKPT ({combined.n_ref}-member reference)",
        f"{r[0]:.3f}",
        f"{r[1]:.3f}",
        f"{combined_seconds / len(archs):.2f}",
    )
    for key in compared_rows:
        table.add_row(key, f"{results[key][0]:.3f}", f"{results[key][1]:.3f}", "")
    if len(seeds) > 1:
        r = results["stand-alone, seed vs seed"]
        table.add_row("stand-alone, seed vs seed (noise ceiling)", f"{r[0]:.3f}", f"{r[1]:.3f}", "")
    if "stand-alone, seed vs seed on the held-out split" in results:
        r = results["stand-alone, seed vs seed on the held-out split"]
        table.add_row(f"  the same, scored on the {len(data.val_y)} held-out images", f"{r[0]:.3f}", f"{r[1]:.3f}", "")
    if ceiling is not None:
        table.add_row(
            f"a perfect estimator vs the {len(seeds)}-seed mean (simulated; 5-95%: "
            f"{ceiling['tau_p5']:.2f}-{ceiling['tau_p95']:.2f})",
            f"{ceiling['tau']:.3f}",
            f"{ceiling['rho']:.3f}",
            "",
        )
    if "stand-alone, half vs half" in results:
        r = results["stand-alone, half vs half"]
        table.add_row(
            f"stand-alone, mean of {len(seeds) // 2} seeds vs the other {len(seeds) - len(seeds) // 2}",
            f"{r[0]:.3f}",
            f"{r[1]:.3f}",
            "",
        )
    console.print(table)
    console.print(
        f"stand-alone accuracy {truth.min():.3f}-{truth.max():.3f}; training throughput: supernet "
        f"{sn_ips:.0f} images/s ({summary['supernet']['subnets_per_step']} subnets/step), stand-alone "
        f"{sa_ips:.0f} images/s (mean over archs); wrote {out / 'ranking.csv'} and {out / 'summary.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
