"""A tiny hybrid space for supernet tests (the conv-only one is in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas.space import load_space_file

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


@pytest.fixture(scope="session")
def hybrid_space_path(write_space) -> Path:
    return write_space("t-hybrid", HYBRID_SPACE)


@pytest.fixture(scope="session")
def hybrid_space(hybrid_space_path):
    return load_space_file(hybrid_space_path)
