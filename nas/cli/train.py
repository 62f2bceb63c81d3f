"""``mnv4-nas train`` and ``mnv4-nas eval``: train an architecture on your data, score trained weights."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from nas.cli._common import UsageError, console, get_config, print_json, process_rank, set_threads
from nas.config import Config
from nas.zoo import resolve


class Optimizer(StrEnum):
    """Optimizers of the training recipe."""

    adamw = "adamw"
    sgd = "sgd"


class Split(StrEnum):
    """Which split of a data set ``eval`` scores."""

    val = "val"
    train = "train"


#: recipe field -> (CLI flag, ``[train]`` key in nas.toml)
_NAMES = {
    "epochs": ("--epochs", "epochs"),
    "batch_size": ("--batch-size", "batch_size"),
    "optimizer": ("--optimizer", "optimizer"),
    "lr": ("--lr", "lr"),
    "weight_decay": ("--weight-decay", "weight_decay"),
    "lr_warmup": ("--warmup", "warmup"),
    "label_smoothing": ("--label-smoothing", "label_smoothing"),
    "grad_clip": ("--grad-clip", "grad_clip"),
    "ema_decay": ("--ema-decay", "ema_decay"),
    "augment": ("--aug", "aug"),
    "amp": ("--amp", "amp"),
    "seed": ("--seed", "seed"),
}


def _recipe(cfg: Config, given: dict[str, Any]) -> Any:
    """The recipe from the options given (not None) over ``[train]`` in the config; checked, with errors
    naming the flag, or the config key where the value came from the file."""
    from nas.train import Recipe

    tc = cfg.train
    defaults: dict[str, Any] = {
        "epochs": tc.epochs,
        "batch_size": tc.batch_size,
        "optimizer": tc.optimizer,
        "lr": tc.lr,
        "weight_decay": tc.weight_decay,
        "lr_warmup": tc.warmup,
        "label_smoothing": tc.label_smoothing,
        "grad_clip": tc.grad_clip,
        "ema": tc.ema,
        "ema_decay": tc.ema_decay,
        "augment": tc.aug,
        "amp": tc.amp,
        "seed": cfg.project.seed,
    }
    values = {k: (given[k] if given.get(k) is not None else v) for k, v in defaults.items()}
    recipe = Recipe(**values)

    def name(field: str) -> str:
        flag, key = _NAMES.get(field, (f"--{field}", field))
        if given.get(field) is not None:
            return flag
        return f"{'project' if field == 'seed' else 'train'}.{key} ({cfg.source})"

    recipe.check(name)
    return recipe


def _progress(quiet: bool, world: int, batch: int) -> tuple[Progress, Any, Any]:
    """A rich progress bar per epoch; (progress, on_step, on_epoch) for :func:`nas.train.train`."""
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f} acc {task.fields[acc]:.3f} {task.fields[rate]:.0f} img/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
        transient=False,
    )
    tasks: dict[int, Any] = {}
    started: dict[int, float] = {}

    def on_step(s: dict[str, Any]) -> None:
        e = s["epoch"]
        if e not in tasks:
            started[e] = time.perf_counter()
            tasks[e] = progress.add_task(f"epoch {e + 1}/{s['epochs']}", total=s["steps"], loss=0.0, acc=0.0, rate=0.0)
        rate = (s["step"] + 1) * batch * world / max(time.perf_counter() - started[e], 1e-9)
        progress.update(tasks[e], completed=s["step"] + 1, loss=s["loss"], acc=s["acc"], rate=rate)

    def on_epoch(h: dict[str, Any]) -> None:
        if quiet:
            return
        held = "" if h.get("val_acc") is None else f", held-out {100 * h['val_acc']:.2f} %"
        ema = "" if h.get("val_acc_ema") is None else f" (EMA {100 * h['val_acc_ema']:.2f} %)"
        progress.console.print(
            f"epoch {h['epoch']}: loss {h['loss']:.4f}, train {100 * h['train_acc']:.2f} %{held}{ema}, "
            f"{h['images_per_s']:.0f} images/s — checkpoint saved"
        )

    return progress, on_step, on_epoch


def train(
    ctx: typer.Context,
    arch: str = typer.Argument(..., metavar="ARCH", help="Spec file (best.json, .toml), zoo name or arch string."),
    data: str | None = typer.Option(
        None, "--data", help="builtin[:N], an .npz or an image folder (default: train.data in nas.toml)."
    ),
    distill: list[str] = typer.Option(
        None,
        "--distill",
        metavar="STORE[:RATIO]",
        help="Learn from a distillation store (mnv4-nas distill-data) by cross-entropy to its teacher's "
        "probabilities; repeat to mix stores by RATIO (default 1). Augmentation then defaults to flip; held-out "
        "data: the first store's source data.",
    ),
    teacher: str | None = typer.Option(
        None,
        "--teacher",
        metavar="TEACHER",
        help="Online distillation: the teacher labels each augmented batch (a train output folder, model.onnx or "
        "supernet:CKPT@ARCH).",
    ),
    teacher_norm: str = typer.Option(
        "imagenet", "--teacher-norm", help="ONNX teacher input normalisation: imagenet, data or none."
    ),
    teacher_mean: str | None = typer.Option(None, "--teacher-mean", metavar="R,G,B", help="ONNX teacher mean."),
    teacher_std: str | None = typer.Option(None, "--teacher-std", metavar="R,G,B", help="ONNX teacher std."),
    teacher_output: str = typer.Option("auto", "--teacher-output", help="ONNX teacher output: logits, probs or auto."),
    epochs: int | None = typer.Option(None, "--epochs", help="Epochs (default: train.epochs)."),
    resolution: int | None = typer.Option(
        None,
        "--resolution",
        help="Training resolution in px; the spec keeps its own for deployment (default: train.resolution).",
    ),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Batch per process (default: train.batch_size)."),
    lr: float | None = typer.Option(None, "--lr", help="Peak learning rate (default: train.lr)."),
    optimizer: Optimizer | None = typer.Option(
        None, "--optimizer", case_sensitive=False, help="adamw or sgd (default: train.optimizer)."
    ),
    weight_decay: float | None = typer.Option(
        None, "--weight-decay", help="On conv/linear weights (default: train.weight_decay)."
    ),
    warmup: float | None = typer.Option(
        None, "--warmup", help="Fraction of the steps with a linear warm-up, in [0, 1) (default: train.warmup)."
    ),
    label_smoothing: float | None = typer.Option(
        None, "--label-smoothing", help="In [0, 1) (default: train.label_smoothing)."
    ),
    grad_clip: float | None = typer.Option(
        None, "--grad-clip", help="Gradient-norm clip, 0 = off (default: train.grad_clip)."
    ),
    ema: bool | None = typer.Option(
        None, "--ema/--no-ema", help="Keep an EMA of the weights and save it (default: train.ema)."
    ),
    ema_decay: float | None = typer.Option(None, "--ema-decay", help="EMA decay in (0, 1) (default: train.ema_decay)."),
    aug: str | None = typer.Option(None, "--aug", help="Augmentation: crop-flip, flip or none (default: train.aug)."),
    amp: str | None = typer.Option(
        None, "--amp", help="Mixed precision on CUDA: auto, bf16, fp16 or off (default: train.amp)."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Seed (default: project.seed)."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda or cuda:N (default: CUDA when available)."),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads per process."),
    out: str | None = typer.Option(
        None, "--out", "-o", help="Output folder (default: <project.output_dir>/train-<name>-<UTC time>)."
    ),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue the training in --out if there is one."),
    max_steps: int | None = typer.Option(
        None, "--max-steps", min=1, hidden=True, help="Cap steps per epoch (smoke tests)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """Train an architecture on your data: checkpoints every epoch (rerun to resume, also under torchrun),
    then safetensors + ONNX weights, metrics.csv, curves.png, summary.md, run.json."""
    import torch

    from nas.data import data_record, load_training_data, open_distill_stores
    from nas.inputs import check_int, check_output_dir
    from nas.train import amp_dtype, check_device, default_out_dir, env_world_size
    from nas.train import train as run_training

    cfg = get_config(ctx)
    set_threads(threads)
    check_device(device)
    spec, name = resolve(arch)
    if distill and (data is not None or teacher is not None):
        raise UsageError("--distill learns from the stores' teacher and their source data; drop --data/--teacher")
    given = {
        "epochs": epochs,
        "batch_size": batch_size,
        "optimizer": optimizer.value if optimizer else None,
        "lr": lr,
        "weight_decay": weight_decay,
        "lr_warmup": warmup,
        "label_smoothing": label_smoothing,
        "grad_clip": grad_clip,
        "ema": ema,
        "ema_decay": ema_decay,
        "augment": aug if aug is not None else ("flip" if distill else None),
        "amp": amp,
        "seed": seed,
    }
    recipe = _recipe(cfg, given)
    amp_dtype(recipe, torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu")), "--amp")
    res = check_int(resolution if resolution is not None else cfg.train.resolution, "--resolution", lo=8, hi=1024)
    out_dir = check_output_dir(out if out is not None else default_out_dir(cfg.project.output_dir, name), "--out")
    world = env_world_size()
    quiet = json_out or (world > 1 and process_rank() != 0)
    if distill:
        source, val, data_info = open_distill_stores(distill, resolution)
    else:
        data_spec = cfg.train.data if data is None else data
        source, val = load_training_data(data_spec, res, seed=recipe.seed)
        data_info = {"spec": data_record(data_spec), "val_fraction": 0.1, "split_seed": recipe.seed}
    online = None
    if teacher is not None:
        online = _online_teacher(teacher, val, device, threads, teacher_norm, teacher_mean, teacher_std, teacher_output)
    if not quiet:
        console.print(f"data: {source.describe()}")
        if online is not None:
            console.print(f"teacher (online): {teacher} ({online.num_classes} classes)")
        console.print(f"arch: {name} ({spec.arch if len(spec.arch) <= 160 else spec.arch[:157] + '…'})")
        ema_note = f"EMA {recipe.ema_decay}" if recipe.ema else "no EMA"
        console.print(
            f"recipe: {recipe.optimizer} lr {recipe.lr:g}, {recipe.epochs} epochs × batch {recipe.batch_size}"
            f" × {world} process(es), {recipe.augment}, label smoothing {recipe.label_smoothing:g}, {ema_note}"
        )
        console.print(f"output: {out_dir} (rerun with --out {out_dir} to resume)")
    progress, on_step, on_epoch = _progress(quiet, world, recipe.batch_size)
    with progress:
        run = run_training(
            spec,
            source,
            val,
            recipe,
            out_dir,
            device=device,
            resume=resume,
            name=name,
            data_info=data_info,
            teacher=online,
            on_step=on_step,
            on_epoch=on_epoch,
            max_steps_per_epoch=max_steps,
        )
    if (quiet and not json_out) or (world > 1 and process_rank() != 0):  # one report, from rank 0
        return
    _report(run, json_out)


def _online_teacher(
    text: str,
    val: Any,
    device: str | None,
    threads: int | None,
    norm: str,
    mean: str | None,
    std: str | None,
    output: str,
) -> Any:
    """The ``--teacher`` of an online distillation, checked against the data's classes."""
    from nas.supernet import NORMS, normalize_onnx, open_teacher, parse_teacher

    if norm not in (*NORMS, "data"):
        raise UsageError(f"--teacher-norm must be imagenet, data or none (got {norm!r})")
    if output not in ("auto", "logits", "probs"):
        raise UsageError(f"--teacher-output must be auto, logits or probs (got {output!r})")
    t, names = open_teacher(parse_teacher(text), resolution=None, output=output, device=device, threads=threads)
    normalize_onnx(t, norm, mean, std, val)
    if t.num_classes != val.num_classes or (names is not None and tuple(names) != val.classes):
        raise UsageError(
            f"--teacher {text}: {t.num_classes} classes, but the data has {val.num_classes} "
            f"({_names(val.classes)}) — a teacher must know the data's classes in the data's order"
        )
    return t


