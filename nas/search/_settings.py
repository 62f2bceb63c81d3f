"""The settings of a search (what the CLI fills from its options and ``nas.toml``) and the checks
that need nothing loaded."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.errors import NasError
from nas.search._storage import check_rdb_url
from nas.supernet import TUNAS_BETA

ENGINES = ("optuna", "tunas")


@dataclass
class SearchSettings:
    """Everything a search run needs (the CLI fills it from options and ``nas.toml``)."""

    targets: Sequence[str]
    budgets: Sequence[str]
    space: str | None = None
    estimator: str | None = None
    coarse_estimator: str | None = None  # scores the coarse stage of a two-stage search (default: ``estimator``)
    one_stage: bool = False
    trials: int = 100
    coarse_trials: int = 40
    fine_trials: int = 60
    coarse_top: int = 1
    pareto: bool = False
    seed: int = 0
    out: Path | None = None
    output_root: Path = Path("results")
    storage: str | None = None
    study: str | None = None
    ray_address: str | None = None
    workers: int | None = None
    fallback: str | None = None
    tables_dir: Path | None = None
    engine: str = "optuna"
    beta: float = TUNAS_BETA
    references: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def check_settings(settings: SearchSettings) -> None:
    """The checks that need nothing loaded."""
    if settings.engine not in ENGINES:
        raise NasError(f"--engine must be one of {', '.join(ENGINES)} (got {settings.engine!r})")
    if settings.engine == "tunas" and (settings.workers or settings.ray_address or settings.storage or settings.study):
        raise NasError(
            "--engine tunas runs in this process; --workers, --ray-address, --storage and --study are for the optuna engine"
        )
    if settings.coarse_top < 1:
        raise NasError(f"--coarse-top must be >= 1 (got {settings.coarse_top})")
    for label, n in (
        ("trials", settings.trials),
        ("coarse-trials", settings.coarse_trials),
        ("fine-trials", settings.fine_trials),
    ):
        if n < 1:
            raise NasError(f"--{label} must be >= 1 (got {n})")
    if not settings.beta < 0:
        raise NasError(f"--beta must be negative (a latency penalty; got {settings.beta})")
    if settings.storage and "://" in settings.storage:
        check_rdb_url(settings.storage)


__all__ = ["ENGINES", "SearchSettings", "check_settings"]
