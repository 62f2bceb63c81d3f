"""Close the loop, measured (issue 22): does the search pay off, and does distillation pay off?

Both experiments run the user's commands (``mnv4-nas … --json`` in subprocesses), so they measure
what a user gets. Every step writes into ``--out`` and is skipped when its result is already there:
an interrupted run continues where it stopped.

``search``: *is the found model more accurate at no more latency?*

1. the budget is the reference model's predicted latency on ``--target`` (default MNv4-Conv-S on the
   Pixel 8 EdgeTPU), so the reference sits exactly at the budget — the nearest MNv4 model below it;
2. a supernet over the reference's space is trained on the data (``mnv4-nas supernet train``);
3. ``mnv4-nas search`` over that space under the budget, scored by the supernet;
4. the found architecture and the reference are trained with the same recipe, data and epochs, once
   per seed (``mnv4-nas train``); held-out top-1 of the saved (EMA) weights, mean ± sd over seeds,
   next to each model's predicted latency, parameters and MACs.

``distill``: *the same student on hard labels vs distilled from a stronger teacher, same steps.*

1. a teacher (default MNv4-Conv-M) is trained on the data (``mnv4-nas train``);
2. an offline store of ``--replicas`` augmented copies labelled by it (``mnv4-nas distill-data``,
   Inception crop + RandAugment, the paper's D1; with ``--mix`` also a mixup store, D2);
3. the student trained on hard labels for ``replicas × epochs`` epochs, and from the store for
   ``epochs`` epochs (the same number of steps); with ``--mix`` also from D1 + D2 mixed 1:1 for
   ``epochs / 2`` epochs (the mix holds twice the examples);
4. held-out top-1 mean ± sd over seeds, the gain in points, and the store's build time and speed.

Usage (each a few tens of minutes on 2 CPU cores; the recorded run is in
``benchmarks/results/close_the_loop/``)::

    python benchmarks/close_the_loop.py search --out benchmarks/results/close_the_loop/search
    python benchmarks/close_the_loop.py distill --out benchmarks/results/close_the_loop/distill

Reduced end-to-end check (a few minutes)::

    python benchmarks/close_the_loop.py search --out /tmp/ctl-s --data builtin:20 --epochs 1 --seeds 2 \\
        --supernet-epochs 1 --trials 4
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

EXE = shutil.which("mnv4-nas") or str(Path(sys.executable).with_name("mnv4-nas"))


def cli(*args: str, log: Path | None = None) -> dict[str, Any]:
    """``mnv4-nas ARGS --json``: its JSON document (exits with the command's stderr on failure)."""
    t0 = time.perf_counter()
    r = subprocess.run([EXE, *args, "--json"], capture_output=True, text=True)
    if log is not None:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"$ mnv4-nas {' '.join(args)} --json   # {time.perf_counter() - t0:.1f} s, exit {r.returncode}\n")
    if r.returncode:
        sys.exit(f"mnv4-nas {' '.join(args[:3])} … failed ({r.returncode}): {r.stderr.strip()[-800:]}")
    doc: dict[str, Any] = json.loads(r.stdout)
    doc["_wall_s"] = time.perf_counter() - t0
    return doc


def done_training(folder: Path) -> dict[str, Any] | None:
    """The run.json of a finished ``mnv4-nas train`` folder, else None."""
    run = folder / "run.json"
    if not run.is_file():
        return None
    doc: dict[str, Any] = json.loads(run.read_text())
    return doc if doc.get("results") and doc.get("epochs_done") == doc.get("recipe", {}).get("epochs") else None


def train(spec: str, out: Path, epochs: int, seed: int, log: Path, data: list[str], threads: int) -> dict[str, Any]:
    """One ``mnv4-nas train`` (skipped when ``out`` already holds the finished run)."""
    have = done_training(out)
    if have is None:
        cli(
            "train",
            spec,
            *data,
            "--epochs",
            str(epochs),
            "--seed",
            str(seed),
            "--threads",
            str(threads),
            "--out",
            str(out),
            log=log,
        )
        have = done_training(out)
        assert have is not None, out
    return have


