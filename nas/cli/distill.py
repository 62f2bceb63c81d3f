"""``mnv4-nas distill-data``: an offline distillation store (augmented images + a teacher's probabilities)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from nas.cli._common import UsageError, console, get_config, print_json
from nas.supernet import TEACHER_FORMS, normalize_onnx, open_teacher, parse_teacher


class Aug(StrEnum):
    """Store augmentation recipes (the paper's D1, D2, or none)."""

    inception_randaug = "inception-randaug"
    mixup = "mixup"
    none = "none"


class TeacherNorm(StrEnum):
    """ONNX teacher input normalisation."""

    imagenet = "imagenet"
    data = "data"
    none = "none"


class TeacherOutput(StrEnum):
    """What an ONNX teacher's first output is."""

    auto = "auto"
    logits = "logits"
    probs = "probs"


def distill_data(
    ctx: typer.Context,
    teacher: str = typer.Option(
        ..., "--teacher", metavar="TEACHER", help=f"{TEACHER_FORMS}; ARCH a zoo name, spec file or arch string."
    ),
    data: str = typer.Option(
        ...,
        "--data",
        help="builtin[:N], an .npz (images, labels) or an image folder: the images to augment (their training split).",
    ),
    aug: Aug = typer.Option(
        Aug.inception_randaug,
        "--aug",
        case_sensitive=False,
        help="inception-randaug (the paper's D1), mixup (D2: Inception crop + extreme mixup) or none.",
    ),
    replicas: int = typer.Option(1, "--replicas", min=1, help="Augmented copies of every training image."),
    out: str = typer.Option(..., "--out", "-o", help="Store folder (created; rerun the same command to resume)."),
    resolution: int | None = typer.Option(
        None,
        "--resolution",
        min=8,
        max=1024,
        help="Image side in px (default: the teacher's input size, else supernet.resolution in nas.toml).",
    ),
    batch_size: int = typer.Option(128, "--batch-size", min=1, help="Images per teacher call."),
    shard_size: int | None = typer.Option(
        None, "--shard-size", min=1, help="Examples per shard (default: about 32 MiB a shard)."
    ),
    seed: int | None = typer.Option(
        None, "--seed", min=0, help="Seed of the copies and of the held-out split (default: project.seed in nas.toml)."
    ),
    val_fraction: float = typer.Option(
        0.1,
        "--val-fraction",
        help="Held-out fraction of an .npz/image folder without its own split (kept out of the store).",
    ),
    teacher_norm: TeacherNorm = typer.Option(
        TeacherNorm.imagenet,
        "--teacher-norm",
        case_sensitive=False,
        help="ONNX teacher input normalisation: imagenet (most published models), data (this data's statistics, as models exported by mnv4-nas expect) or none ([0, 1] images).",
    ),
    teacher_mean: str | None = typer.Option(
        None, "--teacher-mean", metavar="R,G,B", help="ONNX teacher: explicit per-channel mean (with --teacher-std)."
    ),
    teacher_std: str | None = typer.Option(
        None, "--teacher-std", metavar="R,G,B", help="ONNX teacher: explicit per-channel std."
    ),
    teacher_output: TeacherOutput = typer.Option(
        TeacherOutput.auto,
        "--teacher-output",
        case_sensitive=False,
        help="ONNX teacher's output: logits, probs, or auto (detected).",
    ),
    device: str | None = typer.Option(
        None,
        "--device",
        help="cpu or cuda for the teacher (default: ONNX on CUDA when onnxruntime has it, a supernet member on CPU).",
    ),
    threads: int | None = typer.Option(None, "--threads", min=1, help="torch / onnxruntime CPU threads."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Build an offline distillation store: REPLICAS augmented copies of the training images, each with
    the teacher's probabilities, in shards that stream during training; rerun to resume after a kill."""
    import torch

    from nas.data import is_store, load_data
    from nas.inputs import check_finite, check_output_dir
    from nas.train import build_store, check_teacher

    cfg = get_config(ctx)
    if threads is not None:
        torch.set_num_threads(threads)
    check_output_dir(out, "--out")
    check_finite(val_fraction, "--val-fraction", lo=0, hi=1, lo_open=True, hi_open=True)
    if is_store(data):
        raise UsageError(f"--data {data}: this is a distillation store; give the data set to build from")
    targ = parse_teacher(teacher)
    tch, names = open_teacher(targ, resolution=resolution, output=teacher_output.value, device=device, threads=threads)
    res = resolution or tch.resolution or cfg.supernet.resolution
    seed = cfg.project.seed if seed is None else seed
    ds = load_data(data, res, val_fraction=val_fraction, seed=seed)
    normalize_onnx(tch, teacher_norm.value, teacher_mean, teacher_std, ds)
    check_teacher(tch, ds)
    if names is not None and tuple(names) != ds.classes:
        raise UsageError(
            f"--teacher {teacher}: its classes ({', '.join(names[:4])}, …) differ from the data's "
            f"({', '.join(ds.classes[:4])}, …) in name or order"
        )
    if not json_out:
        console.print(f"data: {ds.describe()}")
        console.print(f"teacher: {teacher} ({tch.num_classes} classes); {aug.value} x {replicas} replicas -> {out}")
    summary = _build(
        build_store,
        tch,
        ds,
        out,
        json_out,
        aug=aug.value,
        replicas=replicas,
        seed=seed,
        shard_size=shard_size,
        batch_size=batch_size,
        data_spec=data,
        val_fraction=val_fraction,
        split_seed=seed,
    )
    _print_summary(summary, json_out)


def _build(build_store: Any, tch: Any, ds: Any, out: str, quiet: bool, **kw: Any) -> Any:
    """``build_store`` with a progress bar, started at the first report (an early error prints no empty bar)."""
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
        transient=False,
    )
    task: list[Any] = []

    def on_progress(p: Any) -> None:
        if not task:
            if p.shards_done and not quiet:
                done = "already complete" if p.shards_done == p.shards_total else "resuming"
                console.print(f"{done}: {p.shards_done} of {p.shards_total} shards already done")
            progress.start()
            task.append(progress.add_task("examples", total=p.examples_total, completed=p.examples_done))
        progress.update(task[0], completed=p.examples_done, description=f"shard {p.shards_done}/{p.shards_total}")

    try:
        return build_store(tch, ds, out, on_progress=on_progress, **kw)
    finally:
        if task:
            progress.stop()


def _print_summary(s: Any, json_out: bool) -> None:
    if json_out:
        print_json(s.to_dict())
        return
    rate = f"{s.images_per_s:.0f} images/s" if s.images_per_s else "nothing left to build"
    console.print(
        f"store {s.path}: {s.examples} examples in {s.shards} shards ({s.shards_built} built now, {s.shards_resumed} "
        f"already done), {s.bytes / 2**20:.1f} MiB; {rate}, {s.seconds:.1f} s this run, {s.total_wall_s:.1f} s in all"
    )
