"""``mnv4-nas latency …``: device catalog, tables (build, profile, bundle, import), predict, validate."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from nas.cli._common import UsageError, console, err_console, get_config, print_json, progress_bar, tables_dir_of
from nas.inputs import check_finite, check_name, check_output_dir, check_seed
from nas.units import utc_stamp
from nas.zoo import resolve

if TYPE_CHECKING:
    from nas.latency import Calibration, Device, FitResult, TimingConfig

app = typer.Typer(
    help="Per-device latency tables: targets, fit, build, profile, bundle, import, predict, validate.",
    no_args_is_help=True,
)

_TARGET_HELP = "Latency target (see `mnv4-nas latency targets`)."
_SPACE_HELP = "Search space whose distinct blocks to include (repeatable)."


def _tables_dir(ctx: typer.Context) -> Path | None:
    return tables_dir_of(ctx)


def _timing(ctx: typer.Context, threads: int | None, runs: int | None, sessions: int | None) -> TimingConfig:
    from nas.latency import TimingConfig

    cfg = get_config(ctx).latency
    t = TimingConfig(
        threads=cfg.threads if threads is None else threads,
        runs=cfg.runs if runs is None else runs,
        sessions=cfg.sessions if sessions is None else sessions,
        warmup=cfg.warmup,
        flush_mib=cfg.flush_mib,
        guard=cfg.guard,
    )
    return t


def _models(specs: list[str]) -> list[Any]:
    return [resolve(s)[0] for s in specs]


def _fmt(v: float | None, digits: int = 1) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _warn(text: str) -> None:
    err_console.print(f"mnv4-nas: warning: {text}", markup=False)


def _warn_calibration(cal: Calibration) -> None:
    """A fit whose figures mean nothing (or a term stuck at a bound) is said on stderr, not only in the table's header."""
    for text in cal.warnings():
        err_console.print(f"mnv4-nas: warning: {text}", markup=False)


