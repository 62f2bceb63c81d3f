"""The ``mnv4-nas`` command line: a thin layer over library calls.

Errors caused by input (bad options, malformed specs or files) are printed as one line on stderr
with exit code 2; a failed runtime check exits 1; an unexpected exception prints one line that says
how to get the traceback (``MNV4NAS_DEBUG=1``).
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Any, NoReturn

import typer

from nas.cli import distill, models, search, train
from nas.cli._common import err_console
from nas.config import load_config
from nas.errors import NasError

app = typer.Typer(
    name="mnv4-nas",
    help="Hardware-aware NAS for MobileNetV4-style backbones: specs, latency tables, search, export.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"mnv4-nas {version('mnv4-nas')}")
        except PackageNotFoundError:
            typer.echo("mnv4-nas (not installed)")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    config: str | None = typer.Option(
        None, "--config", metavar="PATH", help="Config file (default: ./nas.toml if present, else built-in defaults)."
    ),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    tables: str | None = typer.Option(
        None,
        "--tables",
        metavar="DIR",
        help="Your latency tables and devices (default: [latency] tables_dir of nas.toml, else $MNV4NAS_TABLES, "
        "else ~/.local/share/mnv4-nas/latency_tables); they merge over the shipped, read-only ones.",
    ),
) -> None:
    """Hardware-aware NAS for MobileNetV4-style backbones."""
    ctx.obj = load_config(config)
    if tables is not None:
        from nas.cli._common import TABLES_META
        from nas.inputs import check_name

        ctx.meta[TABLES_META] = check_name(tables, "--tables")


app.command("zoo")(models.zoo)
app.command("show")(models.show)
app.command("export")(models.export)
app.command("search")(search.search)
app.command("train")(train.train)
app.command("eval")(train.eval_)
app.command("distill-data")(distill.distill_data)

#: Sub-command groups: (module path, attribute, name). Imported lazily so `--help` stays fast.
_GROUPS: list[tuple[str, str]] = [
    ("nas.cli.space", "space"),
    ("nas.cli.supernet", "supernet"),
    ("nas.cli.latency", "latency"),
]


def _register_groups() -> None:
    import importlib

    for mod_name, group in _GROUPS:
        mod = importlib.import_module(mod_name)
        app.add_typer(mod.app, name=group)


_register_groups()


def _one_line(msg: str) -> str:
    return " ".join(str(msg).split())


def _cli_exception_types() -> tuple[tuple[type[Any], ...], tuple[type[BaseException], ...]]:
    """(usage/click errors, aborts) for the click that this typer uses (typer >= 0.20 vendors its own).
    The errors are typed Any: each has click's ``format_message``, but no common base class names it."""
    errors: list[type[Any]] = []
    aborts: list[type[BaseException]] = [typer.Abort]
    if hasattr(typer, "TyperException"):
        errors.append(typer.TyperException)
    try:
        import click

        errors.append(click.ClickException)
        aborts.append(click.exceptions.Abort)
    except ImportError:  # pragma: no cover - typer without click
        pass
    return tuple(errors), tuple(aborts)


#: errno values that describe the machine (a full disk, a read-only or forbidden place), never a bug
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit code."""
    cmd = typer.main.get_command(app)
    cli_errors, aborts = _cli_exception_types()
    try:
        rv = cmd.main(args=argv, prog_name="mnv4-nas", standalone_mode=False)
    except cli_errors as exc:
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":
            # Its message is the help text; typer's rich formatter has already printed it and left "".
            text = exc.format_message()
            if text.strip():
                typer.echo(text)
            return 0
        code = int(getattr(exc, "exit_code", 2))
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None and code == 2 else ""
        err_console.print(f"mnv4-nas: error: {_one_line(exc.format_message())}{hint}", markup=False)
        return code
    except aborts + (KeyboardInterrupt,):
        err_console.print("mnv4-nas: interrupted", markup=False)
        return 130
    except NasError as exc:
        err_console.print(f"mnv4-nas: error: {_one_line(str(exc))}", markup=False)
        return exc.exit_code
    except BrokenPipeError:
        return 0
    except OSError as exc:
        if exc.errno not in _ENVIRONMENT_ERRNOS or os.environ.get("MNV4NAS_DEBUG"):
            return _internal(exc)
        # The disk or the folder failed a write, not mnv4-nas: say so in one line (writers are atomic).
        what = f"cannot write {exc.filename}" if exc.filename else "a write failed"
        err_console.print(
            f"mnv4-nas: error: {what} ({exc.strerror}); free space or choose a writable place", markup=False
        )
        return 2
    except Exception as exc:  # a bug: keep the one-line contract, offer the traceback on demand
        return _internal(exc)
    return rv if isinstance(rv, int) else 0


def _internal(exc: BaseException) -> int:
    """Print an unexpected exception as one line (exit 1), or raise it under ``MNV4NAS_DEBUG``."""
    if os.environ.get("MNV4NAS_DEBUG"):
        raise exc
    err_console.print(
        f"mnv4-nas: internal error: {type(exc).__name__}: {_one_line(str(exc))} (set MNV4NAS_DEBUG=1 for the traceback)",
        markup=False,
    )
    return 1


def entry() -> None:
    """``mnv4-nas`` console script."""
    _leave(main())


def _leave(code: int) -> NoReturn:
    """Exit without the interpreter's teardown when nothing is left running: unloading torch alone
    takes 0.5 s (0.9 s after a search), the last thing a user waited for after the results were on
    screen. Output is flushed and the exit handlers run first (Ray's shutdown, logging's flush,
    finalizers registered for exit); while another thread of ours still runs, Python finalises as usual."""
    import atexit
    import threading

    from nas._threads import IDLE_WORKER_PREFIX

    others = [
        t
        for t in threading.enumerate()
        if t is not threading.main_thread() and not t.daemon and not t.name.startswith(IDLE_WORKER_PREFIX)
    ]
    if others:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more to say
            pass
    atexit._run_exitfuncs()
    os._exit(code)
