"""Locate the data shipped with mnv4-nas (``search_spaces/``, ``latency_tables/``).

In a source checkout (or an editable install) they sit next to the ``nas`` package; a wheel
installs them under ``<prefix>/share/mnv4-nas/`` (see ``[tool.setuptools.data-files]``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from nas.errors import NasError

SHIPPED_DIRS = ("search_spaces", "latency_tables")


def data_dir(name: str) -> Path:
    """Directory of shipped data ``name`` (one of :data:`SHIPPED_DIRS`)."""
    if name not in SHIPPED_DIRS:
        raise ValueError(f"unknown data dir {name!r}")
    candidates = [
        Path(__file__).resolve().parent.parent / name,
        Path(sys.prefix) / "share" / "mnv4-nas" / name,
    ]
    for c in candidates:
        if c.is_dir():
            return c
    raise NasError(
        f"shipped data folder {name}/ not found (looked in {', '.join(map(str, candidates))}); reinstall mnv4-nas"
    )
