"""Loading a target's table as predictions use it: the user's table merged over the shipped one, and
host tables measured on another machine fitted to this one (:mod:`nas.latency._machine`)."""

from __future__ import annotations

from pathlib import Path

from nas.errors import NasError
from nas.latency._catalog import HOST_TARGETS, shipped_dir, user_tables_dir
from nas.latency._machine import (
    Machine,
    apply_calibration,
    calibration_file,
    find_calibration,
    table_machine_state,
    table_sha256,
    this_machine,
)
from nas.latency._runtime import runtime_name_of
from nas.latency._table import LatencyTable, build_hint, merge_tables, read_table, table_paths


def host_machine(table: LatencyTable) -> Machine | None:
    """This machine as a host table of ``table``'s target and threads would record it (None for a
    table that is not a host target's)."""
    if table.target not in HOST_TARGETS:
        return None
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


__all__ = ["host_machine", "load_table"]
