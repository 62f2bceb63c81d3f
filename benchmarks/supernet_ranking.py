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
import sys
from pathlib import Path

from ranking import (
    Truth,
    print_standalone,
    report,
    sample_archs,
    score_estimators,
    setup,
    train_standalone,
    train_supernets,
)

from nas.supernet import SAMPLERS, SANDWICH_OPS

HERE = Path(__file__).resolve().parent


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
    _supernet_options(p)  # --sampler … --compare-supernet
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=4e-3)
    p.add_argument("--proxy", default="zen", help="training-free proxy estimator (make_estimator name)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (supernet and estimators)")
    p.add_argument("--jobs", type=int, default=1, help="stand-alone trainings in parallel (one torch thread each)")
    p.add_argument("--out", default=str(HERE / "results" / "ranking"))
    return p.parse_args(argv)


def _supernet_options(p: argparse.ArgumentParser) -> None:
    """The options of the supernet (its training, few-shot split) and of the estimators scored."""
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


def main(argv: list[str] | None = None) -> int:
    a = _args(argv)
    if (a.init_epochs or a.shot_lr) and not a.split:
        raise SystemExit(
            "--init-epochs/--shot-lr: only with --split (they start the few-shot supernets from a one-shot one)"
        )
    s = setup(a)  # torch threads, OUT, space, data

    # 1. architectures
    archs = sample_archs(s.space, a.archs, a.seed + 1, s.out / "archs.json")

    # 2. stand-alone training
    seeds = [a.seed + k for k in range(a.standalone_seeds)]
    done = train_standalone(s, archs, seeds)
    if a.standalone_only:
        print_standalone(s, archs, seeds, done)
        return 0

    # 3. supernet
    run = train_supernets(s)

    # 4. estimators
    scores = score_estimators(s, run.ckpt, archs)

    # 5. report
    report(s, Truth.of(s, archs, seeds, done), run, scores)
    return 0


if __name__ == "__main__":
    sys.exit(main())
