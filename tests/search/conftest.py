"""Small, fast searches: the conv-small space, the instant `params` estimator, shipped roofline tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas.search import SearchSettings


@pytest.fixture
def settings(tmp_path: Path):
    def make(**kw) -> SearchSettings:
        base = dict(
            targets=["pixel8-edgetpu"],
            budgets=["0.72ms"],
            space="mnv4-conv-small",
            estimator="params",
            coarse_trials=6,
            fine_trials=6,
            trials=10,
            out=tmp_path / "run",
            references=False,
        )
        base.update(kw)
        return SearchSettings(**base)

    return make