@app.command("targets")
def targets(ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the device catalog: class, dtype, runtime, unsupported features, table, fit errors."""
    from nas.latency import find_table, load_catalog, read_table

    tdir = _tables_dir(ctx)
    rows: list[dict[str, Any]] = []  # JSON records
    for dev in load_catalog(tdir).values():
        path = find_table(dev.name, tdir)
        table = read_table(path) if path else None
        rows.append(
            {
                "target": dev.name,
                "class": dev.device_class,
                "dtype": dev.dtype,
                "runtime": dev.runtime,
                "unsupported": list(dev.unsupported),
                "table": str(path) if path else None,
                "source": table.source if table else None,
                "entries": len(table) if table else 0,
                "fit_data": dev.fit.data if dev.fit else None,
                "fit_mape_pct": dev.fit.mape_pct if dev.fit else None,
                "loo_mape_pct": dev.fit.loo_mape_pct if dev.fit else None,
                "ridge_point": dev.model.ridge_point,
            }
        )
    if json_out:
        print_json(rows)
        return
    t = Table(title="latency targets")
    for col in ("target", "class", "dtype", "runtime", "no", "table", "entries", "fit on", "MAPE %", "LOO %"):
        t.add_column(col, no_wrap=col != "runtime")
    for r in rows:
        t.add_row(
            r["target"],
            r["class"],
            r["dtype"],
            r["runtime"],
            ",".join(r["unsupported"]) or "-",
            r["source"] or "none",
            str(r["entries"]),
            r["fit_data"] or "-",
            _fmt(r["fit_mape_pct"]),
            _fmt(r["loo_mape_pct"]),
        )
    console.print(t)


def ensure_calibrated(ctx: typer.Context, target: str, quiet: bool = False) -> None:
    """For a host target whose table was measured on another machine: time a few reference models here and
    fit the table's scale (seconds, once per machine; the fit is stored), saying so on stderr."""
    from nas.latency import HOST_TARGETS, ensure_calibration

    if target not in HOST_TARGETS:
        return
    with progress_bar(f"calibrating {target} to this machine", enabled=not quiet) as update:
        runs = ensure_calibration(target, _tables_dir(ctx), progress=update)
    for run in runs:
        err_console.print(
            f"mnv4-nas: note: {run.path.name} was measured on another machine ({run.calibration.table_machine}); "
            f"{run.calibration.note()}; stored in {run.stored}",
            markup=False,
        )
        if run.disturbed:
            _warn(f"{run.disturbed} reference models were timed while the machine was busy: calibrate again later")


@app.command("calibrate")
def calibrate_cmd(
    ctx: typer.Context,
    target: str = typer.Option("host-cpu", "--target", "-t", help="host-cpu or host-cpu-tflite-int8."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Fit a host table's scale to this machine: time a handful of its reference models end to end
    (seconds) and store the fit beside your tables (it applies whenever the table is used here)."""
    from nas.latency import ensure_calibration

    with progress_bar(f"calibrating {target}", enabled=not json_out) as update:
        runs = ensure_calibration(target, _tables_dir(ctx), force=True, progress=update)
    out = [
        {"table": str(r.path), "stored": str(r.stored), "disturbed": r.disturbed, **r.calibration.__dict__}
        for r in runs
    ]
    if json_out:
        print_json(out)
        return
    for r in runs:
        console.print(f"{r.path}: {r.calibration.note()} in {r.calibration.wall_s:.1f} s; stored in {r.stored}")
        console.print(
            f"  table measured on: {r.calibration.table_machine}\n  this machine:      {r.calibration.machine}"
        )
        if r.disturbed:
            _warn(f"{r.disturbed} reference models were timed while the machine was busy: calibrate again later")


def _fit_rows(results: list[tuple[Device, FitResult]]) -> list[dict[str, Any]]:
    out = []
    for dev, res in results:
        out.append(
            {
                "target": dev.name,
                "free": list(res.free),
                "n": len(res.measured),
                "fit_mape_pct": res.mape_pct,
                "loo_mape_pct": res.cv_mape_pct,
                "cv": res.cv,
                "ridge_point": dev.model.ridge_point,
                "model": {k: getattr(dev.model, k) for k in dev.model.__dataclass_fields__},
                "points": [
                    {
                        "model": lbl,
                        "measured_ms": float(m),
                        "fit_ms": float(p),
                        "loo_ms": None if c is None else float(c),
                    }
                    for lbl, m, p, c in zip(
                        res.labels,
                        res.measured,
                        res.predicted,
                        res.cv_predicted if res.cv_predicted is not None else [None] * len(res.labels),
                    )
                ][: 20 if len(res.labels) > 20 else None],
            }
        )
    return out


@app.command("fit")
def fit(
    ctx: typer.Context,
    target: list[str] = typer.Option([], "--target", "-t", help="Target(s) to refit (default: every paper target)."),
    write: bool = typer.Option(True, "--write/--dry-run", help="Rewrite devices.toml (default) or only print."),
    build: bool = typer.Option(True, "--build/--no-build", help="Rebuild the refitted targets' roofline tables."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Refit device models to the published latencies (paper targets) or to a profiled table (host-cpu)."""
    from nas.latency import refit_targets

    with console.status("fitting device models…") if not json_out else _null():
        results, rebuilt_paths = refit_targets(target or None, _tables_dir(ctx), write=write, build=build)
    rebuilt = [str(p) for p in rebuilt_paths]
    rows = _fit_rows(results)
    if json_out:
        print_json({"targets": rows, "written": write, "rebuilt": rebuilt})
        return
    t = Table(title="device-model fits" + ("" if write else " (dry run)"))
    for col in ("target", "free parameters", "n", "fit MAPE %", "LOO MAPE %", "ridge MACs/B"):
        t.add_column(col)
    for r in rows:
        cv = "" if r["cv"] in ("loo", "none") else f" ({r['cv']})"
        t.add_row(
            r["target"],
            ", ".join(r["free"]),
            str(r["n"]),
            _fmt(r["fit_mape_pct"]),
            _fmt(r["loo_mape_pct"]) + cv,
            f"{r['ridge_point']:.1f}",
        )
    console.print(t)
    for p in rebuilt:
        console.print(f"rebuilt {p}")


@contextmanager
def _null() -> Iterator[None]:
    yield


@app.command("build")
def build(
    ctx: typer.Context,
    target: list[str] = typer.Option([], "--target", "-t", help=_TARGET_HELP + " Repeatable."),
    all_targets: bool = typer.Option(False, "--all", help="Every target with a fitted device model except host-cpu."),
    space: list[str] = typer.Option([], "--space", "-s", help=_SPACE_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Write a target's table from its roofline device model (source roofline-fit) for every distinct
    block of the zoo and the given search spaces."""
    from nas.latency import HOST_TARGET, build_table, get_device, load_catalog

    tdir = _tables_dir(ctx)
    names = list(target)
    if all_targets:
        names += [n for n, d in load_catalog(tdir).items() if n != HOST_TARGET and d.fit is not None]
    if not names:
        raise UsageError("give --target T (repeatable) or --all")
    out = []
    for name in dict.fromkeys(names):
        res = build_table(get_device(name, tdir), space, tdir)
        out.append({"target": name, "path": str(res.path), "entries": len(res.table), "skipped": len(res.skipped)})
        if not json_out:
            skipped = f" ({len(res.skipped)} unsupported blocks left out)" if res.skipped else ""
            console.print(f"wrote {res.path}: {len(res.table)} entries, source roofline-fit{skipped}")
    if json_out:
        print_json(out)


@app.command("profile")
def profile(
    ctx: typer.Context,
    target: str = typer.Option(
        "host-cpu", "--target", "-t", help="host-cpu (onnxruntime FP32) or host-cpu-tflite-int8 (LiteRT XNNPACK INT8)."
    ),
    space: list[str] = typer.Option([], "--space", "-s", help=_SPACE_HELP),
    model: list[str] = typer.Option([], "--model", "-m", help="Also profile this model's layers (repeatable)."),
    zoo: bool = typer.Option(True, "--zoo/--no-zoo", help="Include every zoo model's layers."),
    calib: int = typer.Option(16, "--calib", help="Random architectures per space measured whole (calibration)."),
    threads: int | None = typer.Option(None, "--threads", help="Intra-op threads (default: config, 1)."),
    runs: int | None = typer.Option(None, "--runs", help="Timed runs per session (default: config)."),
    sessions: int | None = typer.Option(None, "--sessions", help="Fresh sessions per entry (default: config)."),
    fresh: bool = typer.Option(False, "--fresh", help="Discard the existing table and start over."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the calibration samples (default: config)."),
    fit_model: bool = typer.Option(
        True, "--fit/--no-fit", help="Refit the target's roofline device model to the table (for --fallback roofline)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Measure every table entry on this machine (resumable: re-run after an interruption); the table
    goes to the user's tables folder."""
    from nas.latency import plan_profile, profile_target

    if seed is not None:
        check_seed(seed)
    plan = plan_profile(
        target,
        space,
        _models(model),
        zoo=zoo,
        calib=calib,
        seed=get_config(ctx).project.seed if seed is None else seed,
        cfg=_timing(ctx, threads, runs, sessions),
        tables_dir=_tables_dir(ctx),
        fresh=fresh,
    )  # every check before the progress bar starts
    with progress_bar(f"profiling {target}") as update:
        done = profile_target(plan, progress=update, fit=fit_model)
    res, fit_res = done.result, done.fit
    cal = res.calibration
    out = {
        "target": target,
        "path": str(res.path),
        "entries": len(res.table),
        "models": len(res.table.models),
        "measured_now": res.measured,
        "already_present": res.skipped,
        "call_ms": res.table.call_ms,
        "loadavg": res.table.meta.get("loadavg"),
        "calibration": {k: v for k, v in cal.__dict__.items()},
        "roofline_fit_mape": fit_res.mape_pct if fit_res else None,
        "roofline_cv_mape": fit_res.cv_mape_pct if fit_res else None,
        "disturbed": list(res.disturbed),
        "machine": res.table.meta.get("machine"),
    }
    _warn_calibration(cal)
    if res.disturbed:
        _warn(
            f"{len(res.disturbed)} entries were measured while other work slowed this machine down (the guard's "
            "reference graph ran slower in every try) and were not kept: run the same command again when it is quieter"
        )
    if json_out:
        print_json(out)
        return
    console.print(
        f"wrote {res.path}: {out['entries']} entries + {out['models']} whole models "
        f"({res.measured} measured now, {res.skipped} already there); load average {out['loadavg']}"
    )
    console.print(
        f"per call {res.table.call_ms * 1e3:.1f} µs; context scale {cal.context_scale:.3f}; overhead "
        f"{cal.overhead_ms:.3f} ms; cache {cal.cache_ms_per_mib:.4f} ms/MiB above {cal.cache_mib:g} MiB"
    )
    if cal.n_models:
        console.print(cal.note())
    if fit_res is not None:
        console.print(
            f"roofline device model refitted to the entries (for --fallback roofline): MAPE "
            f"{_fmt(fit_res.mape_pct)}%, {fit_res.cv} MAPE {_fmt(fit_res.cv_mape_pct)}%"
        )


@app.command("bundle")
def bundle(
    ctx: typer.Context,
    target: str = typer.Option(..., "--target", "-t", help=_TARGET_HELP),
    space: list[str] = typer.Option([], "--space", "-s", help=_SPACE_HELP),
    output: Path = typer.Option(..., "--output", "-o", help="New folder for the bundle."),
    model: list[str] = typer.Option([], "--model", "-m", help="Also include this model's layers and the model whole."),
    zoo: bool = typer.Option(True, "--zoo/--no-zoo", help="Include every zoo model's layers (and models whole)."),
    quantize: bool | None = typer.Option(
        None, "--quantize/--no-quantize", help="INT8 graphs (default: when the target's dtype is int8)."
    ),
    fmt: str = typer.Option(
        "onnx", "--format", help="onnx (Python runner, onnxruntime) or tflite (benchmark_model over adb)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Export one model per table entry, a manifest and a runner script to measure on a device."""
    from nas.latency import bundle_target, get_device

    get_device(target, _tables_dir(ctx))  # an unknown target is said before the progress bar starts
    extra = _models(model)
    with progress_bar(f"exporting bundle for {target}") as update:
        res = bundle_target(
            target,
            output,
            space,
            extra,
            zoo=zoo,
            quantize=quantize,
            fmt=fmt,
            tables_dir=_tables_dir(ctx),
            progress=update,
        )
    out = {
        "target": target,
        "path": str(res.path),
        "entries": res.entries,
        "skipped": len(res.skipped),
        "quantized": res.quantized,
    }
    if json_out:
        print_json(out)
        return
    console.print(
        f"wrote {res.path}: {res.entries} {fmt} models ({'INT8' if res.quantized else 'FP32'})"
        + (f", {len(res.skipped)} blocks {target} cannot run left out" if res.skipped else "")
    )
    if fmt == "tflite":
        console.print(
            f"run {res.path}/run_benchmark.sh (adb); then: mnv4-nas latency import --target {target} {res.path}"
        )
    else:
        console.print(
            f"on the device: python run_bundle.py --ep nnapi|coreml|cpu; then: mnv4-nas latency import --target {target} RESULTS.csv"
        )


@app.command("import")
def import_(
    ctx: typer.Context,
    results: Path | None = typer.Argument(
        None,
        metavar="RESULTS",
        help="Bundle results CSV, plain key,latency_ms CSV, or a TFLite bundle folder (benchmark_model logs).",
    ),
    target: str = typer.Option(..., "--target", "-t", help=_TARGET_HELP),
    from_models: Path | None = typer.Option(
        None,
        "--from-models",
        help="End-to-end model latencies: a CSV model_or_spec,latency_ms, or a bundle of whole models "
        "(search --verify) with its results: fit the device model.",
    ),
    space: list[str] = typer.Option([], "--space", "-s", help="With --from-models: spaces to build the table for."),
    cache_mib: float | None = typer.Option(
        None, "--cache-mib", help="Device last-level cache (MiB) for the cache term."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Read device measurements back into a table (source imported), or fit the device model to a few
    end-to-end model latencies (--from-models) and build its table."""
    from nas.latency import get_device, import_from_models, import_results

    tdir = _tables_dir(ctx)
    dev = get_device(target, tdir)
    if (results is None) == (from_models is None):
        raise UsageError("give either RESULTS (per-entry measurements) or --from-models CSV")
    if cache_mib is not None:
        check_finite(cache_mib, "--cache-mib", lo=0)
    if results is not None:
        path, table = import_results(dev, results, tdir, cache_mib)
        out = {
            "target": target,
            "path": str(path),
            "source": "imported",
            "entries": len(table),
            "models": len(table.models),
            "overhead_ms": table.overhead_ms,
        }
        _print_import_calibration(table, out, json_out)
        return
    assert from_models is not None
    imp = import_from_models(target, from_models, space, tdir)
    res, built, cat_path = imp.fit, imp.built, imp.catalog
    out = {
        "target": target,
        "catalog": str(cat_path),
        "path": str(built.path),
        "source": "roofline-fit",
        "n": imp.n,
        "fit_mape_pct": res.mape_pct,
        "loo_mape_pct": res.cv_mape_pct,
        "free": list(res.free),
    }
    if json_out:
        print_json(out)
        return
    console.print(
        f"fitted {', '.join(res.free)} to {imp.n} models: MAPE {_fmt(res.mape_pct)}%, "
        f"LOO MAPE {_fmt(res.cv_mape_pct)}%; updated {cat_path}"
    )
    console.print(f"wrote {built.path}: {len(built.table)} entries, source roofline-fit")


def _print_import_calibration(table: Any, out: dict[str, Any], json_out: bool) -> None:
    """An import's result, with the calibration on its whole-model rows and what makes it suspect."""
    from nas.latency import table_calibration

    cal = table_calibration(table)
    if cal.n_models:
        out["calibration"] = {"n_models": cal.n_models, "mape_pct": cal.mape_pct, "warnings": cal.warnings()}
    _warn_calibration(cal)
    if json_out:
        print_json(out)
        return
    console.print(f"wrote {out['path']}: {len(table)} entries (+{len(table.models)} whole models), source imported")
    console.print(
        cal.note() if cal.n_models else "no whole models measured: the overhead per inference is not calibrated"
    )


@app.command("predict")
def predict_cmd(
    ctx: typer.Context,
    target: str | None = typer.Option(None, "--target", "-t", help=_TARGET_HELP + " (default: config search.target)"),
    model: str | None = typer.Option(None, "--model", "-m", help="Zoo model name."),
    spec: str | None = typer.Option(None, "--spec", help="Spec file (.json/.toml) or arch string."),
    fallback: str | None = typer.Option(
        None, "--fallback", help="'roofline': estimate entries missing from the table."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print JSON (keys: target, latency_ms, source, …)."),
) -> None:
    """Predicted latency of one model on a target, from the target's table."""
    from nas.latency import load_predictor
    from nas.zoo import ZOO

    if (model is None) == (spec is None):
        raise UsageError("give exactly one of --model NAME or --spec FILE")
    if model is not None and model not in ZOO:
        raise UsageError(f"unknown model {model!r} (known: {', '.join(ZOO)}); use --spec for files")
    arch, name = resolve(model or spec or "")
    tgt = get_config(ctx).search.target if target is None else check_name(target, "--target")
    ensure_calibrated(ctx, tgt, json_out)
    predictor = load_predictor(tgt, _tables_dir(ctx), fallback)
    pred = predictor.predict_archs([arch])
    ms = float(pred.latency_ms[0])
    out: dict[str, Any] = {"target": tgt, "model": name, "latency_ms": ms, "source": pred.source}
    if pred.estimated_keys:
        out["estimated"] = True
        out["estimated_keys"] = pred.estimated_keys
    if json_out:
        print_json(out)
        return
    note = f" — ESTIMATE: {len(pred.estimated_keys)} entries from the roofline model" if pred.estimated_keys else ""
    console.print(f"{name} on {tgt}: {ms:.3f} ms (source {pred.source}){note}")


@app.command("validate")
def validate(
    ctx: typer.Context,
    target: str = typer.Option("host-cpu", "--target", "-t", help=_TARGET_HELP),
    archs: int = typer.Option(200, "--archs", "-n", help="Random architectures to measure (host-cpu)."),
    seed: int | None = typer.Option(None, "--seed", help="Sampling seed (default: config project.seed)."),
    space: list[str] = typer.Option([], "--space", "-s", help="Spaces to sample from (default: the table's)."),
    published: bool = typer.Option(False, "--published", help="Compare with the paper's published rows instead."),
    threads: int | None = typer.Option(None, "--threads", help="Intra-op threads (default: the table's)."),
    runs: int | None = typer.Option(None, "--runs", help="Timed runs per session (default: config)."),
    calibrate: bool = typer.Option(
        True, "--calibrate/--no-calibrate", help="Fit a table made on another machine to this one first (default)."
    ),
    json_out: bool = typer.Option(
        False, "--json", help="Print JSON (n, within_5pct, within_10pct, mape, kendall_tau)."
    ),
) -> None:
    """Predicted vs measured: N random architectures measured end-to-end here, or the published rows."""
    from nas.latency import (
        HOST_TARGETS,
        load_predictor,
        not_measurable_hint,
        sample_archs,
        validate_host,
        validate_published,
    )

    cfg = get_config(ctx)
    if seed is not None:
        check_seed(seed)
    # every option is checked before a calibration (tens of seconds) or a measurement starts
    if not published:
        if target not in HOST_TARGETS:
            raise UsageError(not_measurable_hint(target))
        if archs < 1:
            raise UsageError(f"--archs must be >= 1 (got {archs})")
        _timing(ctx, threads, runs, None)
    stamp = utc_stamp()
    out_dir = check_output_dir(
        Path(cfg.project.output_dir) / f"latency-validate-{target}-{stamp}", "[project] output_dir"
    )
    if calibrate and not published and target in HOST_TARGETS:
        ensure_calibrated(ctx, target, json_out)
    predictor = load_predictor(target, _tables_dir(ctx))
    if published:
        report = validate_published(predictor, out_dir)
    else:
        spaces = space or predictor.table.spaces
        sampled = sample_archs(spaces, archs, cfg.project.seed if seed is None else seed)
        table_threads = predictor.table.meta.get("threads")
        t = _timing(
            ctx, threads if threads is not None else (int(table_threads) if table_threads else None), runs, None
        )
        with progress_bar(f"validating {target}") as update:
            report = validate_host(predictor, sampled, t, out_dir, progress=update)
    s = report.summary
    if json_out:
        print_json({**s, "report": str(out_dir / "report.csv"), "scatter": str(out_dir / "scatter.png")})
        return
    console.print(
        f"{target} ({s['source']}) vs {s['compared_with']}: n={s['n']}, within ±5% {s['within_5pct']:.1%}, "
        f"±10% {s['within_10pct']:.1%}, MAPE {s['mape']:.2f}%, Kendall τ {s['kendall_tau']:.3f}"
    )
    for label, name in (
        ("no_cache_term", "without the cache term"),
        ("no_context_scale", "without the context scale"),
        ("block_sum_only", "plain block sum"),
    ):
        if label in s:
            a = s[label]
            console.print(
                f"  {name}: ±5% {a['within_5pct']:.1%}, ±10% {a['within_10pct']:.1%}, MAPE {a['mape']:.2f}%, "
                f"τ {a['kendall_tau']:.3f}"
            )
    if s.get("calibration"):
        console.print(f"  table: {s['calibration']}")
    if s.get("n_disturbed"):
        _warn(
            f"{s['n_disturbed']} of {s['n'] + s['n_disturbed']} measurements were taken while other work slowed this "
            "machine down (the guard's reference graph ran slower in every try): left out of the figures above, "
            "marked 'disturbed' in report.csv; validate again when the machine is quieter"
        )
    console.print(f"wrote {out_dir / 'report.csv'} and {out_dir / 'scatter.png'}")


device_app = typer.Typer(help="Your devices: add a catalog entry to your tables folder.", no_args_is_help=True)
app.add_typer(device_app, name="device")


@device_app.command("add")
def device_add(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="New target name (letters, digits, '-', '_', '.')."),
    device_class: str = typer.Option(..., "--class", help="cpu, dsp, gpu, ane or edgetpu."),
    dtype: str = typer.Option(..., "--dtype", help="int8, fp16 or fp32."),
    runtime: str = typer.Option(..., "--runtime", help="What its latencies are measured with, e.g. 'TFLite XNNPACK'."),
    description: str = typer.Option("", "--description", help="Free text."),
    unsupported: list[str] = typer.Option([], "--unsupported", help="A feature it cannot run: attention, gelu."),
    like: str | None = typer.Option(None, "--like", help="Start its device model from this target's."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Add a device to your catalog (beside the shipped one, which stays as it is)."""
    from nas.latency import add_device

    dev, path = add_device(
        check_name(name, "NAME"),
        device_class,
        dtype,
        runtime,
        _tables_dir(ctx),
        description=description,
        unsupported=unsupported,
        like=like,
    )
    out = {
        "target": dev.name,
        "class": dev.device_class,
        "dtype": dev.dtype,
        "runtime": dev.runtime,
        "catalog": str(path),
    }
    if json_out:
        print_json(out)
        return
    console.print(f"added {dev.name} ({dev.device_class}, {dev.dtype}, {dev.runtime}) to {path}")
    console.print(
        f"next: mnv4-nas latency bundle --target {dev.name} --space S --output DIR (or --format tflite), run it "
        f"on the device, then mnv4-nas latency import --target {dev.name} RESULTS"
    )