def _report(run: Any, json_out: bool) -> None:
    """The result of :func:`nas.train.train` as one JSON object or a table."""
    r = run.results
    if json_out:
        print_json(
            {
                "out": str(run.out),
                "arch": run.spec.arch,
                "epochs_done": run.epochs_done,
                "resumed_from_epoch": run.resumed_from,
                "results": r,
                "files": {k: str(p) for k, p in run.files.items()},
                "history": run.history,
            }
        )
        return
    if run.resumed_from >= run.epochs_done:
        console.print(
            f"{run.out} already holds {run.epochs_done} finished epochs (raise --epochs to go on); outputs rewritten"
        )

    def pct(v: float | None) -> str:
        return "–" if v is None else f"{100 * v:.2f} %"

    table = Table(title=f"trained {run.epochs_done} epochs")
    table.add_column("result")
    table.add_column("value", justify="right")
    table.add_row("held-out top-1, raw weights", pct(r.get("val_acc")))
    table.add_row("held-out top-1, EMA weights", pct(r.get("val_acc_ema")))
    table.add_row(f"saved weights ({r['weights']})", pct(r.get("val_acc_saved")))
    table.add_row("images/s (training)", "–" if r["images_per_s"] is None else f"{r['images_per_s']:.1f}")
    table.add_row("ONNX max |ort - torch|", f"{r['onnx_max_abs_diff']:.2e}")
    console.print(table)
    for key in ("weights", "onnx", "metrics", "curves", "summary"):
        console.print(f"  {run.files[key]}")
    console.print(f"next: mnv4-nas eval {run.out} --data DATA")


