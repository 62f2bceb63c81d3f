"""``host-cpu-tflite-int8``: the paper's CPU runtime on this machine — each table entry converted alone to
an INT8 ``.tflite`` model (litert-torch, then ai-edge-quantizer's full-integer static recipe) and
timed in the LiteRT interpreter with XNNPACK, like ``host-cpu``'s onnxruntime graphs: fresh
interpreters per session, warm-up, caches flushed before each run of a single layer, the
interference guard around every session. Needs the ``tflite`` extra.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from nas.latency._catalog import TFLITE_HOST_TARGET
from nas.latency._host import package_version
from nas.latency._keys import call_probe_module, is_model_key, key_module
from nas.latency._timing import Timing, TimingConfig, time_sessions


def litert_runtime_name() -> str:
    """The runtime string of ``host-cpu-tflite-int8`` tables made here."""
    return f"LiteRT {package_version('ai-edge-litert')} (XNNPACK, INT8)"


def export_key_tflite(key: str, path: Path, seed: int = 0, int8: bool = True) -> tuple[int, ...]:
    """Convert one table entry (a layer alone, or a whole model for an arch string) to an INT8 (or FP32)
    ``.tflite`` file; returns its NCHW input shape. Whole models get BatchNorm statistics estimated on random
    inputs first (as the ONNX export does), so that their activations have a trained model's range."""
    from nas.export.tflite import export_module_tflite

    if is_model_key(key):
        from nas.model import build_model, random_batches, recalibrate_bn
        from nas.spec import parse_arch

        arch = parse_arch(key)
        shape: tuple[int, ...] = (1, 3, arch.resolution, arch.resolution)
        module = recalibrate_bn(build_model(arch, seed=seed), random_batches((4, *shape[1:]), 2, seed))
    else:
        module, shape = key_module(key)
    export_module_tflite(module, shape, path, int8=int8, check=False, seed=seed)
    return shape


def time_tflite(path: str | Path, cfg: TimingConfig, seed: int = 0, flush: bool = False) -> Timing:
    """Time one ``.tflite`` model like :func:`nas.latency.time_onnx` times an ONNX graph: ``cfg.sessions``
    fresh interpreters (``cfg.threads`` threads, XNNPACK), ``cfg.warmup`` untimed and ``cfg.runs`` timed
    invocations each; the smallest session median."""
    from nas.export.tflite import interpreter, quantize_input

    rng = np.random.default_rng(seed)

    def open_session() -> Callable[[], object]:
        it = interpreter(path, cfg.threads)
        detail = it.get_input_details()[0]
        x = quantize_input(detail, rng.standard_normal(tuple(detail["shape"]), dtype=np.float32))
        it.set_tensor(detail["index"], x)
        return it.invoke

    return time_sessions(open_session, cfg, flush)


class LiteRtHost:
    """INT8 LiteRT with XNNPACK on this machine (``host-cpu-tflite-int8``)."""

    target = TFLITE_HOST_TARGET
    dtype = "int8"

    def __init__(self) -> None:
        from nas.export.tflite import require_litert

        require_litert()

    def runtime_name(self) -> str:
        return litert_runtime_name()

    def measure_key(self, key: str, cfg: TimingConfig, workdir: Path) -> Timing:
        path = workdir / "entry.tflite"
        export_key_tflite(key, path)
        # Layers run with evicted caches (as inside a model); whole models back to back (as deployed).
        return time_tflite(path, cfg, flush=not is_model_key(key))

    def measure_call_ms(self, cfg: TimingConfig, workdir: Path) -> float:
        """Per-call cost of ``invoke`` on a trivial INT8 model (an add on 1×8×4×4)."""
        from nas.export.tflite import export_module_tflite

        path = workdir / "call_probe.tflite"
        export_module_tflite(call_probe_module(), (1, 8, 4, 4), path, int8=True, check=False)
        probe = TimingConfig(
            cfg.threads, max(cfg.runs, 200), cfg.sessions, max(cfg.warmup, 20), cfg.flush_mib, cfg.guard
        )
        return time_tflite(path, probe).median_ms


__all__ = ["LiteRtHost", "export_key_tflite", "litert_runtime_name", "time_tflite"]
