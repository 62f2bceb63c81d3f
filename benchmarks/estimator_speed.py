"""Candidates per second of each accuracy estimator, measured in one run.

* ``zen`` — the default training-free proxy (64 px);
* ``supernet, before`` — what ``supernet:CKPT`` did per member before the batched scorer: extract the
  subnet, recalibrate its BatchNorm on the calibration images, evaluate it on the held-out split,
  NCHW tensors (``nas.supernet.subnet_accuracy``, which the training loop still uses);
* ``supernet, one per call`` — the estimator now, called with one member at a time (as the optuna
  engine calls it): channels-last, BatchNorm folded for the evaluation, the stem's outputs kept, no
  sharing between members;
* ``supernet, batched`` — the estimator with ``--archs`` members per call (as ``fit-predictor``,
  ``supernet+macs`` and TuNAS's rescoring call it): their common layers also run once;
* ``supernet, batched, sharing only`` — the same in NCHW without folding (what the sharing alone gives);
* ``predictor`` — ``predictor:PRED`` fitted on ``--predictor-n`` members scored by the supernet,
  scoring ``--predictor-archs`` members given as ``ArchSpec`` (encoding included) and as encodings.

Every supernet variant recalibrates on the same 4096 training images (fewer if the data set is
smaller) and evaluates the same held-out split. Without ``--checkpoint`` a tiny supernet is trained
first (``benchmarks/ranking_space.toml``, ``builtin:200``, 24 px, 2 epochs, about a minute on 2 cores):
its accuracies sit near chance, but the speed does not depend on the weights.

Timing: ``--threads`` torch threads (default 1), the variants interleaved over ``--rounds`` rounds,
each round a fresh sample of ``--archs`` members shared by all variants; per-candidate CPU time of
this process (``time.process_time``: on a shared machine less sensitive to other load than wall time)
and wall time, medians over the rounds; the load average is printed with them. Agreement: the largest
difference between the accuracies before and after, and how many members differ at all::

    python benchmarks/estimator_speed.py                         # tiny supernet, trained first
    python benchmarks/estimator_speed.py --checkpoint supernet.pt --archs 32 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from nas.space import decode, load_space, sample_distinct, sample_vectors
from nas.spec import ArchSpec
from nas.supernet import (
    SubnetScorer,
    SupernetEstimator,
    TrainConfig,
    fit_predictor,
    load_data,
    make_estimator,
    subnet_accuracy,
    train_supernet,
)

HERE = Path(__file__).resolve().parent
console = Console(highlight=False, width=160)


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", default=None, help="supernet checkpoint (default: train a tiny one first)")
    p.add_argument("--archs", type=int, default=16, help="members per round (and per batched call)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--predictor-n", type=int, default=96, help="members the predictor is fitted on")
    p.add_argument("--predictor-archs", type=int, default=20000, help="members the predictor scores per repeat")
    p.add_argument("--work", default="/tmp/mnv4nas-estimator-speed", help="folder of the tiny supernet")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the results as JSON")
    return p.parse_args(argv)


def _tiny_supernet(work: Path) -> Path:
    path = work / "tiny-supernet.pt"
    space = load_space(HERE / "ranking_space.toml")
    data = load_data("builtin:200", 24)
    console.print(f"no --checkpoint: training a tiny supernet ({space.name}, {data.describe()}, 2 epochs) -> {path}")
    train_supernet(space, data, path, TrainConfig(epochs=2, batch_size=128, eval_every=0), data_spec="builtin:200")
    return path


def _timed(fn: Callable[[], np.ndarray]) -> tuple[np.ndarray, float, float]:
    c, w = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - c, time.perf_counter() - w


def _supernet_variants(est: SupernetEstimator) -> dict[str, Callable[[Sequence[ArchSpec]], np.ndarray]]:
    sn, data, calib = est.supernet, est.data, est.calib
    cl = SubnetScorer(sn, data, calib)
    nchw = SubnetScorer(sn, data, calib, channels_last=False, fold_bn=False)
    return {
        "supernet, before (one at a time, NCHW)": lambda archs: np.asarray(
            [subnet_accuracy(sn, a, data, calib) for a in archs]
        ),
        "supernet, one per call": lambda archs: np.asarray([cl([a])[0] for a in archs]),
        "supernet, batched": cl,
        "supernet, batched, sharing only": nchw,
    }


def main(argv: list[str] | None = None) -> int:
    a = _args(argv)
    torch.set_num_threads(a.threads)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    ckpt = Path(a.checkpoint) if a.checkpoint else _tiny_supernet(work)
    est = SupernetEstimator(ckpt)
    space = est.search_space
    n_cal = sum(len(b) for b in est.calib)
    console.print(
        f"supernet {ckpt}: {space}, {est.meta['resolution']} px; BatchNorm on {n_cal} images, "
        f"{len(est.data.val_y)} held-out images; torch threads {a.threads}; load {os.getloadavg()}"
    )
    variants = {"zen": make_estimator("zen").score, **_supernet_variants(est)}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    wall: dict[str, list[float]] = {k: [] for k in variants}
    diffs, differ = [], 0
    rng = np.random.default_rng(0)
    for r in range(a.rounds):
        archs = sample_distinct(space, rng, a.archs)
        got = {}
        for name, fn in variants.items():
            got[name], c, w = _timed(lambda fn=fn, archs=archs: fn(archs))
            cpu[name].append(c / len(archs))
            wall[name].append(w / len(archs))
        before = got["supernet, before (one at a time, NCHW)"]
        for name in ("supernet, one per call", "supernet, batched", "supernet, batched, sharing only"):
            diffs.append(float(np.abs(got[name] - before).max()))
            differ += int(np.sum(got[name] != before))
        console.print(
            f"round {r + 1}/{a.rounds}: " + ", ".join(f"{k} {cpu[k][-1]:.3f}" for k in variants) + " CPU s/candidate"
        )

    t = time.perf_counter()
    pred = fit_predictor(est, a.predictor_n, seed=1)
    fit_s = time.perf_counter() - t
    vecs = sample_vectors(space, np.random.default_rng(2), a.predictor_archs)
    members = [decode(space, v) for v in vecs]
    for name, fn in (
        ("predictor (ArchSpec in, encoding included)", lambda: pred.score(members)),
        ("predictor (encodings in)", lambda: pred.score_encoded(vecs)),
    ):
        cpu[name], wall[name] = [], []
        for _ in range(5):
            _, c, w = _timed(fn)
            cpu[name].append(c / len(vecs))
            wall[name].append(w / len(vecs))

    base = statistics.median(cpu["supernet, before (one at a time, NCHW)"])
    table = Table(
        title=f"candidates per second ({a.archs} members × {a.rounds} rounds; predictor: "
        f"{a.predictor_archs} members × 5; torch threads {a.threads})"
    )
    for col in ("estimator", "CPU s / candidate", "candidates / CPU s", "candidates / s (wall)", "vs before (CPU)"):
        table.add_column(col, justify="left" if col == "estimator" else "right")
    rows = {}
    for name in cpu:
        c, w = statistics.median(cpu[name]), statistics.median(wall[name])
        rows[name] = {"cpu_s_per_candidate": c, "per_cpu_s": 1 / c, "per_wall_s": 1 / w, "speedup_vs_before": base / c}
        table.add_row(name, f"{c:.4g}", f"{1 / c:,.1f}", f"{1 / w:,.1f}", f"{base / c:.2f}x")
    console.print(table)
    held = pred.record["fit"]["heldout"]
    console.print(
        f"accuracies after vs before: largest difference {max(diffs):.4f}, {differ} of "
        f"{3 * a.rounds * a.archs} (member, variant) pairs differ at all"
    )
    console.print(
        f"predictor: fitted on {pred.record['fit']['n']} members in {fit_s:.0f} s (scoring included); held-out "
        f"Kendall τ {held['kendall_tau']}, RMSE {held['rmse']:.4f}; load {os.getloadavg()}"
    )
    if a.json:
        Path(a.json).write_text(
            json.dumps(
                {
                    "checkpoint": str(ckpt),
                    "threads": a.threads,
                    "archs": a.archs,
                    "rounds": a.rounds,
                    "calibration_images": n_cal,
                    "heldout_images": len(est.data.val_y),
                    "rows": rows,
                    "max_abs_accuracy_difference": max(diffs),
                    "differing": differ,
                    "predictor_fit": pred.record["fit"],
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
