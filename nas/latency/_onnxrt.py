"""``host-cpu``: each table entry exported alone to ONNX (a layer, or a whole model for an arch-string
key) and timed in onnxruntime on this machine (FP32, CPU execution provider), by the protocol of
:mod:`nas.latency._timing`. The per-call cost of ``session.run`` (~5–10 µs), paid once per model, is
measured on a trivial graph (:func:`measure_call_ms`) and subtracted from every entry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from nas.latency._catalog import HOST_TARGET
from nas.latency._host import package_version
from nas.latency._keys import call_probe_module, is_model_key, key_module
from nas.latency._timing import Timing, TimingConfig, host_session, time_sessions
from nas.spec import parse_arch


def time_onnx(
    path: str | Path, input_shape: Sequence[int], cfg: TimingConfig, seed: int = 0, flush: bool = False
) -> Timing:
    """Time one ONNX graph by :func:`time_sessions`; ``flush`` writes ``cfg.flush_mib`` of memory
    before each timed run, so that the graph's weights and input come from the last-level cache as
    inside a model, not from the core's L2 as in a tight loop."""
    x = np.random.default_rng(seed).standard_normal(tuple(input_shape), dtype=np.float32)

    def open_session() -> Callable[[], object]:
        sess = host_session(path, cfg.threads)
        feed = {sess.get_inputs()[0].name: x}  # type: ignore[attr-defined]
        run = sess.run  # type: ignore[attr-defined]
        return lambda: run(None, feed)

    return time_sessions(open_session, cfg, flush)


def measure_call_ms(cfg: TimingConfig, workdir: Path) -> float:
    """Per-call cost (ms) of ``session.run`` on a trivial 1×8×4×4 graph."""
    from nas.export.onnx import export_module

    path = workdir / "call_probe.onnx"
    export_module(call_probe_module(), (1, 8, 4, 4), path, check=False)
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


class OnnxRuntimeHost:
    """FP32 onnxruntime, CPU execution provider (``host-cpu``)."""

    target = HOST_TARGET
    dtype = "fp32"

    def runtime_name(self) -> str:
        return f"onnxruntime {package_version('onnxruntime')} (CPUExecutionProvider)"

    def measure_key(self, key: str, cfg: TimingConfig, workdir: Path) -> Timing:
        return measure_key(key, cfg, workdir)

    def measure_call_ms(self, cfg: TimingConfig, workdir: Path) -> float:
        return measure_call_ms(cfg, workdir)


__all__ = ["OnnxRuntimeHost", "export_key", "measure_call_ms", "measure_key", "time_onnx"]
