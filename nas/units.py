"""Units in one place: latency budgets (``4ms``, ``4000us``), counts (``300M``, ``1.2G``; shown as ``186.0 M``),
timestamps (UTC ISO).

Every ``--budget`` of the CLI is read here, so ``search`` and ``supernet train`` accept the same grammar:

- a latency: a positive number with a unit, ``ms``, ``us``/``µs`` or ``s`` (``4ms``, ``4 ms``, ``4000us``,
  ``0.004s``); a bare number is milliseconds only where the caller allows it (``supernet train``);
- a count (MACs, parameters): a positive number with an optional ``k``/``M``/``G`` suffix (``300M``, ``3e8``).

Underscores are ignored (``4_000us``) and units are case-insensitive.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from nas.errors import NasError

#: milliseconds per unit of a latency
LATENCY_UNITS: dict[str, float] = {"ms": 1.0, "us": 1e-3, "µs": 1e-3, "s": 1e3}
#: multiplier of a count suffix
COUNT_SUFFIXES: dict[str, float] = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9}

_NUMBER = r"((?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[-+]?[0-9]+)?)"
_LATENCY = re.compile(rf"{_NUMBER}\s*(ms|us|µs|s)?")
_COUNT = re.compile(rf"{_NUMBER}\s*([kmg]?)")
_LATENCY_HINT = "e.g. 4ms, '4 ms', 4000us or 0.004s"


def _normalise(text: str) -> str:
    return text.strip().lower().replace("_", "")


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def parse_latency_ms(text: str, bare_unit: str | None = None) -> float:
    """Milliseconds of a latency such as ``4ms`` or ``4000us``.

    A number without a unit is read in ``bare_unit`` (one of :data:`LATENCY_UNITS`); with ``bare_unit=None``
    a unit is required. Anything else is a one-line :class:`~nas.errors.NasError` naming ``4ms``.
    """
    m = _LATENCY.fullmatch(_normalise(text)) if isinstance(text, str) else None
    unit = (m.group(2) or bare_unit) if m else None
    if m is None or unit is None:
        raise NasError(f"budget {text!r} must be a positive number with a unit, {_LATENCY_HINT}")
    ms = float(m.group(1)) * LATENCY_UNITS[unit]
    if not _positive(ms):
        raise NasError(f"budget {text!r} must be positive, e.g. 4ms")
    return ms


def parse_count(text: str, what: str = "MACs") -> float:
    """A positive count such as ``300M``, ``1.2G``, ``20k`` or ``3e8`` (``what`` names it in errors)."""
    m = _COUNT.fullmatch(_normalise(text)) if isinstance(text, str) else None
    value = float(m.group(1)) * COUNT_SUFFIXES[m.group(2)] if m else math.nan
    if not _positive(value):
        raise NasError(f"budget must be a positive number of {what}, e.g. 300M (got {text!r})")
    return value


def parse_budget(text: str | float | None, unit: str = "ms") -> float | None:
    """A ``--budget`` in ``unit``: ``"ms"`` reads a latency (a bare number is ms), anything else a count.

    ``None`` stays ``None``; a number is taken as already in ``unit``.
    """
    if text is None:
        return None
    if isinstance(text, (int, float)):
        if isinstance(text, bool) or not _positive(float(text)):
            raise NasError(f"budget must be a positive, finite number (got {text!r})")
        return float(text)
    if unit == "ms":
        return parse_latency_ms(text, bare_unit="ms")
    return parse_count(text, unit or "units")


def format_count(n: int) -> str:
    """A count with thousands separators (``3,774,024``)."""
    return f"{n:,}"


def format_macs(n: int) -> str:
    """MACs in M or G (``186.0 M``, ``1.080 G``)."""
    return f"{n / 1e9:.3f} G" if n >= 1e9 else f"{n / 1e6:.1f} M"


def utc_now() -> datetime:
    """Now, in UTC, to the second."""
    return datetime.now(UTC).replace(microsecond=0)


def utc_timestamp() -> str:
    """Now as UTC ISO 8601 (``2026-01-31T12:00:00+00:00``): the one style of every ``created``/``updated``."""
    return utc_now().isoformat()


def utc_stamp() -> str:
    """Now as a compact UTC stamp for folder names (``20260131-120000``)."""
    return utc_now().strftime("%Y%m%d-%H%M%S")
