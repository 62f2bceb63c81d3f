"""``latency build``: a target's table from its fitted roofline device model (source ``roofline-fit``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from nas.latency._catalog import Device, unsupported_in
from nas.latency._keys import distinct_keys, key_features, key_ops
from nas.latency._roofline import layer_ms
from nas.latency._table import LatencyTable, make_row, new_table, table_file, write_dir, write_table
from nas.units import utc_timestamp


def model_meta(device: Device) -> str:
    """Compact ``name=value`` list of a device model (table metadata)."""
    return ", ".join(f"{f.name}={getattr(device.model, f.name):.6g}" for f in fields(device.model))


def fit_note(device: Device) -> str:
    """One-line summary of how the device model was fitted."""
    if device.fit is None:
        return "device model not fitted (catalog defaults)"
    loo = "" if device.fit.loo_mape_pct is None else f", LOO MAPE {device.fit.loo_mape_pct:.1f}%"
    return (
        f"fitted to {device.fit.data} ({device.fit.n} points) on {device.fit.fitted}: "
        f"MAPE {device.fit.mape_pct:.1f}%{loo}"
    )


@dataclass(frozen=True)
class BuildResult:
    """What ``latency build`` wrote."""

    path: Path
    table: LatencyTable
    skipped: tuple[str, ...]  # keys the target cannot run


def roofline_table(device: Device, keys: Sequence[str], spaces: Sequence[str] = ()) -> tuple[LatencyTable, list[str]]:
    """Table of ``keys`` from ``device``'s roofline model; keys it cannot run are left out (returned)."""
    rows, skipped = [], []
    for key in dict.fromkeys(keys):
        if unsupported_in(device, key_features(key)):
            skipped.append(key)
            continue
        rows.append(make_row(key, device.dtype, layer_ms(device.model, key_ops(key), device.dtype), math.nan, 0))
    meta = {
        "target": device.name,
        "source": "roofline-fit",
        "runtime": f"{device.runtime} (roofline device model)",
        "dtype": device.dtype,
        "spaces": ",".join(spaces),
        "created": utc_timestamp(),
        "overhead_ms": f"{device.model.fixed_ms:.6g}",
        "device_model": model_meta(device),
        "note": fit_note(device),
    }
    return new_table(meta, rows), skipped


def build_table(device: Device, spaces: Sequence[str] = (), tables_dir: Path | None = None) -> BuildResult:
    """Write ``<tables_dir>/<target>.csv`` for every distinct block of the zoo and ``spaces``."""
    keys = distinct_keys(spaces)
    table, skipped = roofline_table(device, keys, spaces)
    path = write_table(table, write_dir(tables_dir) / table_file(device.name))
    return BuildResult(path, table, tuple(skipped))


__all__ = ["BuildResult", "build_table", "fit_note", "model_meta", "roofline_table"]
