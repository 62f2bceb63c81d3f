"""Validation: predicted vs measured latencies — random architectures measured end-to-end on this
host, or the paper's published rows for a paper target — with a CSV report and a scatter plot."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nas._io import write_atomic, write_text_atomic
from nas._lock import owned_tempdir
from nas.errors import NasError
from nas.latency._catalog import HOST_TARGETS
from nas.latency._onnxrt import export_key, time_onnx
from nas.latency._predict import Predictor
from nas.latency._published import published_points
from nas.latency._timing import Timing, TimingConfig, interference_guard
from nas.spec import ArchSpec, arch_keys


def summarize(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float | int]:
    """``n``, ``within_5pct``, ``within_10pct`` (shares), ``mape`` (%), ``kendall_tau``."""
    from scipy.stats import kendalltau

    p, m = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    if len(p) == 0:
        return {"n": 0, "within_5pct": math.nan, "within_10pct": math.nan, "mape": math.nan, "kendall_tau": math.nan}
    rel = np.abs(p - m) / m
    tau = float(kendalltau(p, m).statistic) if len(p) >= 2 else math.nan
    return {
        "n": int(len(p)),
        "within_5pct": float(np.mean(rel <= 0.05)),
        "within_10pct": float(np.mean(rel <= 0.10)),
        "mape": float(np.mean(rel) * 100),
        "kendall_tau": tau,
    }


@dataclass
class ValidationReport:
    """Per-architecture rows and the summary figures; ``out_dir`` holds report.csv, scatter.png, summary.json."""

    target: str
    kind: str  # "host" | "published"
    rows: pd.DataFrame
    summary: dict[str, Any]
    out_dir: Path | None = None


def scatter_png(rows: pd.DataFrame, path: Path, title: str) -> Path:
    """Predicted vs measured scatter (log axes, ±10% band) with matplotlib's Agg backend."""
    import matplotlib.pyplot as plt

    fig = scatter_figure(rows, title)
    buf = io.BytesIO()
    fig.savefig(buf, dpi=120, format="png")
    plt.close(fig)
    write_atomic(path, lambda fh: fh.write(buf.getvalue()), OUT_HINT)
    return path


def scatter_figure(rows: pd.DataFrame, title: str) -> Any:
    """The figure of :func:`scatter_png`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    m, p = rows["measured_ms"].to_numpy(float), rows["predicted_ms"].to_numpy(float)
    lo, hi = float(min(m.min(), p.min())) * 0.8, float(max(m.max(), p.max())) * 1.25
    xs = np.geomspace(lo, hi, 50)
    ax.plot(xs, xs, color="k", lw=0.8)
    ax.fill_between(xs, xs * 0.9, xs * 1.1, color="tab:green", alpha=0.15, label="±10%")
    ax.fill_between(xs, xs * 0.95, xs * 1.05, color="tab:green", alpha=0.25, label="±5%")
    busy = rows["disturbed"].to_numpy(bool) if "disturbed" in rows else np.zeros(len(m), bool)
    ax.scatter(m[~busy], p[~busy], s=12, color="tab:blue", zorder=3)
    if busy.any():
        ax.scatter(m[busy], p[busy], s=18, marker="x", color="tab:red", zorder=3, label="machine busy (left out)")
    ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), xlabel="measured (ms)", ylabel="predicted (ms)")
    _log_ticks(ax, lo, hi)
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def _log_ticks(ax: Any, lo: float, hi: float) -> None:
    """Plain decimal labels (0.5, 1, 2 — not 5×10⁻¹) at a density that fits the span: matplotlib's
    default log labels overlapped on spans of about one decade."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    decades = math.log10(hi / lo)
    subs = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0) if decades < 0.7 else (1.0, 2.0, 5.0) if decades < 2.5 else (1.0,)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(LogLocator(base=10, subs=subs))
        axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())


#: how a user fixes a report folder that cannot be written (ends the one-line error)
OUT_HINT = "set [project] output_dir in nas.toml to a writable folder"


