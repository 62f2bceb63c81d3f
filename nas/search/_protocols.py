"""The typed seams of a search: the progress :class:`Reporter` and the :class:`LatencyPredictor` a
search reads latencies from (a :class:`nas.latency.Predictor`; the accuracy side is
:class:`nas.supernet.AccuracyEstimator`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from nas.spec import ArchSpec

if TYPE_CHECKING:
    from nas.latency import Device, Prediction


class Reporter(Protocol):
    """Progress sink (the CLI draws rich progress bars; tests use :class:`SilentReporter`)."""

    def note(self, text: str) -> None:
        """A line for the user."""
        ...

    def stage_start(self, label: str, total: int, done: int) -> None:
        """A stage of ``total`` trials starts, ``done`` of them already completed (a resume)."""
        ...

    def trial_done(self, label: str, feasible: bool, score: float | None) -> None:
        """A trial of stage ``label`` finished."""
        ...

    def stage_end(self, label: str) -> None:
        """Stage ``label`` finished."""
        ...


class SilentReporter:
    """Collects notes, draws nothing."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        """Keep the note in :attr:`notes`."""
        self.notes.append(text)

    def stage_start(self, label: str, total: int, done: int) -> None:
        """Nothing to draw."""

    def trial_done(self, label: str, feasible: bool, score: float | None) -> None:
        """Nothing to draw."""

    def stage_end(self, label: str) -> None:
        """Nothing to draw."""


class LatencyPredictor(Protocol):
    """Latency of architectures on one target (what :func:`nas.latency.load_predictor` returns)."""

    #: The target's catalog entry (what it cannot run), None for a table without one.
    device: Device | None

    @property
    def target(self) -> str:
        """The target's name."""
        ...

    def entry(self, key: str) -> tuple[float, int, bool]:
        """(contribution ms, weight bytes, estimated?) of one layer key."""
        ...

    def predict_archs(self, archs: Sequence[ArchSpec]) -> Prediction:
        """Whole-model latencies of ``archs`` and where they come from."""
        ...


__all__ = ["LatencyPredictor", "Reporter", "SilentReporter"]
