"""Profiling this host with onnxruntime: every table entry exported alone and timed, resumably; then
the whole-model terms calibrated on whole models timed end to end.

Timing: batch 1, ``threads`` intra-op threads (1 by default: at 2 threads the noise on a shared
2-core VM is 20–45%), ``warmup`` untimed runs, then ``runs`` timed runs in each of ``sessions`` fresh
sessions; an entry's latency is the smallest of the per-session medians (interference from other
processes only adds time), its ``std_ms`` the standard deviation of all timed runs. Denormals are
flushed to zero so untrained weights time like trained ones.

What separates a layer timed alone from the same layer inside a model, and how each is handled:

* the per-call cost of ``session.run`` (~5–10 µs), paid once per model: measured (``call_ms``) and
  subtracted from every entry;
* caches: in a tight loop a layer's weights and input stay in the core's L2; inside a model the
  other layers evict them. ``flush_mib`` of memory is written before each timed run of a layer;
* everything else that makes a layer slower inside a model than alone (measured here: 7–22% for
  MNv4-Conv-S members; layout conversions and fusions at layer boundaries go the other way): a
  ``context_scale`` on every entry, fitted below;
* whole models whose weights exceed the last-level cache re-read them from DRAM on every inference:
  a term in the weights above ``cache_mib``, fitted below;
* a fixed per-inference overhead, fitted below.

On a shared machine another process on the sibling hyperthread makes everything ~1.8x slower for
seconds at a time: an :class:`InterferenceGuard` times a reference graph around every session and
re-times disturbed sessions (``guard``; the number of re-timed sessions goes to the metadata).

Whole models — random members of the profiled spaces, and the zoo — are timed end to end, spread
among the layers (so that both see the same machine conditions), and fit the last three terms
(:func:`calibrate`; on the space members when there are any).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nas._lock import owned_tempdir
from nas.errors import NasError
from nas.latency._catalog import HOST_TARGET
from nas.latency._keys import is_model_key, key_module
from nas.latency._table import (
    LatencyTable,
    TableAppender,
    make_row,
    parse_table_text,
    read_table,
    table_file,
    write_dir,
    write_table,
)
from nas.spec import ArchSpec, arch_keys, parse_arch
from nas.units import utc_timestamp

if TYPE_CHECKING:
    from nas.latency._runtime import HostRuntime

#: Assumed last-level cache when the host does not report one (MiB).
DEFAULT_CACHE_MIB = 32.0


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


def time_onnx(
    path: str | Path, input_shape: Sequence[int], cfg: TimingConfig, seed: int = 0, flush: bool = False
) -> Timing:
    """Time one ONNX graph (see the module docstring); ``flush`` writes ``cfg.flush_mib`` of memory
    before each timed run, so that the graph's weights and input come from the last-level cache as
    inside a model, not from the core's L2 as in a tight loop."""
    x = np.random.default_rng(seed).standard_normal(tuple(input_shape), dtype=np.float32)

    def open_session() -> Callable[[], object]:
        sess = host_session(path, cfg.threads)
        feed = {sess.get_inputs()[0].name: x}  # type: ignore[attr-defined]
        run = sess.run  # type: ignore[attr-defined]
        return lambda: run(None, feed)

    return time_sessions(open_session, cfg, flush)


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


