"""Cost of an offline distillation store: build speed (augmentation vs teacher), size on disk, read speed.

A zoo model adapted to the built-in data (10 classes at ``--resolution``; weights random, BatchNorm
calibrated, so the speed is a trained model's) is the teacher, exported to ONNX and run in
onnxruntime (``--teacher onnx``, what a user's teacher from another framework does) or run in
torch (``--teacher torch``). Prints one table: the build's wall time and images/s, the share the
augmentation alone and the teacher alone would take, bytes per example, and the images/s at which
a training loop reads the finished store (one epoch, batch 256).

Usage: ``python benchmarks/distill_store.py [--model mnv4-conv-small] [--data builtin:1000]
[--replicas 2] [--aug inception-randaug] [--teacher onnx] [--threads 1]``.
Check at tiny size: ``--data builtin:4 --replicas 1 --model mobilenet-v2-050``.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch

from nas.data import load_data, make_augment, open_store
from nas.export.onnx import export_module
from nas.model import build_model, random_batches, recalibrate_bn
from nas.train import ModuleTeacher, OnnxTeacher, Teacher, build_store
from nas.zoo import get_spec


def make_teacher(kind: str, model_name: str, resolution: int, data, folder: Path, threads: int) -> Teacher:
    """The zoo model at the data's resolution and class count, as an ONNX or torch teacher."""
    spec = dataclasses.replace(get_spec(model_name), resolution=resolution, num_classes=data.num_classes)
    model = recalibrate_bn(build_model(spec, seed=0), random_batches((16, 3, resolution, resolution), 2))
    if kind == "torch":
        return ModuleTeacher(model, data.mean, data.std, data.num_classes, resolution, source=model_name)
    path = folder / f"{model_name}.onnx"
    export_module(model, (1, 3, resolution, resolution), path, dynamic_batch=True, atol=1e-3)
    return OnnxTeacher(path, mean=data.mean, std=data.std, threads=threads)


def rate(fn, x: torch.Tensor, repeats: int = 3) -> float:
    """Median images/s of ``fn(x)``."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return len(x) / sorted(times)[len(times) // 2]


def read_rate(path: Path, batch: int = 256) -> float:
    """Images/s of one epoch read as a training loop reads it."""
    store = open_store(path)
    t0 = time.perf_counter()
    n = sum(len(b.y) for b in store.epoch_batches(0, min(batch, store.train_size())))
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mnv4-conv-small")
    ap.add_argument("--data", default="builtin:1000")
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--aug", default="inception-randaug")
    ap.add_argument("--teacher", choices=["onnx", "torch"], default="onnx")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="keep the store here (default: a temporary folder)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load_data(args.data, args.resolution)
    with tempfile.TemporaryDirectory() as tmp:
        teacher = make_teacher(args.teacher, args.model, args.resolution, data, Path(tmp), args.threads)
        x = data.train_x[: args.batch_size].float() / 255
        aug = make_augment(args.aug, args.resolution)
        aug_rate = rate(lambda b: aug(b, 0), x)
        teacher_rate = rate(teacher.probs, x)
        out = args.out or Path(tmp) / "store"
        s = build_store(
            teacher,
            data,
            out,
            aug=args.aug,
            replicas=args.replicas,
            seed=0,
            batch_size=args.batch_size,
            data_spec=args.data,
        )
        reading = read_rate(out)
    print(
        f"teacher {args.model} ({args.teacher}, {args.threads} thread(s)), {args.aug} x {args.replicas}, "
        f"{data.describe()}"
    )
    print(
        f"{'examples':>9} {'shards':>6} {'wall s':>7} {'img/s':>7} {'aug img/s':>10} {'teacher img/s':>14} "
        f"{'MiB':>7} {'B/example':>10} {'read img/s':>11}"
    )
    print(
        f"{s.examples:>9} {s.shards:>6} {s.seconds:>7.2f} {s.images_per_s or 0:>7.0f} {aug_rate:>10.0f} "
        f"{teacher_rate:>14.0f} {s.bytes / 2**20:>7.2f} {s.bytes / s.examples:>10.0f} {reading:>11.0f}"
    )


if __name__ == "__main__":
    main()
