"""Loading a target's table as predictions use it: the user's table merged over the shipped one, and
host tables measured on another machine fitted to this one (:mod:`nas.latency._machine`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from nas.errors import NasError
from nas.latency._catalog import HOST_TARGETS, shipped_dir, user_tables_dir, writable_tables_dir
from nas.latency._machine import (
    HostCalibration,
    Machine,
    apply_calibration,
    calibrate_host,
    calibration_file,
    find_calibration,
    reference_models,
    store_calibration,
    table_machine_state,
    table_sha256,
    this_machine,
)
from nas.latency._profile import Timing, TimingConfig
from nas.latency._table import LatencyTable, build_hint, merge_tables, read_table, table_paths
from nas.spec import ArchSpec, arch_keys

if TYPE_CHECKING:
    from nas.latency._runtime import HostRuntime

#: timing of the reference models of a calibration (seconds in all, not minutes)
CALIBRATION_TIMING = TimingConfig(threads=1, runs=20, sessions=2, warmup=3)


def host_machine(table: LatencyTable) -> Machine | None:
    """This machine as a host table of ``table``'s target and threads would record it (None for a
    table that is not a host target's)."""
    if table.target not in HOST_TARGETS:
        return None
    from nas.latency._runtime import runtime_name_of

    threads = table.meta.get("threads", "1") or "1"
    return this_machine(runtime_name_of(table.target), int(threads))


def _for_this_machine(table: LatencyTable, user_dir: Path) -> LatencyTable:
    """A host table as it applies here: a stored calibration for this machine applied, else the table
    itself, with ``meta["calibration"]`` saying which (``native``, the calibration, or ``none``)."""
    here = host_machine(table)
    if here is None:
        return table
    cal = find_calibration(calibration_file(user_dir, table.target), table_sha256(table), here.fingerprint)
    if cal is not None:
        return apply_calibration(table, cal)
    meta = dict(table.meta)
    if table_machine_state(table, here) == "native":
        meta["calibration"] = "native"
    else:
        made_on = table.meta.get("machine", "a machine it does not record")
        meta["calibration"] = (
            f"none: measured on {made_on}, not on this one; run `mnv4-nas latency calibrate --target {table.target}`"
        )
    return LatencyTable(meta, table.df, table.path)


def load_table(target: str, tables_dir: Path | None = None) -> LatencyTable:
    """The table of ``target``: the user's table (``tables_dir``, else the user's default folder)
    merged over the shipped one (user entries win; shipped entries fill in what the user's lacks),
    host tables fitted to this machine by their stored calibration. A missing table is a
    :class:`NasError` naming the command that builds it."""
    paths = table_paths(target, tables_dir)
    if not paths:
        where = ", ".join(str(d) for d in (user_tables_dir(tables_dir), shipped_dir()) if d is not None)
        raise NasError(
            f"no latency table for target {target!r} (looked in {where}); build it with `{build_hint(target)}`"
        )
    user_dir = user_tables_dir(tables_dir)
    tables = [_for_this_machine(read_table(p), user_dir) for p in paths]
    table = tables[0]
    for base in tables[1:]:
        table = merge_tables(table, base)
    return table


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
    from nas._lock import owned_tempdir
    from nas.latency._predict import Predictor
    from nas.latency._runtime import host_runtime

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


__all__ = ["CALIBRATION_TIMING", "CalibrationRun", "ensure_calibration", "host_machine", "load_table"]
