"""Latency budgets: ``4ms``, ``4 ms``, ``4000us``, ``0.004s`` → milliseconds."""

from __future__ import annotations

import math
import re

from nas.errors import NasError

_UNITS = {"ms": 1.0, "us": 1e-3, "µs": 1e-3, "s": 1e3}
_BUDGET = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|us|µs|s)\s*$")


def parse_budget(text: str) -> float:
    """Milliseconds of a budget string; a unit is required (``ms``, ``us``/``µs`` or ``s``)."""
    m = _BUDGET.match(text) if isinstance(text, str) else None
    if m is None:
        raise NasError(
            f"budget {text!r} must be a positive number with a unit, e.g. 4ms, '4 ms', 4000us or 0.004s"
        )
    ms = float(m.group(1)) * _UNITS[m.group(2)]
    if not math.isfinite(ms) or ms <= 0:
        raise NasError(f"budget {text!r} must be positive, e.g. 4ms")
    return ms


def format_ms(ms: float) -> str:
    """Compact display of a latency in ms (``4ms``, ``0.75ms``)."""
    return f"{ms:.4g}ms"


__all__ = [
    "format_ms",
    "parse_budget",
]
