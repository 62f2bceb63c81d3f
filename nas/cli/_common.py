"""Helpers shared by the CLI commands: consoles, config access, JSON output."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from nas.config import Config, load_config
from nas.errors import NasError

#: Human-readable output (tables, progress) goes to stdout; errors to stderr.
# Piped output is not wrapped at 80 columns: tables stay one row per line for grep and less.
console = Console(highlight=False, emoji=False, soft_wrap=False, width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, highlight=False, emoji=False, soft_wrap=True)


class UsageError(NasError):
    """A bad command-line option value (exit code 2)."""


def get_config(ctx: typer.Context) -> Config:
    """The config loaded by the root callback (or the defaults when called outside it)."""
    obj = ctx.find_root().obj
    if isinstance(obj, Config):
        return obj
    return load_config()


#: where the root callback keeps ``--tables DIR`` (in the root context's ``meta``)
TABLES_META = "mnv4nas.tables"


def tables_dir_of(ctx: typer.Context) -> Path | None:
    """The user's latency-tables folder: ``--tables DIR``, else ``[latency] tables_dir`` of nas.toml, else
    None: the library's default, ``$MNV4NAS_TABLES`` or ``~/.local/share/mnv4-nas/latency_tables``."""
    given = ctx.find_root().meta.get(TABLES_META)
    if given:
        return Path(given)
    d = get_config(ctx).latency.tables_dir
    return Path(d) if d else None


@contextmanager
def progress_bar(label: str, enabled: bool = True) -> Iterator[Any]:
    """A rich progress bar on stderr with ETA; yields ``update(done, total, key)``."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    if not enabled:
        yield None
        return
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[key]}", style="dim"),
    ]
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task(label, total=None, key="")

        def update(done: int, total: int, key: str) -> None:
            bar.update(task, completed=done, total=total, key=key[:60])

        yield update


def print_json(obj: Any) -> None:
    """Print JSON to stdout (no rich markup), one document."""
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")
    sys.stdout.flush()


def set_threads(threads: int | None) -> None:
    """Apply ``--threads`` (torch's CPU threads for this process), checked."""
    if threads is not None:
        import torch

        if threads < 1:
            raise UsageError(f"--threads must be at least 1 (got {threads})")
        torch.set_num_threads(threads)


def process_rank() -> int:
    """This process's rank under torchrun (0 when not launched by it)."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0