def _call_probe() -> object:
    """A graph that does almost nothing: its run time is the per-call cost included in every entry."""
    import torch

    class AddOne(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + 1.0

    return AddOne()


def measure_call_ms(cfg: TimingConfig, workdir: Path) -> float:
    """Per-call cost (ms) of ``session.run`` on a trivial 1×8×4×4 graph."""
    from nas.export.onnx import export_module

    path = workdir / "call_probe.onnx"
    export_module(_call_probe(), (1, 8, 4, 4), path, check=False)  # type: ignore[arg-type]
    probe = TimingConfig(cfg.threads, max(cfg.runs, 200), cfg.sessions, max(cfg.warmup, 20), cfg.flush_mib)
    return time_onnx(path, (1, 8, 4, 4), probe).median_ms


def export_key(key: str, path: Path) -> tuple[int, ...]:
    """Export one table entry alone (or a whole model for an arch-string key) to ``path``; returns the input shape."""
    from nas.export.onnx import export_module, export_onnx

    if is_model_key(key):
        arch = parse_arch(key)
        res = export_onnx(arch, path, check=False)
        return res.input_shape
    module, shape = key_module(key)
    export_module(module, shape, path, check=False)
    return shape


def measure_key(key: str, cfg: TimingConfig, workdir: Path) -> Timing:
    """Export and time one key (a layer, or a whole model for an arch string)."""
    path = workdir / "entry.onnx"
    shape = export_key(key, path)
    # Layers run with evicted caches (as inside a model); whole models back to back (as deployed).
    return time_onnx(path, shape, cfg, flush=not is_model_key(key))


def host_cache_mib() -> float:
    """Size of this host's last-level cache (MiB) from sysfs, else :data:`DEFAULT_CACHE_MIB`."""
    best = 0.0
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    try:
        for idx in base.glob("index*"):
            if (idx / "type").read_text().strip() == "Instruction":
                continue
            text = (idx / "size").read_text().strip().upper()
            mult = {"K": 1 / 1024, "M": 1.0, "G": 1024.0}.get(text[-1:], 1 / 2**20)
            value = float(text[:-1]) if text[-1:] in "KMG" else float(text)
            best = max(best, value * mult)
    except (OSError, ValueError):
        pass
    return best or DEFAULT_CACHE_MIB


def runtime_name() -> str:
    """Runtime string recorded in profiled ``host-cpu`` tables."""
    from nas.latency._runtime import OnnxRuntimeHost

    return OnnxRuntimeHost().runtime_name()


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


@dataclass(frozen=True)
class ProfileResult:
    """What a profiling run did."""

    path: Path
    table: LatencyTable
    measured: int
    skipped: int
    calibration: Calibration
    #: entries measured while other work disturbed every session: not kept (a re-run measures them)
    disturbed: tuple[str, ...] = ()


ProgressFn = Callable[[int, int, str], None]
MeasureFn = Callable[[str, TimingConfig, Path], Timing]


def check_resumable(target: str, cfg: TimingConfig, tables_dir: Path | None = None, fresh: bool = False) -> set[str]:
    """Keys already profiled for ``target``; raises when the existing table was made with other settings
    or on another machine."""
    from nas.latency._machine import this_machine
    from nas.latency._runtime import runtime_name_of

    path = write_dir(tables_dir) / table_file(target)
    here = this_machine(runtime_name_of(target), cfg.threads)
    return set() if fresh else _open_existing(path, cfg, here.fingerprint)


def _interleave(layers: list[str], models: list[str]) -> list[str]:
    """Whole models spread evenly among the layers: a machine's speed drifts over a long run, and the
    calibration must see the same conditions as the entries it calibrates."""
    out: list[str] = []
    pending = list(models)
    n = len(pending)
    for i, key in enumerate(layers):
        out.append(key)
        while pending and (n - len(pending) + 1) * len(layers) / (n + 1) <= i + 1:
            out.append(pending.pop(0))
    return out + pending


def space_members(spaces: Sequence[str]) -> Callable[[ArchSpec], bool] | None:
    """Membership in any of ``spaces`` (None without spaces): calibration uses the models a search will
    predict, not other families."""
    if not spaces:
        return None
    from nas.latency._keys import import_space

    space_mod = import_space()
    loaded = [space_mod.load_space(name) for name in spaces]
    return lambda arch: any(space_mod.contains(sp, arch) for sp in loaded)


def _open_existing(path: Path, cfg: TimingConfig, fingerprint: str | None = None) -> set[str]:
    """Keys already in a (possibly interrupted) profiled table; refuses one made with other settings
    or on another machine (its entries and new ones would not add up)."""
    if not path.exists():
        return set()
    meta, df = parse_table_text(path.read_text(encoding="utf-8"), str(path))
    if meta.get("source") != "profiled":
        raise NasError(f"{path} holds a {meta.get('source')!r} table, not a profiled one; move it away or use --fresh")
    for name in ("threads", "runs", "sessions", "flush_mib"):
        have = meta.get(name)
        want = f"{getattr(cfg, name):g}"
        if have is not None and have != want:
            raise NasError(
                f"{path} was profiled with {name}={have}; resume with --{name} {have}, or start over with --fresh"
            )
    have_fp = meta.get("fingerprint")
    if fingerprint is not None and have_fp is not None and have_fp != fingerprint:
        raise NasError(
            f"{path} was profiled on another machine or runtime ({meta.get('machine', have_fp)}); "
            "start over here with --fresh, or give another --tables folder"
        )
    return set(df["key"].astype(str)) if "key" in df.columns else set()


def profile_host(
    keys: Sequence[str],
    models: Sequence[ArchSpec] = (),
    *,
    cfg: TimingConfig = TimingConfig(),
    target: str = HOST_TARGET,
    spaces: Sequence[str] = (),
    tables_dir: Path | None = None,
    fresh: bool = False,
    progress: ProgressFn | None = None,
    measure: MeasureFn | None = None,
    cache_mib: float | None = None,
    call_ms: float | None = None,
    runtime: HostRuntime | None = None,
) -> ProfileResult:
    """Measure every key (and every model in ``models`` end-to-end) that the target's table lacks.

    Resumable: finished entries are appended to the table (in the user's tables folder) as they
    complete; re-running after an interruption (exception, Ctrl-C, kill -9) measures only what is
    missing. An entry that other work disturbed in every session, retries included, is not kept
    (:attr:`ProfileResult.disturbed`): a re-run measures it again. At the end the whole table is
    rewritten with the calibrated overhead and cache term and this machine's fingerprint.
    ``measure`` (one key → timing) and ``call_ms`` (the per-call cost; measured when None) can be
    replaced, e.g. in tests; ``runtime`` defaults to the target's (:func:`host_runtime`).
    """
    from nas.latency._machine import this_machine
    from nas.latency._runtime import host_runtime

    rt = runtime if runtime is not None else host_runtime(target)
    measure_fn = measure if measure is not None else rt.measure_key
    path = write_dir(tables_dir) / table_file(target)
    if fresh and path.exists():
        path.unlink()
    here = this_machine(rt.runtime_name(), cfg.threads)
    done = _open_existing(path, cfg, here.fingerprint)
    layers = [k for k in dict.fromkeys(keys) if k not in done]
    whole = [a.arch for a in dict.fromkeys(models) if a.arch not in done and a.arch not in layers]
    todo = _interleave(layers, whole)
    cache = host_cache_mib() if cache_mib is None else cache_mib
    meta = {
        "target": target,
        "source": "profiled",
        "runtime": here.runtime,
        "dtype": rt.dtype,
        "threads": str(cfg.threads),
        "runs": str(cfg.runs),
        "sessions": str(cfg.sessions),
        "warmup": str(cfg.warmup),
        "flush_mib": f"{cfg.flush_mib:g}",
        "created": utc_timestamp(),
        "cache_mib": f"{cache:g}",
        **here.meta(),
    }
    load_start = os.getloadavg()[0]
    total = len(todo)
    retries = 0
    disturbed: list[str] = []
    # Named after this process, so that the next run removes it should this one be killed.
    with owned_tempdir("profile") as work, TableAppender(path, meta) as out:
        for i, key in enumerate(todo):
            if progress is not None:
                progress(i, total, key)
            t = measure_fn(key, cfg, work)
            retries += t.retries
            if t.disturbed:
                disturbed.append(key)
                continue
            out.append(make_row(key, rt.dtype, t.median_ms, t.std_ms, t.n))
        if progress is not None:
            progress(total, total, "")
        if call_ms is None:
            call_ms = rt.measure_call_ms(cfg, work)
    table = read_table(path)
    old_spaces = table.spaces
    guard = interference_guard(cfg) if measure is None else None
    table.meta.update(
        updated=utc_timestamp(),
        spaces=",".join(dict.fromkeys([*old_spaces, *spaces])),
        call_ms=f"{call_ms:.6g}",
        cache_mib=f"{cache:g}",
        loadavg=f"{load_start:.2f} at start, {os.getloadavg()[0]:.2f} at end ({os.cpu_count()} cores)",
        guard=f"{cfg.guard:g}",
        guard_retries=str(retries + int(table.meta.get("guard_retries", "0") or 0)),
        **here.meta(),
    )
    if guard is not None and math.isfinite(guard.best):
        table.meta["guard_ref_ms"] = f"{guard.best:.6g}"
    table = LatencyTable(table.meta, table.df, path)  # drop cached views computed with the old call_ms
    cal = calibrate(table, cache, space_members(table.spaces))
    table.meta.update(cal.meta())
    if cal.n_models:
        table.meta["note"] = cal.note()
    table = LatencyTable(table.meta, table.df, path)
    write_table(table, path)
    return ProfileResult(path, table, total - len(disturbed), len(done), cal, tuple(disturbed))


__all__ = [
    "Calibration",
    "ProfileResult",
    "Timing",
    "TimingConfig",
    "InterferenceGuard",
    "calibrate",
    "check_resumable",
    "export_key",
    "host_cache_mib",
    "host_session",
    "measure_call_ms",
    "measure_key",
    "profile_host",
    "runtime_name",
    "space_members",
    "table_calibration",
    "timing_of",
    "time_onnx",
]
