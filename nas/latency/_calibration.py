"""The whole-model terms of a measured table, fitted on its whole-model rows (:func:`calibrate`).

A layer timed alone is not the same layer inside a model. Besides the per-call cost (measured, and
subtracted from every entry) and the caches (flushed before each timed run of a layer), three terms
separate them, fitted here on whole models timed end to end — members of the table's spaces when
there are any (:func:`space_members`), else all of them, the zoo included:

* everything that makes a layer slower inside a model than alone (measured here: 7–22% for
  MNv4-Conv-S members; layout conversions and fusions at layer boundaries go the other way): a
  ``context_scale`` on every entry;
* whole models whose weights exceed the last-level cache re-read them from DRAM on every inference:
  a term in the weights above ``cache_mib``;
* a fixed per-inference overhead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from nas.latency._keys import import_space
from nas.latency._table import LatencyTable
from nas.spec import ArchSpec, arch_keys, parse_arch


@dataclass(frozen=True)
class Calibration:
    """Whole-model terms fitted on calibration rows, with errors (MAPE %, NaN where undefined):
    on the rows fitted, the same without the cache term, without the context scale, the plain block
    sum (entries minus the per-call cost, nothing fitted), and — with all terms — on the whole-model
    rows not used for the fit (other model families, e.g. the zoo when spaces were profiled)."""

    context_scale: float
    overhead_ms: float
    cache_ms_per_mib: float
    cache_mib: float
    n_models: int
    mape_pct: float
    mape_no_cache_pct: float
    mape_no_scale_pct: float
    mape_block_sum_pct: float
    n_other: int = 0
    mape_other_pct: float = float("nan")
    n_free: int = 2  #: terms fitted (overhead, context scale, and the cache term when a model exceeds the cache)

    def warnings(self) -> list[str]:
        """What makes the fit's figures meaningless or suspect: no more models than fitted terms (the
        MAPE is then 0 % by construction), or a term held at a bound of its range."""
        out = []
        if 0 < self.n_models <= self.n_free:
            out.append(
                f"the calibration rests on {self.n_models} whole model{'s' if self.n_models > 1 else ''} for "
                f"{self.n_free} fitted terms: its MAPE of {self.mape_pct:.1f}% says nothing; measure more whole models"
            )
        if self.n_models and not 0.5 + 1e-6 < self.context_scale < 3.0 - 1e-6:
            out.append(
                f"the context scale stuck at the bound {self.context_scale:g} of [0.5, 3]: the entries and the "
                "whole models disagree by more than a scale explains (were they measured with the same settings?)"
            )
        if self.n_models > self.n_free and self.overhead_ms <= 1e-9:
            out.append(
                "the per-inference overhead stuck at its bound 0 ms: the whole models run faster than their entries add up to"
            )
        return out

    def meta(self) -> dict[str, str]:
        """Table metadata of the fitted terms."""
        return {
            "context_scale": f"{self.context_scale:.6g}",
            "overhead_ms": f"{self.overhead_ms:.6g}",
            "cache_ms_per_mib": f"{self.cache_ms_per_mib:.6g}",
        }

    def note(self) -> str:
        """One-line summary for the table metadata."""
        other = f"; {self.mape_other_pct:.1f}% on {self.n_other} other models" if self.n_other else ""
        return (
            f"calibrated on {self.n_models} whole models: MAPE {self.mape_pct:.1f}% (without the cache term "
            f"{self.mape_no_cache_pct:.1f}%, without the context scale {self.mape_no_scale_pct:.1f}%, plain "
            f"block sum {self.mape_block_sum_pct:.1f}%){other}"
        )


def calibrate(table: LatencyTable, cache_mib: float, use: Callable[[ArchSpec], bool] | None = None) -> Calibration:
    """Fit the whole-model terms to the table's whole-model rows (those ``use`` accepts, when at least
    3 do; else all) by bounded linear least squares on relative errors::

        measured = context_scale · Σ (entry − call_ms) + overhead_ms + cache_ms_per_mib · max(0, weights − cache_mib)

    ``context_scale`` ∈ [0.5, 3]: a layer timed alone, even after evicting the caches, runs faster
    than inside a model (measured here: 7–22% for MNv4-Conv-S space members at 1 thread), by a share
    that a whole model's rows pin down better than any per-layer feature we tried. ``cache`` ≥ 0:
    models whose weights exceed the last-level cache re-read them from DRAM on every inference.
    """
    from scipy.optimize import lsq_linear

    nan = float("nan")
    raw = table.raw_ms
    rows = []
    for key, row in table.models.iterrows():
        arch = parse_arch(str(key))
        keys = arch_keys(arch)
        if any(k not in raw for k in keys):
            continue  # a calibration model whose layers are not all profiled (yet)
        weights = float(row["weight_bytes"]) / 2**20
        rows.append((arch, sum(raw[k] for k in keys), max(weights - cache_mib, 0.0), float(row["latency_ms"])))
    chosen = [r for r in rows if use is not None and use(r[0])]
    if len(chosen) < 3:
        chosen = rows
    others = [r for r in rows if r not in chosen]
    if not chosen:
        return Calibration(1.0, 0.0, 0.0, cache_mib, 0, nan, nan, nan, nan)
    s, e, m = (np.array([r[i] for r in chosen]) for i in (1, 2, 3))

    def solve(scale: bool, cache: bool) -> tuple[float, float, float]:
        cols = [np.ones_like(m)] + ([s] if scale else []) + ([e] if cache else [])
        # A per-inference overhead is never negative; left free, noise can drive the intercept below 0
        # (seen here: −0.09 ms), which would predict a tiny model at ≤ 0 ms.
        lo = [0.0] + ([0.5] if scale else []) + ([0.0] if cache else [])
        hi = [np.inf] + ([3.0] if scale else []) + ([np.inf] if cache else [])
        target = m if scale else m - s
        x = lsq_linear(np.column_stack(cols) / m[:, None], target / m, bounds=(lo, hi), method="bvls").x
        k = float(x[1]) if scale else 1.0
        c = float(x[-1]) if cache else 0.0
        return k, float(x[0]), c

    def mape(k: float, o: float, c: float, s_: np.ndarray, e_: np.ndarray, m_: np.ndarray) -> float:
        return float(np.mean(np.abs(k * s_ + o + c * e_ - m_) / m_) * 100) if len(m_) else nan

    has_cache = bool(np.any(e > 0))
    k, o, c = solve(True, has_cache)
    nc = solve(True, False)
    ns = solve(False, has_cache)
    so, eo, mo = (np.array([r[i] for r in others]) for i in (1, 2, 3))
    return Calibration(
        k,
        o,
        c,
        cache_mib,
        len(m),
        mape(k, o, c, s, e, m),
        mape(*nc, s, e, m),
        mape(*ns, s, e, m),
        float(np.mean(np.abs(s - m) / m) * 100),
        len(others),
        mape(k, o, c, so, eo, mo),
        2 + int(has_cache),
    )


def table_calibration(table: LatencyTable) -> Calibration:
    """The calibration of a table's whole-model rows as :func:`profile_host` and ``latency import`` fit
    it (its cache size from the metadata; none recorded: no cache term)."""
    cache = table.meta.get("cache_mib")
    try:
        cache_mib = float(cache) if cache else math.inf
    except ValueError:
        cache_mib = math.inf
    return calibrate(table, cache_mib, space_members(table.spaces))


def space_members(spaces: Sequence[str]) -> Callable[[ArchSpec], bool] | None:
    """Membership in any of ``spaces`` (None without spaces): calibration uses the models a search will
    predict, not other families."""
    if not spaces:
        return None
    space_mod = import_space()
    loaded = [space_mod.load_space(name) for name in spaces]
    return lambda arch: any(space_mod.contains(sp, arch) for sp in loaded)


__all__ = ["Calibration", "calibrate", "space_members", "table_calibration"]
