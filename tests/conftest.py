"""Shared fixtures: tiny architectures that build and run fast on 2 CPU cores."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tiny_spaces import CONV_SPACE

from nas.space import load_space_file
from nas.spec import ArchSpec, parse_arch

TINY = (
    "res32|cn_r1_k3_s2_c8|er_r1_k3_s1_e2_c8|uir_r1_a3_k5_s2_e4_c16|uir_r1_a0_k3_s1_e2_c16_ls|"
    "uir_r1_a5_k0_s1_e4_c16|uir_r1_a0_k0_s1_e2_c16|mqa_r1_k3_h2_s1_v2_d8_c16_ls|mha_r1_k3_h2_s1_d8_c24|"
    "ds_r1_k3_s2_c24|dsa_r1_k5_s1_c24_nr6|uir_r1_a3_k3_s2_e3_c32_nge|head_c64_h96_cls10"
)


@pytest.fixture
def tiny_arch() -> ArchSpec:
    """Every block kind at 32 px, 10 classes."""
    return parse_arch(TINY)


@pytest.fixture(autouse=True, scope="session")
def _data_cache(tmp_path_factory):
    """Generated data (the built-in data set) and user latency tables go to per-session temporary
    folders, never to ~/.cache or ~/.local/share.

    Session-scoped so that it is in place before module-scoped fixtures that load data.
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MNV4NAS_CACHE", str(tmp_path_factory.getbasetemp() / "mnv4nas-cache"))
        # user latency tables and calibrations likewise: never the user's real ~/.local/share/mnv4-nas
        mp.setenv("MNV4NAS_TABLES", str(tmp_path_factory.getbasetemp() / "mnv4nas-tables"))
        yield


@pytest.fixture(scope="session")
def write_space(tmp_path_factory) -> Callable[[str, str], Path]:
    """Write a space TOML once per session: ``write_space(name, text) -> path``."""

    def write(name: str, text: str) -> Path:
        d = tmp_path_factory.getbasetemp() / "spaces"
        d.mkdir(exist_ok=True)
        p = d / f"{name}.toml"
        if not p.exists():
            p.write_text(text)
        return p

    return write


@pytest.fixture(scope="session")
def conv_space_path(write_space) -> Path:
    """A tiny conv-only space at 32 px (see ``CONV_SPACE``)."""
    return write_space("t-conv", CONV_SPACE)


@pytest.fixture(scope="session")
def conv_space(conv_space_path):
    return load_space_file(conv_space_path)