def _acc(run: dict[str, Any]) -> float:
    r = run["results"]
    return float(r["val_acc_saved"] if r.get("val_acc_saved") is not None else r["val_acc"])


def _mean_sd(xs: list[float]) -> tuple[float, float]:
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else float("nan"))


def _model_facts(spec: str, target: str) -> dict[str, Any]:
    """Predicted latency on ``target``, parameters and MACs of a spec (at its deployment resolution)."""
    from nas.cost import count_macs, count_params
    from nas.latency import load_predictor
    from nas.spec import load_spec_file
    from nas.zoo import ZOO, get_spec

    arch = get_spec(spec) if spec in ZOO else load_spec_file(spec)
    ms = float(load_predictor(target).predict_archs([arch]).latency_ms[0])
    return {"latency_ms": ms, "params": count_params(arch), "macs": count_macs(arch), "arch": arch.arch}


def _train_data(args: argparse.Namespace) -> list[str]:
    return [
        "--data",
        args.data,
        "--resolution",
        str(args.resolution),
        "--batch-size",
        str(args.batch_size),
        "--lr",
        str(args.lr),
    ]


# ----------------------------------------------------------------------------------------------
# search pays off
# ----------------------------------------------------------------------------------------------


def run_search(args: argparse.Namespace) -> dict[str, Any]:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    log = out / "commands.log"
    ref = _model_facts(args.reference, args.target)
    budget = f"{ref['latency_ms']:.6f}ms"
    space = args.space or args.reference
    ckpt = out / "supernet.pt"
    if not ckpt.is_file() or not (out / "supernet.done").is_file():
        cli(
            "supernet",
            "train",
            "--space",
            space,
            "--data",
            args.data,
            "--resolution",
            str(args.resolution),
            "--lr",
            str(args.lr),
            "--epochs",
            str(args.supernet_epochs),
            "--threads",
            str(args.threads),
            "--out",
            str(ckpt),
            log=log,
        )
        (out / "supernet.done").write_text("")
    found_dir = out / "search"
    best = found_dir / "best.json"
    if not best.is_file():
        trials = ["--trials", str(args.trials)] if args.trials else []
        # torch's CPU threads for the estimator (OMP_NUM_THREADS is read when torch starts)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
        cli(
            "search",
            "--space",
            space,
            "--target",
            args.target,
            "--budget",
            budget,
            "--estimator",
            f"supernet:{ckpt}",
            "--out",
            str(found_dir),
            "--seed",
            "0",
            *trials,
            log=log,
        )
    models = {"found": str(best), args.reference: args.reference}
    rows = []
    for label, spec in models.items():
        runs = [
            train(
                spec,
                out / f"train-{label.replace('/', '_')}-s{s}",
                args.epochs,
                s,
                log,
                _train_data(args),
                args.threads,
            )
            for s in range(args.seeds)
        ]
        accs = [_acc(r) for r in runs]
        m, sd = _mean_sd(accs)
        facts = _model_facts(spec, args.target)
        rows.append(
            {
                "model": label,
                "top1_mean": m,
                "top1_sd": sd,
                "top1_seeds": accs,
                **facts,
                "train_images_per_s": statistics.median(r["results"]["images_per_s"] for r in runs),
            }
        )
    summary = {
        "experiment": "search",
        "target": args.target,
        "budget_ms": ref["latency_ms"],
        "space": space,
        "data": args.data,
        "resolution": args.resolution,
        "epochs": args.epochs,
        "seeds": args.seeds,
        "lr": args.lr,
        "supernet_epochs": args.supernet_epochs,
        "rows": rows,
    }
    _write(out, summary, _search_table(summary))
    return summary


