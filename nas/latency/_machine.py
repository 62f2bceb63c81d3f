"""The machine a host table was measured on, and how a host table made on another machine is fitted
to this one.

A profiled table records a fingerprint of its machine: CPU model, logical cores, host name, runtime
and version, threads. The host name is part of it on purpose: two VMs of one kind, same CPU model
and core count, ran the same graphs 1.5-1.7x apart. On a machine whose fingerprint differs, the
table's ranking still holds but its scale does not: :func:`calibrate_host` times a handful of
reference models end to end here (seconds), fits ``measured = scale · (predicted − overhead) +
overhead_here`` and stores the fit beside the user's tables (``<target>.calibration.json``), keyed
by the table's content and this machine's fingerprint; :func:`apply_calibration` applies it
whenever that table is loaded here.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas._io import write_text_atomic
from nas.errors import ConfigError, NasError
from nas.inputs import as_error, path_exists, read_json
from nas.latency._calibration import space_members
from nas.latency._catalog import TABLES_HINT
from nas.latency._host import cpu_model
from nas.latency._table import LatencyTable
from nas.spec import ArchSpec, arch_keys, parse_arch
from nas.units import utc_timestamp

CALIBRATION_FORMAT = "mnv4-nas/host-calibration-v1"
#: reference models timed by a calibration (a few seconds each at most)
N_REFERENCE = 8
#: models predicted slower than this are not used as references (they would cost seconds each)
MAX_REFERENCE_MS = 40.0
_SCALE_BOUNDS = (0.05, 20.0)


@dataclass(frozen=True)
class Machine:
    """What a host measurement depends on besides the graph: CPU, cores, host, runtime, threads."""

    cpu: str
    cores: int
    host: str
    runtime: str
    threads: int

    @property
    def fingerprint(self) -> str:
        """16 hex digits identifying the machine and runtime set-up."""
        text = "|".join((self.cpu, str(self.cores), self.host, self.runtime, str(self.threads)))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def describe(self) -> str:
        """One line for table metadata and messages."""
        return f"{self.cpu}, {self.cores} cores, host {self.host}; {self.runtime}, {self.threads} thread(s)"

    def meta(self) -> dict[str, str]:
        """Table metadata: ``machine`` (readable) and ``fingerprint``."""
        return {"machine": self.describe(), "fingerprint": self.fingerprint}


def this_machine(runtime: str, threads: int) -> Machine:
    """This machine, running ``runtime`` with ``threads`` threads."""
    return Machine(cpu_model(), os.cpu_count() or 1, socket.gethostname(), runtime, int(threads))


def table_machine_state(table: LatencyTable, here: Machine | None) -> str:
    """``native`` (measured on this machine), ``foreign`` (another machine or runtime, or not recorded)
    or ``n/a`` (not a measured host table)."""
    if here is None:
        return "n/a"
    return "native" if table.meta.get("fingerprint") == here.fingerprint else "foreign"


def table_sha256(table: LatencyTable) -> str:
    """Content hash of the table's file (what a calibration is keyed by)."""
    if table.path is None:
        raise NasError(f"table {table.target} has no file: only tables read from a file can be calibrated")
    return hashlib.sha256(Path(table.path).read_bytes()).hexdigest()


@dataclass(frozen=True)
class HostCalibration:
    """A fit of a host table to this machine: ``measured ≈ scale · (predicted − overhead) + overhead_ms``."""

    target: str
    table_sha256: str
    table_machine: str
    machine: str
    fingerprint: str
    scale: float
    overhead_ms: float
    n: int
    mape_before_pct: float
    mape_pct: float
    loo_mape_pct: float | None
    created: str
    wall_s: float
    loadavg: str
    models: list[dict[str, Any]] = field(default_factory=list)

    def note(self) -> str:
        """One line for the console and the table metadata."""
        loo = "" if self.loo_mape_pct is None else f", leave-one-out {self.loo_mape_pct:.1f}%"
        return (
            f"calibrated to this machine on {self.created[:10]}: ×{self.scale:.3f}, overhead {self.overhead_ms:.3f} ms, "
            f"from {self.n} reference models (MAPE {self.mape_before_pct:.1f}% → {self.mape_pct:.1f}%{loo})"
        )


