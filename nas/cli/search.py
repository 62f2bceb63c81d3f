"""``mnv4-nas search``: the main job — find an architecture within a latency budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from nas.cli._common import UsageError, console, get_config, print_json, progress_bar, tables_dir_of
from nas.cost import count_macs, count_params
from nas.inputs import check_finite, check_int, check_name, check_output_dir, check_seed
from nas.search import (
    SearchOutcome,
    SearchSettings,
    best_table_rows,
    check_ray_address,
    check_storage,
    outcome_json,
    provenance_table,
    run_search,
)
from nas.supernet import TUNAS_BETA
from nas.units import format_count, format_macs


class _RichReporter:
    """One progress bar per stage with the feasible count and the best score so far."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]{task.description:>7}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled,
        )
        self.tasks: dict[str, TaskID] = {}
        self.stats: dict[str, list[float]] = {}

    def note(self, text: str) -> None:
        if self.enabled:
            console.print(text)

    def stage_start(self, label: str, total: int, done: int) -> None:
        if not self.progress.live.is_started and self.enabled:
            self.progress.start()
        self.stats[label] = [0, 0, float("-inf")]
        self.tasks[label] = self.progress.add_task(label, total=total, completed=done, status="")

    def trial_done(self, label: str, feasible: bool, score: float | None) -> None:
        st = self.stats[label]
        st[0] += 1
        if feasible:
            st[1] += 1
            if score is not None:
                st[2] = max(st[2], score)
        best = f"best {st[2]:.4g}" if st[2] > float("-inf") else "none within budget yet"
        self.progress.update(self.tasks[label], advance=1, status=f"within budget {int(st[1])}/{int(st[0])}, {best}")

    def stage_end(self, label: str) -> None:
        task = self.tasks[label]
        self.progress.update(task, completed=self.progress.tasks[task].total)

    def stop(self) -> None:
        if self.progress.live.is_started:
            self.progress.stop()


