"""Checks of ``search`` options that reach a library (optuna storage, Ray), made before any work starts."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from nas.errors import NasError
from nas.inputs import InputError, check_name, check_output_file, path_exists, regular_file

#: The first bytes of a journal that are read to recognise it.
_PROBE_BYTES = 1 << 20


def check_storage(url: str) -> str:
    """``--storage``: an RDB URL is left to the storage layer; a journal path must be a new file in a
    writable folder, an empty file or an optuna journal (anything else is refused, never overwritten)."""
    check_name(url, "--storage")
    if "://" in url:
        return url
    p = check_output_file(url, "--storage")
    if not path_exists(p):
        return url
    try:
        regular_file(p, "optuna journal")
        with open(p, "rb") as fh:
            head = fh.read(_PROBE_BYTES)
    except (InputError, OSError) as exc:
        raise NasError(f"--storage {p}: {exc}") from None
    if head and not _is_journal(head):
        raise NasError(f"--storage {p}: exists and is not an optuna journal; give a new file or an RDB URL")
    return url


def _is_journal(head: bytes) -> bool:
    """Whether the first line of ``head`` is an optuna journal record (a JSON object with an op code)."""
    line = head.split(b"\n", 1)[0]
    try:
        rec = json.loads(line)
    except (ValueError, RecursionError):
        return False
    return isinstance(rec, dict) and "op_code" in rec


def check_ray_address(address: str) -> str:
    """``--ray-address``: ``ray://`` needs Ray's client extra; ``auto`` needs a running local cluster."""
    check_name(address, "--ray-address")
    if address.startswith("ray://"):
        if importlib.util.find_spec("grpc") is None:
            raise NasError(
                f"--ray-address {address}: a ray:// address needs Ray's client extra (pip install 'ray[client]')"
            )
    elif address == "auto" and not os.environ.get("RAY_ADDRESS") and not _local_cluster():
        raise NasError(
            "--ray-address auto: no running Ray cluster on this machine (start one with `ray start --head`, "
            "or use --workers N for a local one)"
        )
    elif "://" in address:
        raise NasError(f"--ray-address {address!r}: give ray://HOST:PORT, HOST:PORT or auto")
    return address


def _local_cluster() -> bool:
    """Whether ``ray start`` left the address of a running cluster where ``ray.init(address="auto")`` looks."""
    tmp = Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray" / "ray_current_cluster"
    return path_exists(tmp)


__all__ = [
    "check_ray_address",
    "check_storage",
]