def apply_calibration(table: LatencyTable, cal: HostCalibration) -> LatencyTable:
    """The table with its per-inference terms restated for this machine (entries and cache term scaled,
    overhead replaced); ``meta["calibration"]`` says so."""
    meta = dict(table.meta)
    meta["context_scale"] = f"{table.context_scale * cal.scale:.6g}"
    meta["cache_ms_per_mib"] = f"{table.cache_ms_per_mib * cal.scale:.6g}"
    meta["overhead_ms"] = f"{cal.overhead_ms:.6g}"
    meta["calibration"] = cal.note()
    return LatencyTable(meta, table.df, table.path)


def calibration_file(user_dir: Path, target: str) -> Path:
    """Where the calibrations of ``target``'s tables on this user's machines are stored."""
    return Path(user_dir) / f"{target}.calibration.json"


def read_calibrations(path: Path) -> list[HostCalibration]:
    """The calibrations stored in ``path`` (none when it does not exist); a malformed file is a one-line error."""
    if not path_exists(path):
        return []
    with as_error(ConfigError):
        data = read_json(path, "calibration file")
    if not isinstance(data, dict) or data.get("format") != CALIBRATION_FORMAT:
        raise ConfigError(f"{path}: not an mnv4-nas calibration file (format {CALIBRATION_FORMAT!r}); remove it")
    out = []
    names = {f for f in HostCalibration.__dataclass_fields__}
    for i, rec in enumerate(data.get("calibrations", [])):
        if not isinstance(rec, dict) or set(rec) != names:
            raise ConfigError(f"{path}: calibration {i} is malformed (expected the keys {', '.join(sorted(names))})")
        try:
            cal = HostCalibration(**rec)
            ok = all(
                isinstance(getattr(cal, k), (int, float)) and math.isfinite(getattr(cal, k))
                for k in ("scale", "overhead_ms")
            )
            ok = ok and _SCALE_BOUNDS[0] <= cal.scale <= _SCALE_BOUNDS[1] and cal.overhead_ms >= 0
        except TypeError:
            ok = False
        if not ok:
            raise ConfigError(f"{path}: calibration {i}: scale must lie in {_SCALE_BOUNDS} and overhead_ms be >= 0")
        out.append(cal)
    return out


def find_calibration(path: Path, table_sha: str, fingerprint: str) -> HostCalibration | None:
    """The stored calibration of the table with content hash ``table_sha`` on the machine ``fingerprint``."""
    for cal in read_calibrations(path):
        if cal.table_sha256 == table_sha and cal.fingerprint == fingerprint:
            return cal
    return None


def store_calibration(path: Path, cal: HostCalibration) -> Path:
    """Add (or replace: same table, same machine) one calibration, written atomically."""
    kept = [
        c for c in read_calibrations(path) if (c.table_sha256, c.fingerprint) != (cal.table_sha256, cal.fingerprint)
    ]
    data = {"format": CALIBRATION_FORMAT, "calibrations": [asdict(c) for c in [*kept, cal]]}
    write_text_atomic(path, json.dumps(data, indent=1) + "\n", TABLES_HINT)
    return path


def reference_models(table: LatencyTable, predict: Callable[[ArchSpec], float], n: int = N_REFERENCE) -> list[ArchSpec]:
    """Up to ``n`` whole models of the table (its calibration rows: the zoo and members of its spaces)
    whose every layer it has, spread over its latency range; members of its spaces first, models
    predicted slower than :data:`MAX_REFERENCE_MS` left out (unless nothing else is left)."""
    covered: list[tuple[float, ArchSpec]] = []
    for key in table.models.index:
        arch = parse_arch(str(key))
        if all(k in table.entry_ms for k in arch_keys(arch)):
            covered.append((predict(arch), arch))
    if not covered:
        return []
    fast = [c for c in covered if c[0] <= MAX_REFERENCE_MS] or sorted(covered, key=lambda c: c[0])[:n]
    member = space_members(table.spaces)
    pool = [c for c in fast if member is not None and member(c[1])]
    if len(pool) < min(n, 4):
        pool = fast
    pool.sort(key=lambda c: c[0])
    if len(pool) <= n:
        return [a for _, a in pool]
    idx = np.unique(np.round(np.linspace(0, len(pool) - 1, n)).astype(int))
    return [pool[i][1] for i in idx]


