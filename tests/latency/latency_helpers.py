"""Shared helpers of the latency tests: tiny architectures and a fake timer."""

from __future__ import annotations

from pathlib import Path

from nas.cost import count_macs, layer_costs
from nas.latency import Timing
from nas.latency._keys import is_model_key, key_macs
from nas.spec import ArchSpec, parse_arch

#: A small conv-only net at 32 px (every conv block kind); stays fast when timed for real.
TINY_CONV = "res32|cn_r1_k3_s2_c8|er_r1_k3_s1_e2_c8|uir_r1_a3_k5_s2_e4_c16|uir_r1_a0_k3_s1_e2_c16|ds_r1_k3_s2_c24|head_c32_h48_cls10"
#: Same with an MQA block and GELU (what the Pixel 4 DSP cannot run).
TINY_HYBRID = (
    "res32|cn_r1_k3_s2_c8|er_r1_k3_s1_e2_c8|uir_r1_a3_k5_s2_e4_c16_ls|mqa_r1_k3_h2_s1_v2_d8_c16_ls|"
    "uir_r1_a3_k3_s1_e2_c16_ls_nge|head_c32_h48_cls10"
)


def fake_ms(key: str) -> float:
    """Deterministic stand-in for a measurement: 5 µs call + 1 ms per 50 MMACs."""
    macs = count_macs(parse_arch(key)) if is_model_key(key) else key_macs(key)
    return 0.005 + macs / 50e6


class FakeTimer:
    """``measure`` replacement counting calls per key; can raise after ``fail_after`` calls."""

    def __init__(self, fail_after: int | None = None):
        self.calls: dict[str, int] = {}
        self.fail_after = fail_after

    def __call__(self, key: str, cfg: object, workdir: Path) -> Timing:
        if self.fail_after is not None and sum(self.calls.values()) >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.calls[key] = self.calls.get(key, 0) + 1
        return Timing(fake_ms(key), 0.001, 10)


def block_sum(arch: ArchSpec) -> float:
    """Σ fake layer latencies minus their per-call cost (what a profiled table with call_ms=0.005 adds)."""
    return sum(c.macs / 50e6 for c in layer_costs(arch))
