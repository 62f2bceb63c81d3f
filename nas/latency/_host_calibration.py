"""Calibrating the host tables measured on another machine to this one (``latency calibrate``): a
handful of each table's whole models timed here, its scale fitted (:func:`nas.latency._machine.calibrate_host`)
and stored beside the user's tables, where :func:`nas.latency._store.load_table` finds it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from nas._lock import owned_tempdir
from nas.errors import NasError
from nas.latency._catalog import HOST_TARGETS, writable_tables_dir
from nas.latency._machine import (
    HostCalibration,
    Machine,
    calibrate_host,
    calibration_file,
    find_calibration,
    reference_models,
    store_calibration,
    table_machine_state,
    table_sha256,
)
from nas.latency._predict import Predictor
from nas.latency._runtime import HostRuntime, host_runtime
from nas.latency._store import host_machine
from nas.latency._table import LatencyTable, build_hint, read_table, table_paths
from nas.latency._timing import Timing, TimingConfig
from nas.spec import ArchSpec, arch_keys

#: timing of the reference models of a calibration (seconds in all, not minutes)
CALIBRATION_TIMING = TimingConfig(threads=1, runs=20, sessions=2, warmup=3)


@dataclass(frozen=True)
class CalibrationRun:
    """What :func:`ensure_calibration` did for one table file."""

    path: Path
    calibration: HostCalibration
    stored: Path
    disturbed: int  #: reference models measured while other work disturbed every session


MeasureArchMs = Callable[[ArchSpec, TimingConfig, Path], Timing]


def _measure_arch(rt: HostRuntime, arch: ArchSpec, cfg: TimingConfig, workdir: Path) -> Timing:
    """A whole model timed by the host runtime ``rt`` (the default ``measure`` of calibration)."""
    return rt.measure_key(arch.arch, cfg, workdir)


def ensure_calibration(
    target: str,
    tables_dir: Path | None = None,
    *,
    force: bool = False,
    measure: MeasureArchMs | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    only: Path | None = None,
) -> list[CalibrationRun]:
    """Calibrate every table file of host target ``target`` that was measured on another machine and
    has no calibration for this one (with ``force``: every file, again): time a handful of its whole
    models here, fit its scale and store the fit in the user's tables folder. Returns what it did
    (nothing when every table already fits this machine). ``only``: just that one of the target's files."""
    if target not in HOST_TARGETS:
        raise NasError(f"only {' and '.join(HOST_TARGETS)} are measured here and can be calibrated (got {target!r})")
    paths = table_paths(target, tables_dir)
    if not paths:
        raise NasError(f"no latency table for target {target!r}; build it with `{build_hint(target)}`")
    store_dir = writable_tables_dir(tables_dir)
    runs: list[CalibrationRun] = []
    for path in paths:
        if only is not None and Path(path).resolve() != Path(only).resolve():
            continue
        table = read_table(path)
        here = host_machine(table)
        assert here is not None
        cal_path = calibration_file(store_dir, target)
        stored = find_calibration(cal_path, table_sha256(table), here.fingerprint)
        if not force and (stored is not None or table_machine_state(table, here) == "native"):
            continue
        cal, disturbed = _calibrate_table(table, here, measure, progress)
        runs.append(CalibrationRun(path, cal, store_calibration(cal_path, cal), disturbed))
    return runs


def _meta_int(meta: dict[str, str], name: str, default: int) -> int:
    """A small positive integer of a table's metadata, else ``default`` (a hand-edited header is no error here)."""
    text = str(meta.get(name, "")).strip()
    return int(text) if text.isdigit() and 0 < int(text) <= 10_000 else default


def _calibrate_table(
    table: LatencyTable,
    here: Machine,
    measure: MeasureArchMs | None,
    progress: Callable[[int, int, str], None] | None,
) -> tuple[HostCalibration, int]:
    """Time the table's reference models here and fit its scale; also returns how many of them were
    measured while other work disturbed every session."""
    predictor = Predictor(table)

    def predict(arch: ArchSpec) -> float:
        return predictor.predict_keys(arch_keys(arch))[0]

    # Timed like the table's own whole models: fewer runs or sessions would see more interference on a busy
    # machine (the least disturbed of fewer sessions is slower) and bias the scale up.
    c, meta = CALIBRATION_TIMING, table.meta
    cfg = TimingConfig(
        threads=here.threads,
        runs=_meta_int(meta, "runs", c.runs),
        sessions=_meta_int(meta, "sessions", c.sessions),
        warmup=_meta_int(meta, "warmup", c.warmup),
    )
    timings: list[Timing] = []
    with owned_tempdir("calibrate") as work:
        time_one: MeasureArchMs = measure or partial(_measure_arch, host_runtime(table.target))

        def measure_ms(arch: ArchSpec) -> float:
            t = time_one(arch, cfg, work)
            timings.append(t)
            return t.median_ms

        cal = calibrate_host(table, here, reference_models(table, predict), predict, measure_ms, progress)
    return cal, sum(t.disturbed for t in timings)


__all__ = ["CALIBRATION_TIMING", "CalibrationRun", "MeasureArchMs", "ensure_calibration"]
