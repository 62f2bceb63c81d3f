"""Space texts the tests share (imported by ``tests/conftest.py`` and the fuzz suites).

The conv-only space is a file, ``tests/tiny_conv_space.toml``, so that the campaigns in ``benchmarks/``
read the same one (they mirror the fuzz suites)."""

from __future__ import annotations

from pathlib import Path

#: Conv-only: a fixed conv, a FusedIB stage, two UIB stages with every DW presence/kernel option.
CONV_SPACE = (Path(__file__).resolve().parent / "tiny_conv_space.toml").read_text(encoding="utf-8")

__all__ = ["CONV_SPACE"]
