"""Table workflows behind ``mnv4-nas latency fit|profile|bundle|import --from-models``.

Each is a library call: the CLI parses options, calls one of these and prints what it returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nas.errors import NasError
from nas.latency._build import BuildResult, build_table
from nas.latency._bundle import BundleResult, make_bundle, read_model_latencies
from nas.latency._catalog import HOST_TARGETS, Device, get_device, save_device
from nas.latency._fit import fit_models, fit_table, fitted_device, refit_catalog
from nas.latency._keys import distinct_keys
from nas.latency._profile import ProfileResult, ProgressFn, check_resumable, profile_host
from nas.latency._roofline import FitResult
from nas.latency._runtime import HostRuntime, host_runtime
from nas.latency._table import find_table, read_table
from nas.latency._timing import TimingConfig
from nas.latency._validate import sample_archs
from nas.spec import ArchSpec, arch_keys


def table_keys(spaces: Sequence[str], models: Sequence[ArchSpec] = (), zoo: bool = True) -> list[str]:
    """Distinct layer keys of ``spaces``, of the zoo (``zoo``) and of ``models``, each once, in that order."""
    keys = distinct_keys(spaces, include_zoo=zoo)
    for arch in models:
        keys += [k for k in arch_keys(arch) if k not in keys]
    return keys


@dataclass(frozen=True)
class ProfilePlan:
    """A checked ``latency profile`` run: what to measure, how and where (built by :func:`plan_profile`)."""

    target: str
    keys: list[str]
    models: list[ArchSpec]
    spaces: tuple[str, ...]
    cfg: TimingConfig
    tables_dir: Path | None
    fresh: bool
    runtime: HostRuntime


@dataclass(frozen=True)
class ProfileOutcome:
    """A profiling run and, when it refitted one, the target's roofline device model fit."""

    result: ProfileResult
    fit: FitResult | None


def plan_profile(
    target: str,
    spaces: Sequence[str] = (),
    models: Sequence[ArchSpec] = (),
    *,
    zoo: bool = True,
    calib: int = 16,
    seed: int = 0,
    cfg: TimingConfig = TimingConfig(),
    tables_dir: Path | None = None,
    fresh: bool = False,
) -> ProfilePlan:
    """Check a profiling request before any work: a host target, its runtime, something to measure, and a
    table that can be resumed. Whole models timed for calibration: ``models``, the zoo, ``calib`` samples
    of each space."""
    if target not in HOST_TARGETS:
        raise NasError(
            f"only {' and '.join(HOST_TARGETS)} (this machine) can be profiled here; for {target!r} use "
            "`latency bundle` + `latency import`, or `latency import --from-models`"
        )
    runtime = host_runtime(target)  # a missing tflite extra is said before any work
    if calib < 0:
        raise NasError(f"--calib must be >= 0 (got {calib})")
    keys = table_keys(spaces, models, zoo)
    calib_models = list(models) + (_zoo_specs(published_only=False) if zoo else [])
    if spaces and calib:
        calib_models += [a for _, a in sample_archs(spaces, calib * len(spaces), seed)]
    if not keys:
        raise NasError("nothing to profile: give --space, --model or keep --zoo")
    check_resumable(target, cfg, tables_dir, fresh)
    return ProfilePlan(target, keys, calib_models, tuple(spaces), cfg, tables_dir, fresh, runtime)


def profile_target(plan: ProfilePlan, progress: ProgressFn | None = None, fit: bool = True) -> ProfileOutcome:
    """Measure what the target's table lacks (resumable) and, with ``fit`` and three entries or more, refit
    the target's roofline device model to the table (for ``--fallback roofline``)."""
    res = profile_host(
        plan.keys,
        plan.models,
        cfg=plan.cfg,
        target=plan.target,
        spaces=plan.spaces,
        tables_dir=plan.tables_dir,
        fresh=plan.fresh,
        progress=progress,
        runtime=plan.runtime,
    )
    fit_res = None
    if fit and len(res.table) >= 3:
        dev = get_device(plan.target, plan.tables_dir)
        fit_res = fit_table(dev, res.table)
        save_device(fitted_device(dev, fit_res, f"table:{res.path.name}"), plan.tables_dir)
    return ProfileOutcome(res, fit_res)


def refit_targets(
    targets: Sequence[str] | None = None, tables_dir: Path | None = None, write: bool = True, build: bool = True
) -> tuple[list[tuple[Device, FitResult]], list[Path]]:
    """Refit device models (:func:`refit_catalog`); with ``write`` and ``build``, rebuild the tables of the
    refitted targets that are roofline fits (or missing). Returns the fits and the rebuilt tables."""
    results = refit_catalog(targets or None, tables_dir, write=write)
    rebuilt: list[Path] = []
    if write and build:
        for dev, _ in results:
            path = find_table(dev.name, tables_dir)
            old = read_table(path) if path else None
            if old is None or old.source == "roofline-fit":
                rebuilt.append(build_table(dev, old.spaces if old else (), tables_dir).path)
    return results, rebuilt


def bundle_target(
    target: str,
    output: Path,
    spaces: Sequence[str] = (),
    models: Sequence[ArchSpec] = (),
    *,
    zoo: bool = True,
    quantize: bool | None = None,
    fmt: str = "onnx",
    tables_dir: Path | None = None,
    progress: ProgressFn | None = None,
) -> BundleResult:
    """A measurement bundle for a device: one model per table entry (``spaces``, the zoo, ``models``) and the
    whole models (``models`` and, with ``zoo``, the published zoo models)."""
    dev = get_device(target, tables_dir)
    keys = table_keys(spaces, models, zoo)
    whole = list(models) + (_zoo_specs(published_only=True) if zoo else [])
    return make_bundle(dev, keys, output, models=whole, quantize=quantize, progress=progress, fmt=fmt)


@dataclass(frozen=True)
class ModelsImport:
    """A device model fitted to end-to-end model latencies, saved to the catalog, and its table."""

    device: Device
    fit: FitResult
    n: int
    catalog: Path
    built: BuildResult


def import_from_models(
    target: str, latencies: Path, spaces: Sequence[str] = (), tables_dir: Path | None = None
) -> ModelsImport:
    """Fit ``target``'s device model to whole-model latencies (a CSV ``model_or_spec,latency_ms`` or a
    bundle's results), save it to the user's catalog and build its roofline table for ``spaces``."""
    dev = get_device(target, tables_dir)
    pairs = read_model_latencies(latencies)
    if len(pairs) < 2:
        raise NasError(f"{latencies}: {len(pairs)} whole-model latency found; fitting needs at least 2")
    res = fit_models(dev, pairs)
    new = fitted_device(dev, res, f"models:{latencies.name}")
    cat_path = save_device(new, tables_dir)
    return ModelsImport(new, res, len(pairs), cat_path, build_table(new, spaces, tables_dir))


def _zoo_specs(published_only: bool) -> list[ArchSpec]:
    from nas.zoo import PUBLISHED_NAMES, ZOO, get_spec

    return [get_spec(n) for n in (PUBLISHED_NAMES if published_only else ZOO)]
