"""The runtimes that measure this machine: one per host target, and which one measures a target.

``host-cpu`` times FP32 onnxruntime graphs (:mod:`nas.latency._onnxrt`); ``host-cpu-tflite-int8`` times
INT8 ``.tflite`` models in the LiteRT interpreter with XNNPACK, the paper's CPU runtime
(:mod:`nas.latency._litert`). Both export one table entry alone (a layer, or a whole model for an
arch-string key), time it with the same :class:`TimingConfig`, guard and cache flushing, and know
their per-call cost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from nas.errors import NasError
from nas.latency._catalog import HOST_TARGET, HOST_TARGETS, TFLITE_HOST_TARGET
from nas.latency._onnxrt import OnnxRuntimeHost
from nas.latency._timing import Timing, TimingConfig


class HostRuntime(Protocol):
    """How one host target is measured."""

    target: str
    dtype: str

    def runtime_name(self) -> str:
        """Runtime and version, as recorded in tables (part of the machine fingerprint)."""
        ...

    def measure_key(self, key: str, cfg: TimingConfig, workdir: Path) -> Timing:
        """Export and time one table entry (a layer key, or an arch string for a whole model)."""
        ...

    def measure_call_ms(self, cfg: TimingConfig, workdir: Path) -> float:
        """The per-call cost included in every entry's measurement."""
        ...


def host_runtime(target: str) -> HostRuntime:
    """The runtime measuring ``target`` on this machine; a target that is not measured here is a
    one-line error."""
    if target == HOST_TARGET:
        return OnnxRuntimeHost()
    if target == TFLITE_HOST_TARGET:
        from nas.latency._litert import LiteRtHost

        return LiteRtHost()
    raise NasError(
        f"only {' and '.join(HOST_TARGETS)} (this machine) can be measured here; for {target!r} use "
        "`latency bundle` + `latency import`, or `latency import --from-models`"
    )


def runtime_name_of(target: str) -> str:
    """The runtime string a table of host target ``target`` made here would record (no heavy import)."""
    if target == TFLITE_HOST_TARGET:
        from nas.latency._litert import litert_runtime_name

        return litert_runtime_name()
    return OnnxRuntimeHost().runtime_name()


__all__ = ["HostRuntime", "host_runtime", "runtime_name_of"]