def eval_(
    ctx: typer.Context,
    weights: str = typer.Argument(
        ..., metavar="WEIGHTS", help="A train output folder, its model.safetensors or checkpoint.pt."
    ),
    data: str = typer.Option(..., "--data", help="builtin[:N], an .npz or an image folder with the same classes."),
    split: Split = typer.Option(
        Split.val, "--split", case_sensitive=False, help="Which split to score: val (held-out) or train."
    ),
    batch_size: int = typer.Option(256, "--batch-size", help="Evaluation batch."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda or cuda:N (default: CUDA when available)."),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads."),
    out: str | None = typer.Option(
        None, "--out", "-o", help="Output folder (default: <project.output_dir>/eval-<name>-<UTC time>)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """Top-1/top-5 of trained weights on held-out data; writes confusion.png and eval.json."""
    import torch

    from nas.data import load_data
    from nas.inputs import check_int, check_output_dir
    from nas.train import check_device, default_out_dir, evaluate, load_trained, write_eval

    cfg = get_config(ctx)
    set_threads(threads)
    check_device(device)
    check_int(batch_size, "--batch-size", lo=1)
    tm = load_trained(weights)
    name = str(tm.meta.get("name") or "model")
    out_dir = check_output_dir(
        out if out is not None else default_out_dir(cfg.project.output_dir, name, "eval"), "--out"
    )
    how = tm.meta.get("data") or {}
    ds = load_data(
        data,
        tm.resolution,
        val_fraction=float(how.get("val_fraction", 0.1)),
        seed=int(how.get("split_seed", cfg.project.seed)),
    )
    if ds.classes != tm.classes:
        raise UsageError(
            f"--data {data}: {ds.num_classes} classes ({_names(ds.classes)}) but {tm.path} was trained on "
            f"{tm.num_classes} ({_names(tm.classes)})"
        )
    x, y = (ds.val_x, ds.val_y) if split is Split.val else (ds.train_x, ds.train_y)
    if len(y) == 0:
        raise UsageError(f"--data {data}: the {split.value} split holds no images")
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    r = evaluate(tm.model.to(dev), x, y, tm.mean, tm.std, num_classes=tm.num_classes, batch_size=batch_size, device=dev)
    title = f"{name} on {ds.source} ({split.value}, {len(y)} images): top-1 {100 * r.top1:.2f} %"
    info = {
        "weights": str(tm.path),
        "weights_kind": tm.weights,
        "arch": tm.spec.arch,
        "data": data,
        "split": split.value,
        "resolution": tm.resolution,
    }
    files = write_eval(r, out_dir, tm.classes, title, info)
    if json_out:
        print_json(
            {
                **info,
                "top1": r.top1,
                f"top{r.k}": r.top5,
                "images": r.images,
                "files": {k: str(p) for k, p in files.items()},
            }
        )
        return
    console.print(f"{tm.path} ({tm.weights} weights) on {ds.source}, {split.value} split, {len(y)} images")
    console.print(f"top-1 {100 * r.top1:.2f} %   top-{r.k} {100 * r.top5:.2f} %")
    console.print(f"wrote {files['confusion']} and {files['eval']}")


def _names(classes: tuple[str, ...], n: int = 6) -> str:
    return ", ".join(classes[:n]) + (", …" if len(classes) > n else "")