def fit_scale(
    predicted: np.ndarray, overhead_ms: float, measured: np.ndarray, with_overhead: bool = True
) -> tuple[float, float]:
    """``(scale, overhead_here)`` minimising the relative error of ``scale · (predicted − overhead) +
    overhead_here`` against ``measured`` (``overhead_here`` >= 0). Without ``with_overhead``, or with
    fewer than 3 models, only the scale is fitted and the overhead scales with it."""
    from scipy.optimize import lsq_linear

    body = np.maximum(predicted - overhead_ms, 1e-9)
    if not with_overhead or len(measured) < 3:
        r = predicted / measured
        scale = float(np.clip(np.sum(r) / np.sum(r * r), *_SCALE_BOUNDS))
        return scale, scale * overhead_ms
    a = np.column_stack([body, np.ones_like(body)]) / measured[:, None]
    x = lsq_linear(a, np.ones_like(measured), bounds=([_SCALE_BOUNDS[0], 0.0], [_SCALE_BOUNDS[1], np.inf])).x
    return float(x[0]), float(x[1])


MeasureArch = Callable[[ArchSpec], float]


def calibrate_host(
    table: LatencyTable,
    here: Machine,
    archs: Sequence[ArchSpec],
    predict: Callable[[ArchSpec], float],
    measure: MeasureArch,
    progress: Callable[[int, int, str], None] | None = None,
) -> HostCalibration:
    """Time ``archs`` here with ``measure`` (ms) and fit the table's scale to them."""
    if not archs:
        raise NasError(
            f"table {table.target} has no whole models whose every layer it holds: nothing to calibrate with; "
            f"profile this machine instead (`mnv4-nas latency profile --target {table.target}`)"
        )
    t0 = time.perf_counter()
    load0 = os.getloadavg()[0]
    pred = np.array([predict(a) for a in archs])
    meas = np.empty(len(archs))
    for i, arch in enumerate(archs):
        if progress is not None:
            progress(i, len(archs), arch.arch)
        meas[i] = measure(arch)
    if progress is not None:
        progress(len(archs), len(archs), "")
    ovh = table.overhead_ms
    rel = lambda p: float(np.mean(np.abs(p - meas) / meas) * 100)  # noqa: E731
    # Two terms (scale, overhead) or the scale alone: whichever predicts left-out models better. On a
    # noisy machine the second term fits noise (an overhead of ~1 ms was seen on a loaded 2-core VM).
    loo = {True: np.full(len(archs), np.nan), False: np.full(len(archs), np.nan)}
    if len(archs) >= 4:
        for both in (True, False):
            for i in range(len(archs)):
                keep = np.arange(len(archs)) != i
                s_i, o_i = fit_scale(pred[keep], ovh, meas[keep], both)
                loo[both][i] = s_i * (pred[i] - ovh) + o_i
    both = len(archs) >= 4 and rel(loo[True]) < rel(loo[False])
    scale, overhead = fit_scale(pred, ovh, meas, both)
    fitted = scale * (pred - ovh) + overhead
    loo_best = loo[both]
    return HostCalibration(
        target=table.target,
        table_sha256=table_sha256(table),
        table_machine=table.meta.get("machine", "not recorded"),
        machine=here.describe(),
        fingerprint=here.fingerprint,
        scale=scale,
        overhead_ms=overhead,
        n=len(archs),
        mape_before_pct=rel(pred),
        mape_pct=rel(fitted),
        loo_mape_pct=rel(loo_best) if not np.isnan(loo_best).any() else None,
        created=utc_timestamp(),
        wall_s=round(time.perf_counter() - t0, 2),
        loadavg=f"{load0:.2f} at start, {os.getloadavg()[0]:.2f} at end ({os.cpu_count()} cores)",
        models=[
            {"arch": a.arch, "predicted_ms": round(float(p), 5), "measured_ms": round(float(m), 5)}
            for a, p, m in zip(archs, pred, meas)
        ],
    )


__all__ = [
    "CALIBRATION_FORMAT",
    "HostCalibration",
    "Machine",
    "apply_calibration",
    "calibrate_host",
    "calibration_file",
    "find_calibration",
    "fit_scale",
    "read_calibrations",
    "reference_models",
    "store_calibration",
    "table_machine_state",
    "table_sha256",
    "this_machine",
]
