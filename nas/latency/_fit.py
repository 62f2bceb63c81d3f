"""Fitting a target's device model: to the published latencies, to a few measured models, or to a
profiled table's entries; and writing the result back to the catalog."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from nas.cost import ops_of
from nas.errors import NasError
from nas.latency._catalog import Device, FitReport, load_catalog, save_device, unsupported_in
from nas.latency._keys import arch_features, key_features, key_ops
from nas.latency._published import PUBLISHED_ROUNDING_STD_MS, published_points
from nas.latency._roofline import FitResult, fit_device_model
from nas.latency._table import LatencyTable
from nas.spec import ArchSpec
from nas.units import utc_now


def fit_published(device: Device) -> FitResult:
    """Fit ``device`` to the published latencies of the zoo models the paper reports for it."""
    from nas.zoo import get_spec

    points = [
        p for p in published_points(device.name) if not unsupported_in(device, arch_features(get_spec(p.zoo_name)))
    ]
    if not points:
        raise NasError(f"no published latencies for target {device.name!r} (only the paper's targets have them)")
    return fit_device_model(
        device,
        [ops_of(get_spec(p.zoo_name)) for p in points],
        [p.latency_ms for p in points],
        with_fixed=[True] * len(points),
        labels=[p.zoo_name for p in points],
        rounding_std_ms=PUBLISHED_ROUNDING_STD_MS,
    )


def fit_models(device: Device, models: Sequence[tuple[str, ArchSpec, float]]) -> FitResult:
    """Fit ``device`` to end-to-end latencies ``(label, arch, ms)`` measured on it."""
    if len(models) < 2:
        raise NasError("fitting a device model needs end-to-end latencies of at least 2 models")
    for label, arch, _ in models:
        bad = unsupported_in(device, arch_features(arch))
        if bad:
            raise NasError(f"{label}: target {device.name} cannot run {', '.join(bad)}")
    return fit_device_model(
        device,
        [ops_of(a) for _, a, _ in models],
        [ms for _, _, ms in models],
        with_fixed=[True] * len(models),
        labels=[label for label, _, _ in models],
    )


def fit_table(device: Device, table: LatencyTable) -> FitResult:
    """Fit ``device``'s per-layer terms to a measured table's entries (for ``--fallback roofline``)."""
    keys = [k for k in table.entry_ms if not unsupported_in(device, key_features(k))]
    if len(keys) < 3:
        raise NasError(f"table {table.path} has too few entries ({len(keys)}) to fit a device model")
    return fit_device_model(
        device,
        [key_ops(k) for k in keys],
        [table.entry_ms[k] for k in keys],
        with_fixed=[False] * len(keys),
        labels=keys,
    )


def fitted_device(device: Device, result: FitResult, data: str) -> Device:
    """``device`` with the fitted parameters and a fit report (today's date)."""
    loo = result.cv_mape_pct
    report = FitReport(
        data=data if result.cv in ("loo", "none") else f"{data} ({result.cv} CV)",
        n=len(result.measured),
        mape_pct=result.mape_pct,
        loo_mape_pct=None if loo is None or math.isnan(loo) else loo,
        fitted=utc_now().date().isoformat(),
    )
    return replace(device, model=result.model, fit=report)


def refit_catalog(
    targets: Sequence[str] | None = None, tables_dir: Path | None = None, write: bool = True
) -> list[tuple[Device, FitResult]]:
    """Refit every target that has published latencies (or ``targets``) and rewrite the catalog."""
    catalog = load_catalog(tables_dir)
    names = list(targets) if targets else [n for n in catalog if published_points(n)]
    out = []
    for name in names:
        if name not in catalog:
            raise NasError(f"unknown target {name!r} (known: {', '.join(catalog)})")
        dev = catalog[name]
        if published_points(name):
            result = fit_published(dev)
            new = fitted_device(dev, result, "published")
        else:
            from nas.latency._store import load_table

            table = load_table(name, tables_dir)
            result = fit_table(dev, table)
            new = fitted_device(dev, result, f"table:{table.path.name if table.path else name}")
        if write:
            save_device(new, tables_dir)
        out.append((new, result))
    return out


__all__ = ["fit_models", "fit_published", "fit_table", "fitted_device", "refit_catalog"]
