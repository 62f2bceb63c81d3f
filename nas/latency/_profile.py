"""Profiling this host: every table entry exported alone and timed by the target's runtime
(:mod:`nas.latency._runtime`), resumably; then the whole-model terms calibrated on whole models timed
end to end (:mod:`nas.latency._calibration`).

How each graph is timed, and the load guard around every session, is :mod:`nas.latency._timing`; the
number of re-timed sessions goes to the table's metadata. The per-call cost of the runtime, paid once
per model, is measured (``call_ms``) and subtracted from every entry; the last-level cache size
(:func:`host_cache_mib`) bounds the cache term. Whole models — random members of the profiled
spaces, and the zoo — are timed spread among the layers, so that both see the same machine
conditions.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nas._lock import owned_tempdir
from nas.errors import NasError
from nas.latency._calibration import Calibration, calibrate, space_members
from nas.latency._catalog import HOST_TARGET
from nas.latency._host import host_cache_mib
from nas.latency._machine import this_machine
from nas.latency._runtime import HostRuntime, host_runtime, runtime_name_of
from nas.latency._table import (
    LatencyTable,
    TableAppender,
    make_row,
    parse_table_text,
    read_table,
    table_file,
    write_dir,
    write_table,
)
from nas.latency._timing import Timing, TimingConfig, interference_guard
from nas.spec import ArchSpec
from nas.units import utc_timestamp


@dataclass(frozen=True)
class ProfileResult:
    """What a profiling run did."""

    path: Path
    table: LatencyTable
    measured: int
    skipped: int
    calibration: Calibration
    #: entries measured while other work disturbed every session: not kept (a re-run measures them)
    disturbed: tuple[str, ...] = ()


ProgressFn = Callable[[int, int, str], None]
MeasureFn = Callable[[str, TimingConfig, Path], Timing]


def check_resumable(target: str, cfg: TimingConfig, tables_dir: Path | None = None, fresh: bool = False) -> set[str]:
    """Keys already profiled for ``target``; raises when the existing table was made with other settings
    or on another machine."""
    path = write_dir(tables_dir) / table_file(target)
    here = this_machine(runtime_name_of(target), cfg.threads)
    return set() if fresh else _open_existing(path, cfg, here.fingerprint)


def _interleave(layers: list[str], models: list[str]) -> list[str]:
    """Whole models spread evenly among the layers: a machine's speed drifts over a long run, and the
    calibration must see the same conditions as the entries it calibrates."""
    out: list[str] = []
    pending = list(models)
    n = len(pending)
    for i, key in enumerate(layers):
        out.append(key)
        while pending and (n - len(pending) + 1) * len(layers) / (n + 1) <= i + 1:
            out.append(pending.pop(0))
    return out + pending


def _open_existing(path: Path, cfg: TimingConfig, fingerprint: str | None = None) -> set[str]:
    """Keys already in a (possibly interrupted) profiled table; refuses one made with other settings
    or on another machine (its entries and new ones would not add up)."""
    if not path.exists():
        return set()
    meta, df = parse_table_text(path.read_text(encoding="utf-8"), str(path))
    if meta.get("source") != "profiled":
        raise NasError(f"{path} holds a {meta.get('source')!r} table, not a profiled one; move it away or use --fresh")
    for name in ("threads", "runs", "sessions", "flush_mib"):
        have = meta.get(name)
        want = f"{getattr(cfg, name):g}"
        if have is not None and have != want:
            raise NasError(
                f"{path} was profiled with {name}={have}; resume with --{name} {have}, or start over with --fresh"
            )
    have_fp = meta.get("fingerprint")
    if fingerprint is not None and have_fp is not None and have_fp != fingerprint:
        raise NasError(
            f"{path} was profiled on another machine or runtime ({meta.get('machine', have_fp)}); "
            "start over here with --fresh, or give another --tables folder"
        )
    return set(df["key"].astype(str)) if "key" in df.columns else set()


def profile_host(
    keys: Sequence[str],
    models: Sequence[ArchSpec] = (),
    *,
    cfg: TimingConfig = TimingConfig(),
    target: str = HOST_TARGET,
    spaces: Sequence[str] = (),
    tables_dir: Path | None = None,
    fresh: bool = False,
    progress: ProgressFn | None = None,
    measure: MeasureFn | None = None,
    cache_mib: float | None = None,
    call_ms: float | None = None,
    runtime: HostRuntime | None = None,
) -> ProfileResult:
    """Measure every key (and every model in ``models`` end-to-end) that the target's table lacks.

    Resumable: finished entries are appended to the table (in the user's tables folder) as they
    complete; re-running after an interruption (exception, Ctrl-C, kill -9) measures only what is
    missing. An entry that other work disturbed in every session, retries included, is not kept
    (:attr:`ProfileResult.disturbed`): a re-run measures it again. At the end the whole table is
    rewritten with the calibrated overhead and cache term and this machine's fingerprint.
    ``measure`` (one key → timing) and ``call_ms`` (the per-call cost; measured when None) can be
    replaced, e.g. in tests; ``runtime`` defaults to the target's (:func:`host_runtime`).
    """
    rt = runtime if runtime is not None else host_runtime(target)
    measure_fn = measure if measure is not None else rt.measure_key
    path = write_dir(tables_dir) / table_file(target)
    if fresh and path.exists():
        path.unlink()
    here = this_machine(rt.runtime_name(), cfg.threads)
    done = _open_existing(path, cfg, here.fingerprint)
    layers = [k for k in dict.fromkeys(keys) if k not in done]
    whole = [a.arch for a in dict.fromkeys(models) if a.arch not in done and a.arch not in layers]
    todo = _interleave(layers, whole)
    cache = host_cache_mib() if cache_mib is None else cache_mib
    meta = {
        "target": target,
        "source": "profiled",
        "runtime": here.runtime,
        "dtype": rt.dtype,
        "threads": str(cfg.threads),
        "runs": str(cfg.runs),
        "sessions": str(cfg.sessions),
        "warmup": str(cfg.warmup),
        "flush_mib": f"{cfg.flush_mib:g}",
        "created": utc_timestamp(),
        "cache_mib": f"{cache:g}",
        **here.meta(),
    }
    load_start = os.getloadavg()[0]
    total = len(todo)
    retries = 0
    disturbed: list[str] = []
    # Named after this process, so that the next run removes it should this one be killed.
    with owned_tempdir("profile") as work, TableAppender(path, meta) as out:
        for i, key in enumerate(todo):
            if progress is not None:
                progress(i, total, key)
            t = measure_fn(key, cfg, work)
            retries += t.retries
            if t.disturbed:
                disturbed.append(key)
                continue
            out.append(make_row(key, rt.dtype, t.median_ms, t.std_ms, t.n))
        if progress is not None:
            progress(total, total, "")
        if call_ms is None:
            call_ms = rt.measure_call_ms(cfg, work)
    table = read_table(path)
    old_spaces = table.spaces
    guard = interference_guard(cfg) if measure is None else None
    table.meta.update(
        updated=utc_timestamp(),
        spaces=",".join(dict.fromkeys([*old_spaces, *spaces])),
        call_ms=f"{call_ms:.6g}",
        cache_mib=f"{cache:g}",
        loadavg=f"{load_start:.2f} at start, {os.getloadavg()[0]:.2f} at end ({os.cpu_count()} cores)",
        guard=f"{cfg.guard:g}",
        guard_retries=str(retries + int(table.meta.get("guard_retries", "0") or 0)),
        **here.meta(),
    )
    if guard is not None and math.isfinite(guard.best):
        table.meta["guard_ref_ms"] = f"{guard.best:.6g}"
    table = LatencyTable(table.meta, table.df, path)  # drop cached views computed with the old call_ms
    cal = calibrate(table, cache, space_members(table.spaces))
    table.meta.update(cal.meta())
    if cal.n_models:
        table.meta["note"] = cal.note()
    table = LatencyTable(table.meta, table.df, path)
    write_table(table, path)
    return ProfileResult(path, table, total - len(disturbed), len(done), cal, tuple(disturbed))


__all__ = ["MeasureFn", "ProfileResult", "ProgressFn", "check_resumable", "profile_host"]
