"""The timing protocol of every host runtime, and the load guard around it.

Timing: batch 1, ``threads`` intra-op threads (1 by default: at 2 threads the noise on a shared
2-core VM is 20–45%), ``warmup`` untimed runs, then ``runs`` timed runs in each of ``sessions`` fresh
sessions; an entry's latency is the smallest of the per-session medians (interference from other
processes only adds time), its ``std_ms`` the standard deviation of all timed runs. Denormals are
flushed to zero so untrained weights time like trained ones. A layer timed alone keeps its weights
and input in the core's L2 in a tight loop; inside a model the other layers evict them, so
``flush_mib`` of memory is written before each timed run of a layer.

On a shared machine another process on the sibling hyperthread makes everything ~1.8x slower for
seconds at a time: an :class:`InterferenceGuard` times a reference graph around every session and
re-times disturbed sessions (``guard``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas._lock import owned_tempdir
from nas.errors import NasError


@dataclass(frozen=True)
class TimingConfig:
    """How each ONNX graph is timed."""

    threads: int = 1
    runs: int = 30
    sessions: int = 3
    warmup: int = 5
    flush_mib: float = 4.0  # evicted from the caches before each timed run of a single layer (0 = never)
    guard: float = 1.15  # re-time a session when a reference graph ran this much slower than its best (0 = off)

    def __post_init__(self) -> None:
        for name in ("threads", "runs", "sessions"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise NasError(f"{name} must be a positive integer (got {v!r})")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            raise NasError(f"warmup must be a non-negative integer (got {self.warmup!r})")
        if not 0 <= self.flush_mib <= 4096:
            raise NasError(f"flush_mib must be in [0, 4096] (got {self.flush_mib!r})")
        if not (self.guard == 0 or 1 < self.guard <= 10):
            raise NasError(f"guard must be 0 (off) or a ratio in (1, 10] (got {self.guard!r})")


@dataclass(frozen=True)
class Timing:
    """One timed graph: median (ms), standard deviation (ms), number of timed runs, sessions re-timed,
    and whether some session was still disturbed by other work after every retry (``disturbed``: the
    number is not to be trusted, and the callers never keep it silently)."""

    median_ms: float
    std_ms: float
    n: int
    retries: int = 0
    disturbed: bool = False


class InterferenceGuard:
    """Detects other processes competing for this core, two ways. A busy sibling hyperthread makes
    everything ~1.8x slower for seconds to minutes on a shared VM: a small reference graph is timed
    before and after each session, and a session during which it ran ``tolerance`` times slower than
    its best is disturbed. More processes than cores take the core away for whole time slices, which
    a reference graph's median does not see: a session whose thread got less than :attr:`MIN_CPU_SHARE`
    of the wall-clock time on the CPU is disturbed too. A disturbed session is re-timed after a pause.

    ``probe`` returns the reference graph's time (ms); tests pass a scripted one (and a ``cpu_clock``).
    """

    RETRIES = 4
    PAUSE_S = 0.25
    MIN_CPU_SHARE = 0.8
    #: sessions shorter than this are not judged by their CPU share (too short to measure it)
    MIN_SHARE_WALL_S = 0.005

    def __init__(
        self,
        probe: Callable[[], float],
        tolerance: float,
        sleep: Callable[[float], None] = time.sleep,
        cpu_clock: Callable[[], float] = time.thread_time,
    ):
        self.probe, self.tolerance, self.sleep, self.cpu_clock = probe, tolerance, sleep, cpu_clock
        self.best = float("inf")
        self.retries = 0
        self.disturbed = 0  #: sessions still disturbed after every retry

    def seed(self, best_ms: float) -> None:
        """Start from a reference time measured on this machine when it was quiet (a table's
        ``guard_ref_ms``): a machine busy from the start is then seen as busy."""
        if math.isfinite(best_ms) and best_ms > 0:
            self.best = min(self.best, best_ms)

    def level(self) -> float:
        """Reference time over its best so far (1.0 = as fast as ever seen)."""
        t = self.probe()
        self.best = min(self.best, t)
        return t / self.best

    def run(self, timed: Callable[[], np.ndarray]) -> np.ndarray:
        """Run ``timed`` (one session's run times) until no interference is seen around it; after
        :attr:`RETRIES` disturbed attempts, the least disturbed one."""
        best: np.ndarray | None = None
        for attempt in range(self.RETRIES + 1):
            before = self.level()
            wall0, cpu0 = time.perf_counter(), self.cpu_clock()
            out = timed()
            wall, cpu = time.perf_counter() - wall0, self.cpu_clock() - cpu0
            after = self.level()
            descheduled = wall >= self.MIN_SHARE_WALL_S and cpu < self.MIN_CPU_SHARE * wall
            if max(before, after) <= self.tolerance and not descheduled:
                return out
            if best is None or np.median(out) < np.median(best):
                best = out
            if attempt < self.RETRIES:
                self.retries += 1
                self.sleep(self.PAUSE_S * 2**attempt)
        assert best is not None
        self.disturbed += 1
        return best


_GUARDS: dict[int, InterferenceGuard] = {}


def _reference_probe(threads: int) -> Callable[[], float]:
    """Median time (ms) of 9 runs of a fixed ~0.2 ms conv graph in one long-lived session."""
    import torch

    from nas.export.onnx import export_module

    ref = torch.nn.Sequential(
        torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(32, 32, 3, padding=1)
    )
    with owned_tempdir("guard") as workdir:
        path = workdir / "reference.onnx"
        export_module(ref, (1, 32, 28, 28), path, check=False)
        sess = host_session(path, threads)
    feed = {sess.get_inputs()[0].name: np.ones((1, 32, 28, 28), dtype=np.float32)}  # type: ignore[attr-defined]
    run = sess.run  # type: ignore[attr-defined]

    def probe() -> float:
        t = []
        for _ in range(9):
            t0 = time.perf_counter()
            run(None, feed)
            t.append(time.perf_counter() - t0)
        return float(np.median(t)) * 1e3

    for _ in range(3):
        probe()
    return probe


def interference_guard(cfg: TimingConfig) -> InterferenceGuard | None:
    """The process-wide guard for ``cfg.threads`` (None when ``cfg.guard`` is 0)."""
    if not cfg.guard:
        return None
    guard = _GUARDS.get(cfg.threads)
    if guard is None:
        guard = _GUARDS[cfg.threads] = InterferenceGuard(_reference_probe(cfg.threads), cfg.guard)
    guard.tolerance = cfg.guard
    return guard


def host_session(path: str | Path, threads: int) -> object:
    """A CPU onnxruntime session for timing: sequential, full graph optimisation, denormals flushed."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    so.add_session_config_entry("session.set_denormal_as_zero", "1")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def time_sessions(open_session: Callable[[], Callable[[], object]], cfg: TimingConfig, flush: bool = False) -> Timing:
    """The timing protocol of every host runtime: ``cfg.sessions`` times, ``open_session()`` gives a fresh
    session's zero-argument call, run ``cfg.warmup`` times untimed and ``cfg.runs`` times timed (after a
    write of ``cfg.flush_mib`` of memory each with ``flush``), under the load guard; the smallest session
    median (:func:`timing_of`)."""
    lines = np.zeros(int(cfg.flush_mib * 2**20) // 64 if flush else 0, dtype=np.int64)
    flush_view = lines.reshape(-1, 1) if len(lines) else None

    def session() -> np.ndarray:
        invoke = open_session()
        for _ in range(cfg.warmup):
            invoke()
        t = np.empty(cfg.runs)
        for i in range(cfg.runs):
            if flush_view is not None:
                flush_view[:] += 1  # one write per 64-byte cache line
            t0 = time.perf_counter()
            invoke()
            t[i] = time.perf_counter() - t0
        return t * 1e3

    guard = interference_guard(cfg)
    retries0, disturbed0 = (guard.retries, guard.disturbed) if guard else (0, 0)
    samples = [guard.run(session) if guard else session() for _ in range(cfg.sessions)]
    return timing_of(samples, guard, retries0, disturbed0)


def timing_of(
    samples: Sequence[np.ndarray], guard: InterferenceGuard | None, retries0: int = 0, disturbed0: int = 0
) -> Timing:
    """The :class:`Timing` of per-session run times (ms): the smallest session median, since
    interference from other processes only ever adds time (on a quiet machine all session medians
    agree). Disturbed only when every session was: one quiet session is a clean minimum."""
    medians = [float(np.median(t)) for t in samples]
    allt = np.concatenate(samples)
    retries = (guard.retries - retries0) if guard else 0
    disturbed = guard is not None and guard.disturbed - disturbed0 >= len(samples)
    return Timing(float(np.min(medians)), float(np.std(allt)), int(allt.size), retries, disturbed)


__all__ = [
    "InterferenceGuard",
    "Timing",
    "TimingConfig",
    "host_session",
    "interference_guard",
    "time_sessions",
    "timing_of",
]