def _write(report: ValidationReport, out_dir: Path, title: str) -> ValidationReport:
    """report.csv, scatter.png and summary.json, each written atomically (a full disk is a one-line error)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NasError(f"cannot create {out_dir} ({exc.strerror or type(exc).__name__}); {OUT_HINT}") from None
    write_text_atomic(out_dir / "report.csv", report.rows.to_csv(index=False, float_format="%.6g"), OUT_HINT)
    if len(report.rows):
        scatter_png(report.rows, out_dir / "scatter.png", title)
    write_text_atomic(out_dir / "summary.json", json.dumps(report.summary, indent=2) + "\n", OUT_HINT)
    report.out_dir = out_dir
    return report


def _title(target: str, summary: dict[str, Any]) -> str:
    return (
        f"{target}: n={summary['n']}, ±5% {summary['within_5pct']:.0%}, ±10% {summary['within_10pct']:.0%}, "
        f"MAPE {summary['mape']:.1f}%, τ {summary['kendall_tau']:.3f}"
    )


def validate_published(predictor: Predictor, out_dir: Path | None = None) -> ValidationReport:
    """Compare the table's predictions with the published latencies of the zoo models the paper reports."""
    from nas.zoo import get_spec

    points = published_points(predictor.target)
    if not points:
        raise NasError(f"no published latencies for target {predictor.target!r} (only the paper's targets have them)")
    rows = []
    for pt in points:
        arch = get_spec(pt.zoo_name)
        try:
            ms, est = predictor.predict_keys(arch_keys(arch))
        except NasError as exc:
            if "cannot run" in str(exc):
                continue
            raise
        rows.append({"model": pt.zoo_name, "published_row": pt.row, "predicted_ms": ms, "measured_ms": pt.latency_ms})
    df = pd.DataFrame(rows)
    df["error_pct"] = (df["predicted_ms"] / df["measured_ms"] - 1) * 100
    summary: dict[str, Any] = {
        "target": predictor.target,
        "source": predictor.table.source,
        "compared_with": "published",
    }
    summary.update(summarize(df["predicted_ms"].to_numpy(), df["measured_ms"].to_numpy()))
    report = ValidationReport(predictor.target, "published", df, summary)
    return _write(report, out_dir, _title(predictor.target, summary)) if out_dir else report


def not_measurable_hint(target: str) -> str:
    """Why ``latency validate`` cannot measure ``target`` here, and what compares it instead: the
    paper's published rows where the target has them, else the user's own device measurements."""
    if published_points(target):
        return f"only {' and '.join(HOST_TARGETS)} can be measured here; compare {target} with the paper's latencies: --published"
    return (
        f"only {' and '.join(HOST_TARGETS)} can be measured here, and {target} has no published latencies to compare with; "
        f"time a few models end to end on the device and compare with `mnv4-nas latency predict --target {target} "
        f"--spec …`, or fit the device to them with `mnv4-nas latency import --target {target} --from-models CSV` "
        "(it reports the leave-one-out error)"
    )


MeasureArchFn = Callable[[ArchSpec, TimingConfig, Path], Timing]


def measure_arch(arch: ArchSpec, cfg: TimingConfig, workdir: Path) -> Timing:
    """Export a whole architecture (BN statistics calibrated) and time it end-to-end."""
    path = workdir / "model.onnx"
    shape = export_key(arch.arch, path)
    return time_onnx(path, shape, cfg)


