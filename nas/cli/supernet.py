"""``mnv4-nas supernet train|info|eval|extract``: weight-sharing supernets on your data."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from nas.cli._common import UsageError, console, get_config, print_json, process_rank, set_threads
from nas.inputs import check_output_file, check_seed
from nas.supernet import TUNAS_BETA
from nas.units import format_macs
from nas.zoo import resolve

app = typer.Typer(
    help="Weight-sharing supernets: train on your data (sandwich, uniform or TuNAS), inspect, score and extract subnets.",
    no_args_is_help=True,
)


class Sampler(StrEnum):
    """Supernet training samplers."""

    sandwich = "sandwich"
    uniform = "uniform"
    tunas = "tunas"


class SandwichOps(StrEnum):
    """Block variants of the sandwich's pinned largest and smallest members."""

    extreme = "extreme"
    random = "random"


class Cost(StrEnum):
    """T of the TuNAS reward."""

    macs = "macs"
    params = "params"
    latency = "latency"


class Phase(StrEnum):
    """Which phase of the space to sample during training."""

    joint = "joint"
    coarse = "coarse"


def _sandwich_note(cfg: dict[str, Any]) -> str:
    """`` (…)`` with a sandwich checkpoint's distillation and block-variant settings, else ``""``
    (``cfg`` as :func:`nas.supernet._train.stored_config` returns it)."""
    if cfg["sampler"] != "sandwich":
        return ""
    distill = "distillation" if cfg["distill"] else "no distillation"
    return f" ({distill}, {cfg['sandwich_ops']} ops, {cfg['random_subnets']} random subnets/step)"


def _transform_note(cfg: dict[str, Any], meta: dict[str, Any]) -> str:
    """``, kernel transform (N convs)`` for checkpoints trained with the kernel transformation, else ``""``."""
    if not cfg["kernel_transform"]:
        return ""
    return f", kernel transform ({meta.get('kernel_transforms', '?')} convs)"


