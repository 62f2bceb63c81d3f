"""Shared fixtures: tiny architectures that build and run fast on 2 CPU cores."""

from __future__ import annotations

import pytest

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