def search(
    ctx: typer.Context,
    target: list[str] = typer.Option(
        None, "--target", "-t", help="Target device (repeat for a universal search). Default from nas.toml."
    ),
    budget: list[str] = typer.Option(
        None, "--budget", "-b", help="Latency budget per --target: 4ms, '4 ms', 4000us, 0.004s."
    ),
    space: str | None = typer.Option(
        None,
        "--space",
        help="Search space name or .toml path (default: the space whose reference fits the budget best).",
    ),
    estimator: str | None = typer.Option(
        None,
        "--estimator",
        help="zen[@RES] (default), naswot[@RES], params, supernet:CKPT, supernet+macs:CKPT (supernet accuracy and MAC count, mean rank), predictor:PRED (a predictor fitted by `supernet fit-predictor`, thousands of candidates per second).",
    ),
    coarse_estimator: str | None = typer.Option(
        None,
        "--coarse-estimator",
        help="Score the coarse stage with this estimator instead (e.g. supernet:CKPT of a supernet trained with --phase coarse); best and Pareto front then come from the fine stage. Default: search.coarse_estimator in nas.toml (empty: --estimator).",
    ),
    trials: int | None = typer.Option(
        None,
        "--trials",
        help="Trials of a --one-stage search (default 100); with two stages, split 40/60 unless --coarse/--fine-trials.",
    ),
    coarse_trials: int | None = typer.Option(None, "--coarse-trials", help="Trials of the coarse stage (default 40)."),
    fine_trials: int | None = typer.Option(None, "--fine-trials", help="Trials of the fine stage (default 60)."),
    coarse_top: int = typer.Option(
        1, "--coarse-top", help="Refine the best K coarse architectures (fine trials are split)."
    ),
    one_stage: bool = typer.Option(
        False, "--one-stage", help="Search the joint space at once instead of coarse → fine."
    ),
    pareto: bool = typer.Option(False, "--pareto", help="NSGA-II over (score, latency) even for one target."),
    seed: int | None = typer.Option(None, "--seed", help="Seed (default: project.seed)."),
    out: Path | None = typer.Option(
        None, "--out", help="Run folder (default results/<targets>-<budgets>-<time>); an existing one is resumed."
    ),
    storage: str | None = typer.Option(
        None,
        "--storage",
        help="Optuna storage: an RDB URL (postgresql://…) or a journal file (default: <out>/study.journal).",
    ),
    study: str | None = typer.Option(
        None, "--study", help="Study name (same name + same --storage resumes or joins a search)."
    ),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="Run trials on this Ray cluster (e.g. ray://head:10001 or auto)."
    ),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="Ray workers (without --ray-address: a local Ray with this many)."
    ),
    fallback: str | None = typer.Option(
        None, "--fallback", help="'roofline': estimate blocks missing from a table (marked in the output)."
    ),
    engine: str = typer.Option(
        "optuna",
        "--engine",
        help="optuna (default) or tunas (REINFORCE with TuNAS's absolute reward; needs --estimator supernet:CKPT, supernet+macs:CKPT or predictor:PRED).",
    ),
    beta: float = typer.Option(
        TUNAS_BETA, "--beta", help="TuNAS engine: β < 0 of the reward R = Q + β·|T/T0 − 1| (TuNAS default −0.1)."
    ),
    verify: bool = typer.Option(
        False,
        "--verify",
        help="Measure the best and Pareto picks end to end on every host target searched (measured vs predicted, budget kept?); write a bundle of them for every device target.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Search for the best architecture within a latency budget on one or more targets."""
    cfg = get_config(ctx)
    _check_options(
        target,
        budget,
        trials,
        coarse_trials,
        fine_trials,
        coarse_top,
        seed,
        beta,
        estimator,
        coarse_estimator,
        study,
        storage,
        ray_address,
        out,
    )
    targets = list(target or [])
    budgets = list(budget or [])
    if not targets and not budgets:
        targets, budgets = [cfg.search.target], [cfg.search.budget]
    elif not targets:
        if len(budgets) != 1:
            raise UsageError("several --budget values need one --target each")
        targets = [cfg.search.target]
    if fallback not in (None, "roofline"):
        raise UsageError(f"--fallback must be 'roofline' (got {fallback!r})")
    n_coarse, n_fine = coarse_trials, fine_trials
    if trials is not None and not one_stage and n_coarse is None and n_fine is None:
        n_coarse, n_fine = max(1, round(trials * 0.4)), max(1, trials - round(trials * 0.4))
    s = cfg.search
    # TuNAS counts controller steps (one sampled architecture each); it needs more than TPE needs trials.
    d_trials, d_coarse, d_fine = (
        (s.tunas_steps, s.tunas_coarse_steps, s.tunas_fine_steps)
        if engine == "tunas"
        else (s.trials, s.coarse_trials, s.fine_trials)
    )
    tdir = tables_dir_of(ctx)
    settings = SearchSettings(
        targets=targets,
        budgets=budgets,
        space=space,
        estimator=cfg.search.estimator if estimator is None else estimator,
        # The nas.toml default applies to two-stage searches only; a --coarse-estimator flag given with
        # --one-stage still reaches run_search, which refuses it.
        coarse_estimator=coarse_estimator or (None if one_stage else cfg.search.coarse_estimator or None),
        one_stage=one_stage,
        trials=d_trials if trials is None else trials,
        coarse_trials=d_coarse if n_coarse is None else n_coarse,
        fine_trials=d_fine if n_fine is None else n_fine,
        coarse_top=coarse_top,
        pareto=pareto,
        seed=cfg.project.seed if seed is None else seed,
        out=out,
        output_root=Path(cfg.project.output_dir),
        storage=storage,
        study=study,
        ray_address=ray_address,
        workers=workers,
        fallback=fallback,
        tables_dir=tdir,
        engine=engine,
        beta=beta,
    )
    from nas.cli.latency import ensure_calibrated

    for t in targets:  # a host table made on another machine is fitted to this one first (seconds, once)
        ensure_calibrated(ctx, t, json_out)
    rep = _RichReporter(enabled=not json_out)
    try:
        outcome = run_search(settings, rep)
    finally:
        rep.stop()
    report = _verify(outcome, tdir, json_out) if verify else None
    if json_out:
        extra = (
            {}
            if report is None
            else {
                "verify": report.rows.to_dict("records"),
                "verify_bundles": {t: str(p) for t, p in report.bundles.items()},
            }
        )
        print_json({**outcome_json(outcome), **extra})
        return
    _print_outcome(outcome, settings)
    if report is not None:
        _print_verify(report)


def _verify(outcome: SearchOutcome, tdir: Path | None, quiet: bool) -> Any:
    """``--verify``: the best and Pareto picks measured on the host targets, bundled for the device targets."""
    from nas.latency import picks_of, verify_picks

    picks = picks_of(outcome.best, outcome.pareto)
    with progress_bar("verifying the picks", enabled=not quiet) as update:
        return verify_picks(picks, outcome.budget_ms, outcome.out_dir, tables_dir=tdir, progress=update)


def _print_verify(report: Any) -> None:
    def fmt_ms(v: float) -> str:
        return "-" if v != v else f"{v:.3f}"

    if not report.rows.empty:
        table = Table(title="verified: measured end to end on this machine vs predicted")
        for col in ("pick", "target", "predicted ms", "measured ms", "error %", "budget ms", "budget kept (measured)"):
            table.add_column(col, no_wrap=True)
        for r in report.rows.itertuples(index=False):
            kept = "yes" if r.within_budget_measured else "[red]NO[/red]"
            busy = " (machine busy)" if r.disturbed else ""
            table.add_row(
                r.pick,
                r.target,
                fmt_ms(r.predicted_ms),
                fmt_ms(r.measured_ms) + busy,
                f"{r.error_pct:+.1f}",
                f"{r.budget_ms:g}",
                kept,
            )
        console.print(table)
        console.print(f"wrote {report.csv}")
    for target, path in report.bundles.items():
        console.print(
            f"{target}: bundle of the picks in {path}; time it on the device (README.txt there), then "
            f"`mnv4-nas latency import --target {target} --from-models RESULTS` compares and refits"
        )


def _check_options(
    target: list[str] | None,
    budget: list[str] | None,
    trials: int | None,
    coarse_trials: int | None,
    fine_trials: int | None,
    coarse_top: int,
    seed: int | None,
    beta: float,
    estimator: str | None,
    coarse_estimator: str | None,
    study: str | None,
    storage: str | None,
    ray_address: str | None,
    out: Path | None,
) -> None:
    """Every option in range before any work starts: 0 or "" never means the default."""
    for t in target or []:
        check_name(t, "--target")
    for b in budget or []:
        check_name(b, "--budget")
    for name, n in (("--trials", trials), ("--coarse-trials", coarse_trials), ("--fine-trials", fine_trials)):
        if n is not None:
            check_int(n, name, lo=1, hi=10**7)
    check_int(coarse_top, "--coarse-top", lo=1, hi=1000)
    if seed is not None:
        check_seed(seed)
    check_finite(beta, "--beta", hi=0, hi_open=True)
    for name, v in (("--estimator", estimator), ("--coarse-estimator", coarse_estimator), ("--study", study)):
        if v is not None:
            check_name(v, name)
    if storage is not None:
        check_storage(storage)
    if ray_address is not None:
        check_ray_address(ray_address)
    if out is not None:
        check_output_dir(out, "--out")


def _print_outcome(outcome: SearchOutcome, settings: SearchSettings) -> None:
    budgets_ms = outcome.budget_ms
    rows = best_table_rows(outcome, k=4)
    targets = list(outcome.all_latency_ms)
    lat_cols = [
        provenance_table(a, targets, set(budgets_ms), settings.fallback, settings.tables_dir) for _, _, a in rows
    ]
    table = Table(title=f"best architectures — score by {outcome.estimator}; latency (ms) on every target")
    table.add_column("target", no_wrap=True)
    table.add_column("budget", justify="right", no_wrap=True)
    for label, score, arch in rows:
        table.add_column(
            f"{label}\nscore {score:.4g}\n{format_count(count_params(arch))} p, {format_macs(count_macs(arch))}",
            justify="right",
            no_wrap=True,
        )
    table.add_column("provenance", no_wrap=True)
    for t in targets:
        cells = []
        for col in lat_cols:
            ms, _ = col[t]
            over = t in budgets_ms and ms is not None and ms > budgets_ms[t]
            cells.append("n/a" if ms is None else (f"[red]{ms:.3f}[/red]" if over else f"{ms:.3f}"))
        table.add_row(t, f"{budgets_ms[t]:g}" if t in budgets_ms else "", *cells, lat_cols[0][t][1])
    console.print(table)
    console.print(f"best: {outcome.best.arch}", soft_wrap=True)
    console.print(
        f"results: {outcome.out_dir} (best.json, best.timm.txt, trials.csv, pareto.csv, pareto.png, summary.md)"
    )