def validate_host(
    predictor: Predictor,
    archs: Sequence[tuple[str, ArchSpec]],
    cfg: TimingConfig,
    out_dir: Path,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    measure: MeasureArchFn | None = None,
) -> ValidationReport:
    """Measure each architecture end-to-end (with the target's runtime) and compare with the table's prediction.

    Rows are appended to ``out_dir/report.csv`` as they finish. A measurement that other work
    disturbed in every session, retries included, is kept in the report with ``disturbed`` true and
    left out of the summary figures (``n_disturbed`` counts them). The summary also gives the figures
    without the cache term, without the context scale, and for the plain block sum (entries minus
    the per-call cost), to show what each term buys (the other terms kept as calibrated).
    """
    if measure is None:
        measure = _runtime_measure(predictor.target)
        _seed_guard(predictor.table, cfg)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NasError(f"cannot create {out_dir} ({exc.strerror or type(exc).__name__}); {OUT_HINT}") from None
    table = predictor.table
    preds = []
    for _, arch in archs:  # fail fast on a missing key, before any measuring
        preds.append(predictor.predict_keys(arch_keys(arch)))
    rows: list[dict[str, Any]] = []
    csv_path = out_dir / "report.csv"
    with owned_tempdir("validate") as tmp:
        for i, ((name, arch), (pred, est)) in enumerate(zip(archs, preds)):
            if progress is not None:
                progress(i, len(archs), name)
            t = measure(arch, cfg, tmp)
            keys = arch_keys(arch)
            weights = sum(table.weight_bytes.get(k, 0) for k in keys)
            cache = float(table.cache_ms(float(weights)))
            raw_sum = sum(table.raw_ms.get(k, 0.0) for k in keys)
            scaled = sum(table.entry_ms.get(k, 0.0) for k in keys)
            row = {
                "name": name,
                "predicted_ms": pred,
                "measured_ms": t.median_ms,
                "measured_std_ms": t.std_ms,
                "retimed_sessions": t.retries,
                "disturbed": t.disturbed,
                "error_pct": (pred / t.median_ms - 1) * 100,
                "predicted_no_cache_ms": pred - cache,
                "predicted_no_scale_ms": pred - scaled + raw_sum,
                "block_sum_ms": raw_sum,
                "weight_mib": weights / 2**20,
                "estimated_keys": len(est),
                "arch": arch.arch,
            }
            rows.append(row)
            try:
                pd.DataFrame([row]).to_csv(csv_path, mode="a", header=i == 0, index=False, float_format="%.6g")
            except OSError as exc:
                raise NasError(f"cannot write {csv_path} ({exc.strerror or type(exc).__name__}); {OUT_HINT}") from None
        if progress is not None:
            progress(len(archs), len(archs), "")
    every = pd.DataFrame(rows)
    df = every[~every["disturbed"].astype(bool)]
    summary: dict[str, Any] = {"target": predictor.target, "source": table.source, "compared_with": "measured"}
    summary.update(summarize(df["predicted_ms"].to_numpy(), df["measured_ms"].to_numpy()))
    summary["n_disturbed"] = int(len(every) - len(df))
    summary["threads"] = cfg.threads
    summary["calibration"] = table.meta.get("calibration", "")
    ablations = (
        ("no_cache_term", "predicted_no_cache_ms"),
        ("no_context_scale", "predicted_no_scale_ms"),
        ("block_sum_only", "block_sum_ms"),
    )
    for label, col in ablations:
        alt = summarize(df[col].to_numpy(), df["measured_ms"].to_numpy())
        summary[label] = {k: alt[k] for k in ("within_5pct", "within_10pct", "mape", "kendall_tau")}
    report = ValidationReport(predictor.target, "host", every, summary)
    return _write(report, out_dir, _title(predictor.target, summary))


def _seed_guard(table: Any, cfg: TimingConfig) -> None:
    """A table profiled on this machine knows how fast the guard's reference graph ran there when it was
    quiet: starting from that, a machine busy from the start is seen as busy."""
    ref = table.meta.get("guard_ref_ms", "")
    if cfg.guard and ref and table.meta.get("calibration") == "native":
        guard = interference_guard(cfg)
        if guard is not None:
            guard.seed(float(ref))


def _runtime_measure(target: str) -> MeasureArchFn:
    """Whole-model timing with ``target``'s host runtime."""
    from nas.latency._runtime import host_runtime

    rt = host_runtime(target)

    def measure(arch: ArchSpec, cfg: TimingConfig, workdir: Path) -> Timing:
        return rt.measure_key(arch.arch, cfg, workdir)

    return measure


def sample_archs(spaces: Sequence[str], n: int, seed: int) -> list[tuple[str, ArchSpec]]:
    """``n`` random architectures drawn round-robin from ``spaces`` with one seeded generator."""
    from nas.latency._keys import import_space

    if not spaces:
        raise NasError("no search space to sample from; pass --space S (profile the table with the same --space)")
    space_mod = import_space()
    loaded = [(name, space_mod.load_space(name)) for name in spaces]
    rng = np.random.default_rng(seed)
    return [(f"{loaded[i % len(loaded)][0]}#{i}", space_mod.sample(loaded[i % len(loaded)][1], rng)) for i in range(n)]


__all__ = [
    "ValidationReport",
    "measure_arch",
    "not_measurable_hint",
    "sample_archs",
    "scatter_png",
    "summarize",
    "validate_host",
    "validate_published",
]
