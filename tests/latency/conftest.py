"""Fixtures for the latency tests: a private tables folder, tiny architectures."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from latency_helpers import TINY_CONV, TINY_HYBRID

from nas.resources import data_dir
from nas.spec import ArchSpec, parse_arch


@pytest.fixture
def tables_dir(tmp_path: Path) -> Path:
    """A tables folder holding a copy of the shipped catalog (tests never write the shipped one)."""
    d = tmp_path / "tables"
    d.mkdir()
    shutil.copy(data_dir("latency_tables") / "devices.toml", d / "devices.toml")
    return d


@pytest.fixture
def tiny_conv() -> ArchSpec:
    return parse_arch(TINY_CONV)


@pytest.fixture
def tiny_hybrid() -> ArchSpec:
    return parse_arch(TINY_HYBRID)