@app.command("train")
def train(
    ctx: typer.Context,
    space: str | None = typer.Option(
        None, "--space", help="Search space name or .toml file (default: supernet.space in nas.toml)."
    ),
    data: str | None = typer.Option(
        None,
        "--data",
        help="builtin[:N], an .npz (images, labels), an image folder (one sub-folder per class) or a distillation store (from 'mnv4-nas distill-data'; the paper trains its supernet on one) (default: supernet.data in nas.toml).",
    ),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Epochs (default: supernet.epochs in nas.toml)."),
    resolution: int | None = typer.Option(
        None,
        "--resolution",
        min=8,
        max=1024,
        help="Training resolution in px (default: supernet.resolution in nas.toml).",
    ),
    out: str | None = typer.Option(
        None, "--out", "-o", help="Checkpoint path (default: supernet.checkpoint in nas.toml)."
    ),
    sampler: Sampler | None = typer.Option(
        None,
        "--sampler",
        case_sensitive=False,
        help="sandwich, uniform or tunas (default: supernet.sampler in nas.toml).",
    ),
    phase: Phase = typer.Option(
        Phase.joint, "--phase", case_sensitive=False, help="Sample the joint space or its coarse stage."
    ),
    split: str | None = typer.Option(
        None,
        "--split",
        metavar="DECISION",
        help="Few-shot: one supernet per option of this width or depth decision (e.g. stage1.channels, as 'mnv4-nas "
        "space show' numbers stages; several, comma-separated: one per combination), trained one after the other; "
        "--out is then a .json manifest naming them.",
    ),
    init_from: str | None = typer.Option(
        None,
        "--init-from",
        metavar="CKPT",
        help="Start from this supernet checkpoint's weights (a supernet over a space containing this one), e.g. "
        "the one-shot supernet before a few-shot --split, as few-shot NAS does; used when training starts and "
        "recorded, so resuming needs it not again (another start is refused).",
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", min=2, help="Batch per process (default: supernet.batch_size in nas.toml)."
    ),
    lr: float | None = typer.Option(None, "--lr", help="Peak AdamW learning rate (default: supernet.lr in nas.toml)."),
    random_subnets: int = typer.Option(
        2,
        "--random-subnets",
        min=0,
        help="Sandwich: random subnets per step besides the largest and smallest; uniform: subnets per step.",
    ),
    distill: bool = typer.Option(
        True, "--distill/--no-distill", help="Sandwich: in-place distillation from the largest."
    ),
    sandwich_ops: SandwichOps = typer.Option(
        SandwichOps.extreme,
        "--sandwich-ops",
        case_sensitive=False,
        help="Sandwich: block variants of the largest/smallest members: extreme (largest/smallest DWs and expansion) "
        "or random (drawn each step; only widths and depths are pinned).",
    ),
    kernel_transform: bool = typer.Option(
        False,
        "--kernel-transform/--no-kernel-transform",
        help="Once-for-All kernel transformation: a 3x3 depthwise kernel is the 5x5 one's centre times a learned 9x9 matrix per layer.",
    ),
    cost: Cost = typer.Option(
        Cost.macs, "--cost", case_sensitive=False, help="TuNAS: T of the reward (latency needs --target)."
    ),
    target: str | None = typer.Option(None, "--target", help="TuNAS: latency target (implies --cost latency)."),
    budget: str | None = typer.Option(
        None, "--budget", help="TuNAS: T0, e.g. 4ms or 300M (default: the reference model's cost)."
    ),
    beta: float = typer.Option(TUNAS_BETA, "--beta", help="TuNAS: beta of the absolute reward (< 0)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed (default: project.seed in nas.toml)."),
    resume: bool = typer.Option(
        True, "--resume/--no-resume", help="Continue from the checkpoint at --out if there is one."
    ),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads per process."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda or cuda:N (default: CUDA when available)."),
    max_steps: int | None = typer.Option(
        None, "--max-steps", min=1, hidden=True, help="Cap steps per epoch (smoke tests)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train a supernet; checkpoints every epoch and resumes after an interruption (also under torchrun)."""
    from nas.supernet import SupernetTrainSettings, train_supernet_from_settings
    from nas.train import env_world_size

    config = get_config(ctx)
    settings = SupernetTrainSettings(
        space=space,
        data=data,
        epochs=epochs,
        resolution=resolution,
        out=out,
        sampler=sampler.value if sampler is not None else None,
        phase=phase.value,
        split=split,
        init_from=init_from,
        batch_size=batch_size,
        lr=lr,
        random_subnets=random_subnets,
        distill=distill,
        sandwich_ops=sandwich_ops.value,
        kernel_transform=kernel_transform,
        cost=cost.value,
        target=target,
        budget=budget,
        beta=beta,
        seed=seed,
        resume=resume,
        threads=threads,
        device=device,
        max_steps=max_steps,
    )
    quiet = (
        json_out or env_world_size() > 1 and process_rank() != 0
    )  # --json prints one JSON document; other ranks nothing
    outcome = train_supernet_from_settings(settings, config, _TrainReporter(quiet))
    if quiet and not json_out:
        return
    if outcome.few_shot is not None:
        _print_few_shot(outcome, json_out)
    else:
        _print_trained(outcome, json_out)


class _TrainReporter:
    """``supernet train``'s output while it trains: the setup lines, a rich progress bar per epoch (and
    shot), a line per finished epoch; nothing when ``quiet``."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.3f} acc {task.fields[acc]:.3f}{task.fields[extra]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=quiet,
            transient=False,
        )
        self.tasks: dict[tuple[str, int], Any] = {}
        self.label = ""
        self.ckpt: Path | None = None

    def note(self, text: str) -> None:
        if not self.quiet:
            console.print(text)

    def start(self, checkpoint: Path) -> None:
        self.ckpt = checkpoint
        self.progress.start()

    def stop(self) -> None:
        self.progress.stop()

    def shot(self, k: int, n: int, label: str, checkpoint: Path) -> None:
        self.label, self.ckpt = f"{label} ({k + 1}/{n}) ", checkpoint

    def step(self, s: dict[str, Any]) -> None:
        e = (self.label, s["epoch"])
        if e not in self.tasks:
            self.tasks[e] = self.progress.add_task(
                f"{e[0]}epoch {e[1] + 1}/{s['epochs']}", total=s["steps"], loss=0.0, acc=0.0, extra=""
            )
        extra = f" Q {s['quality']:.3f} T {s['cost']:.3g}" if "quality" in s else ""
        self.progress.update(self.tasks[e], completed=s["step"] + 1, loss=s["loss"], acc=s["acc"], extra=extra)

    def epoch(self, h: dict[str, Any]) -> None:
        if self.quiet:
            return
        evals = "  ".join(f"{k.removeprefix('val_acc_')} {v:.3f}" for k, v in h.items() if k.startswith("val_acc_"))
        self.progress.console.print(
            f"{self.label}epoch {h['epoch']}: loss {h['loss']:.3f}, train acc {h['train_acc']:.3f}, "
            f"{h['images_per_s']:.0f} images/s"
            + (f"; held-out acc: {evals}" if evals else "")
            + f" — saved {self.ckpt}"
        )


def _print_trained(outcome: Any, json_out: bool) -> None:
    """Print what one supernet training did (``outcome``: :class:`nas.supernet.SupernetTrainOutcome`)."""
    summary = outcome.summary()
    if json_out:
        print_json(summary)
        return
    result, ckpt = outcome.result, outcome.checkpoint
    if result.resumed_from >= result.epochs_done:
        console.print(
            f"{ckpt} already holds {result.epochs_done} finished epochs; nothing to do (raise --epochs to go on)"
        )
    else:
        console.print(f"done: {result.epochs_done} epochs, {summary['images_per_s']} images/s; checkpoint {ckpt}")
    console.print(_next_hint(ckpt, outcome.coarse))
    if result.tunas is not None:
        t = result.tunas
        console.print(
            f"TuNAS controller's choice: held-out acc {t.score:.3f}, cost {t.latency_ms[0]:.4g} {result.meta.get('cost_unit')} "
            f"(T0 {t.budgets[0]:.4g}), reward {t.reward:.4f}"
        )
        typer.echo(t.arch.arch)


def _print_few_shot(outcome: Any, json_out: bool) -> None:
    """Print what a few-shot training did (``outcome``: :class:`nas.supernet.SupernetTrainOutcome`)."""
    summary = outcome.summary()
    if json_out:
        print_json(summary)
        return
    few = outcome.few_shot
    for s in summary["shots"]:
        console.print(f"  {s['shot']}: {s['epochs_done']} epochs, {s['images_per_s']} images/s; {s['checkpoint']}")
    console.print(f"done: {len(few.shots)} shots; manifest {few.manifest}")
    console.print(_next_hint(few.manifest, outcome.coarse))


def _next_hint(ckpt: Path, coarse: bool) -> str:
    """The search command that uses a freshly trained supernet (a coarse-phase one scores stage 1 only)."""
    flag = "--estimator supernet:JOINT.pt --coarse-estimator" if coarse else "--estimator"
    return f"next: mnv4-nas search --target TARGET --budget BUDGET {flag} supernet:{ckpt} [--engine tunas]"


@app.command("info")
def info(
    checkpoint: str = typer.Argument(..., metavar="CKPT", help="Supernet checkpoint or few-shot manifest (.json)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """What a checkpoint holds: space, data, configuration, per-epoch history (for a few-shot manifest:
    its split and each shot's checkpoint in turn)."""
    from nas.space import space_from_meta
    from nas.supernet import is_few_shot, load_checkpoint, read_manifest

    if is_few_shot(checkpoint):
        m = read_manifest(checkpoint)
        paths = [str(Path(checkpoint).parent / s["checkpoint"]) for s in m["shots"]]
        if json_out:
            print_json({**m, "shot_meta": [load_checkpoint(p)["meta"] if Path(p).exists() else None for p in paths]})
            return
        console.print(
            f"[bold]{checkpoint}[/bold]: few-shot supernet of {space_from_meta(m['space'])}, "
            f"{len(paths)} shots on {m['split']}"
        )
        for s, p in zip(m["shots"], paths, strict=True):
            console.print(f"\n[bold]shot {s['label']}[/bold]")
            if Path(p).exists():
                _info_one(p, load_checkpoint(p)["meta"])
            else:
                console.print(f"{p}: not trained yet (rerun the training command)")
        return
    meta = load_checkpoint(checkpoint)["meta"]
    if json_out:
        print_json(meta)
        return
    _info_one(checkpoint, meta)


def _info_one(checkpoint: str, meta: dict[str, Any]) -> None:
    from nas.space import space_from_meta
    from nas.supernet import stored_config

    sp = space_from_meta(meta["space"])
    cfg = stored_config(meta)
    console.print(f"[bold]{checkpoint}[/bold]: space {sp} at {meta['resolution']} px, {meta['num_classes']} classes")
    d = meta["data"]
    console.print(f"data: {d['spec']} ({d.get('train_images', '?')} train / {d.get('val_images', '?')} held-out)")
    console.print(
        f"sampler {cfg['sampler']}{_sandwich_note(cfg)}"
        f"{_transform_note(cfg, meta)}, {meta['epochs_done']}/{cfg['epochs']} epochs, batch {cfg['batch_size']} x "
        f"{meta.get('world_size', 1)} process(es), lr {cfg['lr']}, seed {cfg['seed']}"
    )
    if meta.get("init_from"):
        i = meta["init_from"]
        console.print(f"started from {i['checkpoint']} ({i['space']}, {i['phase']}; {i['epochs_done']} epochs)")
    table = Table(title="history")
    keys = ["epoch", "loss", "train_acc", "images_per_s"] + sorted(
        {k for h in meta["history"] for k in h if k.startswith("val_acc_")}
    )
    for k in keys:
        table.add_column(k, justify="right")
    for h in meta["history"]:
        table.add_row(*(f"{h[k]:.4g}" if isinstance(h.get(k), float) else str(h.get(k, "-")) for k in keys))
    console.print(table)


@app.command("eval")
def eval_(
    checkpoint: str = typer.Argument(..., metavar="CKPT", help="Supernet checkpoint or few-shot manifest (.json)."),
    archs: list[str] = typer.Argument(
        None, metavar="[ARCH]...", help="Arch strings or spec files (members of the space)."
    ),
    sample_n: int = typer.Option(0, "--sample", min=0, help="Also score N random members."),
    extremes: bool = typer.Option(False, "--extremes", help="Also score the largest and smallest members."),
    seed: int = typer.Option(0, "--seed", help="Seed of --sample."),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Held-out accuracy of subnets inherited from a checkpoint (BatchNorm recalibrated per subnet)."""
    from nas.cost import count_macs
    from nas.space import sample
    from nas.supernet import largest_arch, load_supernet_estimator, smallest_arch

    check_seed(seed)
    set_threads(threads)
    est = load_supernet_estimator(checkpoint)
    sp = est.search_space
    items: list[tuple[str, Any]] = [("given", resolve(s)[0]) for s in archs or []]
    if extremes:
        items += [("largest", largest_arch(sp)), ("smallest", smallest_arch(sp))]
    rng = np.random.default_rng(seed)
    items += [(f"sample{i}", sample(sp, rng)) for i in range(sample_n)]
    if not items:
        raise UsageError("nothing to score: give ARCH strings, --sample N or --extremes")
    scores = est.score([a for _, a in items])
    rows = [
        {"name": n, "arch": a.arch, "macs": count_macs(a), "accuracy": float(s)} for (n, a), s in zip(items, scores)
    ]
    if json_out:
        print_json({"estimator": est.name, "meaning": est.meaning, "results": rows})
        return
    console.print(est.meaning)
    for r in rows:
        typer.echo(f"{r['accuracy']:.4f}  {format_macs(int(r['macs'])):>9} MACs  {r['name']:<9} {r['arch']}")


class PredictorModel(StrEnum):
    """Models of ``fit-predictor``."""

    mlp = "mlp"
    ridge = "ridge"


@app.command("fit-predictor")
def fit_predictor_cmd(
    checkpoint: str = typer.Argument(..., metavar="CKPT", help="Supernet checkpoint or few-shot manifest (.json)."),
    n: int = typer.Option(1000, "--n", help="Members to sample and score with the supernet (at least 10)."),
    out: str = typer.Option(..., "--out", "-o", help="Predictor file to write (JSON)."),
    model: PredictorModel = typer.Option(
        PredictorModel.ridge,
        "--model",
        case_sensitive=False,
        help="ridge (linear, L2 penalty by cross-validation) or mlp (an ensemble of small networks, as Once-for-All).",
    ),
    holdout: float = typer.Option(
        0.2, "--holdout", help="Share of the members kept out of the fit to report how well it predicts them (0-0.5]."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the sample, the split and the fit."),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Fit an accuracy predictor to a supernet's scores; use it as --estimator predictor:PRED."""
    from nas.supernet import check_fit_options, fit_predictor, load_supernet_estimator

    set_threads(threads)
    check_fit_options(n, holdout, model.value)
    path = check_output_file(out, "--out")
    est = load_supernet_estimator(checkpoint)
    progress = Progress(
        TextColumn("[bold]scoring with the supernet"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=json_out,
    )
    with progress:
        task = progress.add_task("score", total=None)
        pred = fit_predictor(
            est,
            n,
            model=model.value,
            holdout=holdout,
            seed=seed,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    pred.save(path)
    fit = pred.record["fit"]
    if json_out:
        print_json({"predictor": str(path), "estimator": pred.name, "meaning": pred.meaning, "fit": fit})
        return
    h = fit["heldout"]
    console.print(
        f"scored {fit['n']} members in {fit['scoring_seconds']:.0f} s ({fit['n'] / fit['scoring_seconds']:.2f}/s); "
        f"{fit['model']} fitted on {h['n_train']}, on the {h['n_test']} held out: Kendall τ {_tau_text(h['kendall_tau'])}, "
        f"Spearman ρ {_tau_text(h['spearman_rho'])}, RMSE {h['rmse']:.4f} (refitted on all {fit['n']})"
    )
    console.print(f"wrote {path}; next: mnv4-nas search --target TARGET --budget BUDGET --estimator predictor:{path}")


def _tau_text(x: float | None) -> str:
    # None: the held-out scores or predictions were all equal, so no ranking exists to compare
    return "undefined (all held-out scores equal)" if x is None else f"{x:.3f}"


class ExtractFormat(StrEnum):
    """Extracted model formats."""

    pt = "pt"
    onnx = "onnx"


@app.command("extract")
def extract(
    checkpoint: str = typer.Argument(..., metavar="CKPT", help="Supernet checkpoint or few-shot manifest (.json)."),
    arch: str = typer.Argument(..., metavar="ARCH", help="Arch string or spec file (a member of the space)."),
    output: str = typer.Option(..., "--output", "-o", help="Output file."),
    fmt: ExtractFormat = typer.Option(ExtractFormat.pt, "--format", "-f", case_sensitive=False, help="pt or onnx."),
) -> None:
    """Write a subnet with its inherited weights (BatchNorm recalibrated) as a state dict or ONNX."""
    from nas.supernet import extract_subnet

    spec = resolve(arch)[0]
    out = extract_subnet(checkpoint, spec, output, fmt.value)
    if out.onnx is not None:
        r = out.onnx
        console.print(
            f"wrote {r.path} (input {'x'.join(map(str, r.input_shape))}, max |ort - torch| = {r.max_abs_diff:.2e})"
        )
        return
    console.print(
        f"wrote {out.path}: {{arch, classes, mean, std, state_dict}} (torch.load(..., weights_only=True); "
        f"nas.build_model(parse_arch(arch)).load_state_dict(state_dict))"
    )
