"""Tiny search spaces and data for supernet tests (32 px, a few thousand parameters)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas.space import load_space_file

#: Conv-only: a fixed conv, a FusedIB stage, two UIB stages with every DW presence/kernel option.
CONV_SPACE = """
name = "t-conv"
resolution = 32
num_classes = 10
stem = "cn_r1_k3_s2_c8"
head = "head_c32_h48"

[fine]
start_dw = [0, 3, 5]
mid_dw = [0, 3, 5]
expansion = [2, 4]

[[stages]]
kind = "fixed"
blocks = ["cn_r1_k3_s1_c8"]

[[stages]]
kind = "fused"
stride = 1
channels = [8, 16]
depth = [1, 2]
expansion = 2

[[stages]]
kind = "uib"
stride = 2
channels = [16, 24]
depth = [1, 2]

[[stages]]
kind = "uib"
stride = 2
channels = [24, 32]
depth = [1, 3]
"""

#: Hybrid: layer scale, Mobile MQA slots (with K/V down-sampling), a fixed stage after a searchable one.
HYBRID_SPACE = """
name = "t-hybrid"
resolution = 64
num_classes = 10
layer_scale = true
stem = "cn_r1_k3_s2_c8"
head = "head_c0_h0"

[coarse]
block = "a0_k3_e3"

[fine]
start_dw = [0, 3]
mid_dw = [0, 3, 5]
expansion = [2, 4]

[[stages]]
kind = "uib"
stride = 2
channels = [16, 24]
depth = [1, 2]

[[stages]]
kind = "fixed"
blocks = ["cn_r1_k1_s1_c24"]

[[stages]]
kind = "uib"
stride = 2
channels = [24, 32]
depth = [2, 3, 4]
attention = { slots = 2, heads = 2, key_dim = 8, kv_stride = 2 }
"""


@pytest.fixture(autouse=True)
def _data_cache(tmp_path_factory, monkeypatch):
    """Generated data goes to a per-session temporary folder, never to the home directory."""
    monkeypatch.setenv("MNV4NAS_CACHE", str(tmp_path_factory.getbasetemp() / "mnv4nas-cache"))


def _write(tmp_path_factory, name: str, text: str) -> Path:
    d = tmp_path_factory.getbasetemp() / "spaces"
    d.mkdir(exist_ok=True)
    p = d / f"{name}.toml"
    if not p.exists():
        p.write_text(text)
    return p


@pytest.fixture(scope="session")
def conv_space_path(tmp_path_factory) -> Path:
    return _write(tmp_path_factory, "t-conv", CONV_SPACE)


@pytest.fixture(scope="session")
def hybrid_space_path(tmp_path_factory) -> Path:
    return _write(tmp_path_factory, "t-hybrid", HYBRID_SPACE)


@pytest.fixture(scope="session")
def conv_space(conv_space_path):
    return load_space_file(conv_space_path)


@pytest.fixture(scope="session")
def hybrid_space(hybrid_space_path):
    return load_space_file(hybrid_space_path)
