"""Verified picks: a search's best architecture and Pareto picks measured end to end on every host
target searched (predicted vs measured, budget kept or not), and a bundle of just those picks for
every device target, to time on the device and read back with ``latency import --from-models``."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from nas._io import write_text_atomic
from nas._lock import owned_tempdir
from nas.latency._catalog import HOST_TARGETS, get_device
from nas.latency._timing import Timing, TimingConfig
from nas.spec import ArchSpec, arch_keys

#: timing of each verified model (as a calibration's reference models)
VERIFY_TIMING = TimingConfig(threads=1, runs=20, sessions=2, warmup=3)
MeasureFn = Callable[[str, ArchSpec, TimingConfig, Path], Timing]


@dataclass
class VerifyReport:
    """Measured vs predicted per (pick, host target), and the bundles written for device targets."""

    rows: pd.DataFrame
    bundles: dict[str, Path] = field(default_factory=dict)
    csv: Path | None = None

    @property
    def all_within_budget(self) -> bool:
        """Whether every measured pick keeps its budget (True when nothing was measured)."""
        return bool(self.rows.empty or self.rows["within_budget_measured"].all())


def _host_measure(target: str, arch: ArchSpec, cfg: TimingConfig, workdir: Path) -> Timing:
    from nas.latency._runtime import host_runtime

    return host_runtime(target).measure_key(arch.arch, cfg, workdir)


def verify_picks(
    picks: Sequence[tuple[str, ArchSpec]],
    budgets_ms: Mapping[str, float],
    out_dir: Path,
    *,
    tables_dir: Path | None = None,
    measure: MeasureFn = _host_measure,
    bundle_format: str | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> VerifyReport:
    """Measure ``picks`` (label, arch) on every host target of ``budgets_ms`` with its own runtime and
    compare with the prediction and the budget; for every other target write ``out_dir/verify-<target>/``,
    a bundle of the picks as whole models (``bundle_format``: tflite when the extra is installed, else
    onnx). Rows go to ``out_dir/verify.csv``."""
    from nas.latency._bundle import make_bundle
    from nas.latency._predict import load_predictor

    rows: list[dict[str, Any]] = []
    hosts = [t for t in budgets_ms if t in HOST_TARGETS]
    total = len(hosts) * len(picks)
    with owned_tempdir("verify") as work:
        for target in hosts:
            predictor = load_predictor(target, tables_dir)
            threads = int(predictor.table.meta.get("threads", "1") or 1)
            v = VERIFY_TIMING
            cfg = TimingConfig(threads=threads, runs=v.runs, sessions=v.sessions, warmup=v.warmup)
            for label, arch in picks:
                if progress is not None:
                    progress(len(rows), total, f"{target}: {label}")
                predicted = predictor.predict_keys(arch_keys(arch))[0]
                t = measure(target, arch, cfg, work)
                budget = float(budgets_ms[target])
                rows.append(
                    {
                        "pick": label,
                        "target": target,
                        "predicted_ms": predicted,
                        "measured_ms": t.median_ms,
                        "error_pct": (predicted / t.median_ms - 1) * 100,
                        "budget_ms": budget,
                        "within_budget_predicted": predicted <= budget,
                        "within_budget_measured": t.median_ms <= budget,
                        "disturbed": t.disturbed,
                        "calibration": predictor.table.meta.get("calibration", ""),
                        "arch": arch.arch,
                    }
                )
    if progress is not None:
        progress(total, total, "")
    df = pd.DataFrame(rows, columns=_COLUMNS)
    report = VerifyReport(df)
    for target in (t for t in budgets_ms if t not in HOST_TARGETS):
        fmt = bundle_format or _default_bundle_format()
        dev = get_device(target, tables_dir)
        res = make_bundle(dev, [], out_dir / f"verify-{target}", models=[a for _, a in picks], fmt=fmt)
        report.bundles[target] = res.path
    if rows:
        report.csv = out_dir / "verify.csv"
        write_text_atomic(report.csv, df.to_csv(index=False, float_format="%.6g"), "give --out a writable folder")
    return report


_COLUMNS = [
    "pick",
    "target",
    "predicted_ms",
    "measured_ms",
    "error_pct",
    "budget_ms",
    "within_budget_predicted",
    "within_budget_measured",
    "disturbed",
    "calibration",
    "arch",
]


def _default_bundle_format() -> str:
    import importlib.util

    return "tflite" if importlib.util.find_spec("litert_torch") is not None else "onnx"


def picks_of(best: ArchSpec, pareto: pd.DataFrame, limit: int = 5) -> list[tuple[str, ArchSpec]]:
    """The best architecture and up to ``limit`` other Pareto picks (by score), labelled."""
    from nas.spec import parse_arch

    out = [("best", best)]
    seen = {best.arch}
    if not pareto.empty and "arch" in pareto:
        for i, text in enumerate(pareto["arch"].astype(str)):
            if text not in seen and len(out) <= limit:
                seen.add(text)
                out.append((f"pareto{i}", parse_arch(text)))
    return out


def fmt_ms(v: float) -> str:
    """Milliseconds for the console."""
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


__all__ = ["VERIFY_TIMING", "VerifyReport", "fmt_ms", "picks_of", "verify_picks"]
