"""What a fit cannot tell is said: a calibration resting on as many models as it fits terms, a term held
at a bound, and which comparison `latency validate` can make for a target it cannot measure."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from nas.latency import Calibration, not_measurable_hint
from nas.latency._validate import scatter_figure


def _cal(**kw) -> Calibration:
    base = dict(
        context_scale=1.1,
        overhead_ms=0.05,
        cache_ms_per_mib=0.0,
        cache_mib=math.inf,
        n_models=8,
        mape_pct=3.0,
        mape_no_cache_pct=3.0,
        mape_no_scale_pct=5.0,
        mape_block_sum_pct=9.0,
    )
    base.update(kw)
    return Calibration(**base)


def test_a_sound_calibration_has_no_warnings():
    assert _cal().warnings() == []
    assert _cal(n_models=0).warnings() == []  # nothing calibrated: nothing to warn about


@pytest.mark.parametrize(
    "kw, needle",
    [
        ({"n_models": 1, "mape_pct": 0.0}, "rests on 1 whole model for 2 fitted terms: its MAPE of 0.0% says nothing"),
        ({"n_models": 3, "n_free": 3}, "rests on 3 whole models for 3 fitted terms"),
        ({"context_scale": 3.0}, "context scale stuck at the bound 3"),
        ({"context_scale": 0.5}, "context scale stuck at the bound 0.5"),
        ({"overhead_ms": 0.0}, "per-inference overhead stuck at its bound 0 ms"),
    ],
)
def test_suspect_calibrations_are_named(kw, needle):
    assert any(needle in w for w in _cal(**kw).warnings())


def test_validate_hint_offers_published_rows_only_where_they_exist():
    assert not_measurable_hint("pixel6-cpu").endswith("--published")
    mine = not_measurable_hint("my-phone")
    assert "--published" not in mine and "has no published latencies" in mine and "--from-models" in mine


@pytest.mark.parametrize("lo, hi", [(0.8, 1.6), (0.4, 3.0), (2.0, 300.0)])
def test_scatter_tick_labels_are_plain_and_few(lo, hi):
    import matplotlib.pyplot as plt

    m = np.geomspace(lo, hi, 20)
    fig = scatter_figure(pd.DataFrame({"measured_ms": m, "predicted_ms": m * 1.03}), "t")
    try:
        fig.canvas.draw()
        ax = fig.axes[0]
        for axis, (a, b) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            shown = [t for t in axis.get_major_ticks() if a <= t.get_loc() <= b]
            labels = [t.label1.get_text() for t in shown]
            assert 2 <= len(labels) <= 8, labels
            assert all(lab and "10^" not in lab and "times" not in lab for lab in labels), labels
            assert all(not t.label1.get_text() for t in axis.get_minor_ticks())
    finally:
        plt.close(fig)