def _search_table(s: dict[str, Any]) -> str:
    lines = [
        f"Search pays off? {s['space']} on {s['target']}, budget {s['budget_ms']:.3f} ms (the reference's latency); "
        f"{s['data']} at {s['resolution']} px, {s['epochs']} epochs, lr {s.get('lr')}, {s['seeds']} seeds, supernet "
        f"{s['supernet_epochs']} epochs",
        "",
        "| model | held-out top-1 (mean ± sd) | seeds | latency (ms) | params | MACs |",
        "|---|---|---|---|---|---|",
    ]
    for r in s["rows"]:
        seeds = ", ".join(f"{100 * a:.2f}" for a in r["top1_seeds"])
        lines.append(
            f"| {r['model']} | {100 * r['top1_mean']:.2f} ± {100 * r['top1_sd']:.2f} | {seeds} | "
            f"{r['latency_ms']:.3f} | {r['params'] / 1e6:.2f} M | {r['macs'] / 1e6:.0f} M |"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# distillation pays off
# ----------------------------------------------------------------------------------------------


def _store(out: Path, teacher: Path, aug: str, args: argparse.Namespace, log: Path) -> dict[str, Any]:
    summary = out / f"store-{aug}.json"
    if summary.is_file():
        return dict(json.loads(summary.read_text()))
    doc = cli(
        "distill-data",
        "--teacher",
        str(teacher),
        "--data",
        args.data,
        "--resolution",
        str(args.resolution),
        "--aug",
        aug,
        "--replicas",
        str(args.replicas),
        "--out",
        str(out / f"store-{aug}"),
        "--threads",
        str(args.threads),
        log=log,
    )
    summary.write_text(json.dumps(doc, indent=1))
    return doc


def run_distill(args: argparse.Namespace) -> dict[str, Any]:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    log = out / "commands.log"
    data = _train_data(args)
    teacher = out / "teacher"
    t_run = train(args.teacher, teacher, args.teacher_epochs, 0, log, data, args.threads)
    stores = {"inception-randaug": _store(out, teacher, "inception-randaug", args, log)}
    if args.mix:
        stores["mixup"] = _store(out, teacher, "mixup", args, log)
    arms: dict[str, tuple[list[str], int]] = {
        "hard labels": (data, args.replicas * args.epochs),
        "distilled (D1)": (
            [
                "--distill",
                str(out / "store-inception-randaug"),
                "--batch-size",
                str(args.batch_size),
                "--lr",
                str(args.lr),
            ],
            args.epochs,
        ),
    }
    if args.mix:
        arms["distilled (D1 + D2, 1:1)"] = (
            [
                "--distill",
                f"{out / 'store-inception-randaug'}:1",
                "--distill",
                f"{out / 'store-mixup'}:1",
                "--batch-size",
                str(args.batch_size),
                "--lr",
                str(args.lr),
            ],
            max(1, args.epochs // 2),
        )
    slugs = {"hard labels": "hard", "distilled (D1)": "d1", "distilled (D1 + D2, 1:1)": "d1d2"}
    rows = []
    for label, (src, epochs) in arms.items():
        slug = slugs[label]
        runs = []
        for s in range(args.seeds):
            folder = out / f"student-{slug}-s{s}"
            have = done_training(folder)
            if have is None:
                cli(
                    "train",
                    args.student,
                    *src,
                    "--epochs",
                    str(epochs),
                    "--seed",
                    str(s),
                    "--threads",
                    str(args.threads),
                    "--out",
                    str(folder),
                    log=log,
                )
                have = done_training(folder)
            assert have is not None
            runs.append(have)
        accs = [_acc(r) for r in runs]
        m, sd = _mean_sd(accs)
        res0 = runs[0]["results"]
        images = round(res0["images_per_s"] * res0["seconds"])  # the same number of steps in every arm
        rows.append(
            {
                "arm": label,
                "epochs": epochs,
                "top1_mean": m,
                "top1_sd": sd,
                "top1_seeds": accs,
                "images_seen": images,
                "train_s": statistics.median(r["results"]["seconds"] for r in runs),
            }
        )
    summary = {
        "experiment": "distill",
        "teacher": args.teacher,
        "teacher_top1": _acc(t_run),
        "teacher_epochs": args.teacher_epochs,
        "student": args.student,
        "data": args.data,
        "lr": args.lr,
        "resolution": args.resolution,
        "replicas": args.replicas,
        "seeds": args.seeds,
        "stores": {
            k: {f: v.get(f) for f in ("examples", "bytes", "seconds", "images_per_s", "total_wall_s")}
            for k, v in stores.items()
        },
        "rows": rows,
    }
    _write(out, summary, _distill_table(summary))
    return summary


def _distill_table(s: dict[str, Any]) -> str:
    base = s["rows"][0]["top1_mean"]
    lines = [
        f"Distillation pays off? student {s['student']}, teacher {s['teacher']} ({100 * s['teacher_top1']:.2f} % after "
        f"{s['teacher_epochs']} epochs); {s['data']} at {s['resolution']} px, lr {s.get('lr')}, {s['replicas']} replicas, "
        f"{s['seeds']} seeds",
        "",
        "| student trained on | epochs | images seen | held-out top-1 (mean ± sd) | gain (points) | seeds | training s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in s["rows"]:
        seeds = ", ".join(f"{100 * a:.2f}" for a in r["top1_seeds"])
        lines.append(
            f"| {r['arm']} | {r['epochs']} | {r['images_seen']} | {100 * r['top1_mean']:.2f} ± {100 * r['top1_sd']:.2f} | "
            f"{100 * (r['top1_mean'] - base):+.2f} | {seeds} | {r['train_s']:.0f} |"
        )
    lines.append("")
    for k, v in s["stores"].items():
        lines.append(
            f"store {k}: {v['examples']} examples, {v['bytes'] / 2**20:.1f} MiB, built in "
            f"{v['total_wall_s']:.0f} s ({v['images_per_s']:.0f} images/s)"
        )
    return "\n".join(lines)


def _write(out: Path, summary: dict[str, Any], table: str) -> None:
    summary["load_average"] = os.getloadavg()
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "summary.md").write_text(table + "\n")
    print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="experiment", required=True)
    for name in ("search", "distill"):
        p = sub.add_parser(name)
        p.add_argument("--out", type=Path, required=True)
        p.add_argument("--data", default="builtin:1000")
        p.add_argument("--resolution", type=int, default=32)
        p.add_argument("--batch-size", type=int, default=128)
        p.add_argument("--epochs", type=int, default=15 if name == "search" else 10)
        p.add_argument("--seeds", type=int, default=3)
        p.add_argument(
            "--lr", type=float, default=0.002, help="peak learning rate of every training (default: train's)"
        )
        # one thread per process: on a shared 2-core machine two OpenMP threads wait for each other
        # (a BatchNorm call took 25 ms with 2 threads against 0.3 ms with 1 under a load of 6)
        p.add_argument("--threads", type=int, default=1)
    s = sub.choices["search"]
    s.add_argument("--reference", default="mnv4-conv-small")
    s.add_argument("--space", default=None, help="default: the reference's own space")
    s.add_argument("--target", default="pixel8-edgetpu")
    s.add_argument("--supernet-epochs", type=int, default=10)
    s.add_argument("--trials", type=int, default=0, help="total search trials (default: the search's own)")
    d = sub.choices["distill"]
    d.add_argument("--teacher", default="mnv4-conv-medium")
    d.add_argument("--teacher-epochs", type=int, default=30)
    d.add_argument("--student", default="mnv4-conv-small")
    d.add_argument("--replicas", type=int, default=4)
    d.add_argument("--mix", action="store_true", help="also a mixup store (D2) and the D1 + D2 mix")
    args = ap.parse_args()
    (run_search if args.experiment == "search" else run_distill)(args)


if __name__ == "__main__":
    main()
