"""Training throughput of ``nas.train.train`` against a plain hand-written PyTorch loop.

Both train the same model (same spec, seed and zero-initialised classifier) on the same data in the
same order, with the same batch, AdamW (weight decay on conv/linear weights), the kornia crop-flip
augmentation, cross-entropy with label smoothing 0.1, gradient clipping and a per-step learning rate,
on ``--threads`` CPU threads. ``nas.train.train`` also seeds the augmentation per step, keeps the
EMA of the weights (the default; ``ours, no EMA`` shows its cost), evaluates and checkpoints after
every epoch. Throughput is training images per second over the steps of the last epoch (evaluation,
checkpoint and export excluded for both), the median over ``--repeats`` interleaved repeats; the
goal is plain / ours <= 1.1.

    python benchmarks/train_throughput.py                       # MNv4-Conv-S at 32 px, builtin:100
    python benchmarks/train_throughput.py --arch best.json --data builtin:500 --batch-size 128
    python benchmarks/train_throughput.py --quick               # a few seconds: checks that it runs
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from nas.data import load_training_data, make_augment
from nas.model import build_model
from nas.spec import ArchSpec, load_spec_file, parse_arch
from nas.train import Recipe, epoch_seed, lr_at, param_groups, train, training_specs
from nas.zoo import ZOO, get_spec

console = Console(highlight=False)


def _spec(text: str) -> ArchSpec:
    if text in ZOO:
        return get_spec(text)
    if text.startswith("res") and "|" in text:
        return parse_arch(text)
    return load_spec_file(Path(text))


def plain_loop(spec: ArchSpec, source, recipe: Recipe, max_steps: int | None) -> float:
    """images/s of the last epoch of a loop as a user would write it (no EMA, no per-step seeding)."""
    _, train_spec = training_specs(spec, source)
    model = build_model(train_spec, seed=recipe.seed)
    with torch.no_grad():
        model.head.classifier.weight.zero_()
        model.head.classifier.bias.zero_()
    opt = torch.optim.AdamW(param_groups(model, recipe.weight_decay), lr=recipe.lr)
    aug = make_augment("crop-flip", source.resolution).ops  # the kornia pipeline itself
    mean = torch.tensor(source.mean).view(1, 3, 1, 1)
    std = torch.tensor(source.std).view(1, 3, 1, 1)
    steps = source.train_size() // recipe.batch_size
    steps = min(steps, max_steps) if max_steps else steps
    total = recipe.epochs * steps
    rate = float("nan")
    for epoch in range(recipe.epochs):
        model.train()
        seen, t0 = 0, time.perf_counter()
        for step, b in zip(range(steps), source.epoch_batches(epoch_seed(recipe.seed, epoch, 1), recipe.batch_size)):
            for g in opt.param_groups:
                g["lr"] = lr_at(recipe, epoch * steps + step, total)
            x = (aug(b.x).clamp_(0, 1) - mean) / std
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), b.y, label_smoothing=recipe.label_smoothing)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            opt.step()
            seen += len(b.y)
        rate = seen / (time.perf_counter() - t0)
    return rate


def ours(spec: ArchSpec, source, val, recipe: Recipe, max_steps: int | None, tmp: Path) -> float:
    """images/s of the last epoch of ``nas.train.train`` (as it reports it)."""
    run = train(spec, source, val, recipe, tmp / f"run-{time.time_ns()}", resume=False, max_steps_per_epoch=max_steps)
    return float(run.history[-1]["images_per_s"])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="mnv4-conv-small", help="zoo name, arch string or spec file")
    p.add_argument("--data", default="builtin:100")
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=2, help="per repeat; the last epoch is timed")
    p.add_argument("--max-steps", type=int, default=None, help="cap the steps of an epoch")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="tiny model and data, 1 repeat (a smoke check)")
    a = p.parse_args(argv)
    if a.quick:
        a.arch = "res32|cn_r1_k3_s2_c8|uir_r1_a3_k3_s2_e2_c16|uir_r1_a0_k3_s2_e2_c24|head_c32_cls10"
        a.data, a.batch_size, a.epochs, a.repeats, a.max_steps = "builtin:20", 32, 2, 1, 4
    torch.set_num_threads(a.threads)
    spec = _spec(a.arch)
    source, val = load_training_data(a.data, a.resolution)
    recipe = Recipe(epochs=a.epochs, batch_size=a.batch_size)
    console.print(
        f"{source.describe()}; batch {a.batch_size}; {a.threads} threads; {a.repeats} repeats of {a.epochs} epochs"
    )
    rates: dict[str, list[float]] = {"plain loop": [], "ours (nas.train.train)": [], "ours, no EMA": []}
    with tempfile.TemporaryDirectory() as d:
        for r in range(a.repeats):  # interleaved, so that drifting machine load hits all alike
            rates["plain loop"].append(plain_loop(spec, source, recipe, a.max_steps))
            rates["ours (nas.train.train)"].append(ours(spec, source, val, recipe, a.max_steps, Path(d)))
            rates["ours, no EMA"].append(
                ours(spec, source, val, Recipe(**{**recipe.to_dict(), "ema": False}), a.max_steps, Path(d))
            )
            console.print(f"repeat {r + 1}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in rates.items()))
    med = {k: statistics.median(v) for k, v in rates.items()}
    table = Table(title="training throughput (images/s, last epoch)")
    for c in ("loop", "median", "repeats", "plain / this"):
        table.add_column(c, justify="right" if c != "loop" else "left")
    for k, v in rates.items():
        table.add_row(k, f"{med[k]:.1f}", " ".join(f"{x:.0f}" for x in v), f"{med['plain loop'] / med[k]:.3f}")
    console.print(table)
    ratio = med["plain loop"] / med["ours (nas.train.train)"]
    console.print(f"plain / ours = {ratio:.3f} (goal <= 1.1): {'met' if ratio <= 1.1 else 'NOT met'}")


if __name__ == "__main__":
    main()
