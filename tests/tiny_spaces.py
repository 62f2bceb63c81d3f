"""Space texts the tests share (imported by ``tests/conftest.py`` and the fuzz suites)."""

from __future__ import annotations

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

__all__ = ["CONV_SPACE"]
