"""Reference architectures as :class:`~nas.spec.ArchSpec`: MobileNetV4 (paper and TF/timm variants) and
the MobileNet V1/V2 family that the latency work calibrates device models on.

Block lists follow ``../shared/reference/architectures.md`` (paper Tables 11–15, TF Model Garden and
timm ``mobilenetv3.py``); parameter counts at 1000 classes equal timm 1.0.31's exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from nas.errors import SpecError
from nas.inputs import path_exists
from nas.spec import ArchSpec, load_spec_file, make_divisible, parse_arch


@dataclass(frozen=True)
class ZooEntry:
    """A named reference model."""

    name: str
    description: str
    arch: str  # architecture string; may use r<N> repeats

    def spec(self) -> ArchSpec:
        """The parsed spec (1000 classes, native resolution)."""
        return _parse(self.arch)


@cache
def _parse(text: str) -> ArchSpec:
    return parse_arch(text)


def _join(res: int, *parts: str) -> str:
    return "|".join([f"res{res}", *parts])


_LS = "_ls"  # layer scale token (hybrid models)

_CONV_SMALL = _join(
    224,
    "cn_r1_k3_s2_c32",
    "cn_r1_k3_s2_c32",
    "cn_r1_k1_s1_c32",
    "cn_r1_k3_s2_c96",
    "cn_r1_k1_s1_c64",
    "uir_r1_a5_k5_s2_e3_c96",
    "uir_r4_a0_k3_s1_e2_c96",
    "uir_r1_a3_k0_s1_e4_c96",
    "uir_r1_a3_k3_s2_e6_c128",
    "uir_r1_a5_k5_s1_e4_c128",
    "uir_r1_a0_k5_s1_e4_c128",
    "uir_r1_a0_k5_s1_e3_c128",
    "uir_r2_a0_k3_s1_e4_c128",
    "head_c960_h1280_cls1000",
)

_CONV_MEDIUM = _join(
    256,
    "cn_r1_k3_s2_c32",
    "er_r1_k3_s2_e4_c48",
    "uir_r1_a3_k5_s2_e4_c80",
    "uir_r1_a3_k3_s1_e2_c80",
    "uir_r1_a3_k5_s2_e6_c160",
    "uir_r2_a3_k3_s1_e4_c160",
    "uir_r1_a3_k5_s1_e4_c160",
    "uir_r1_a3_k3_s1_e4_c160",
    "uir_r1_a3_k0_s1_e4_c160",
    "uir_r1_a0_k0_s1_e2_c160",
    "uir_r1_a3_k0_s1_e4_c160",
    "uir_r1_a5_k5_s2_e6_c256",
    "uir_r1_a5_k5_s1_e4_c256",
    "uir_r2_a3_k5_s1_e4_c256",
    "uir_r1_a0_k0_s1_e4_c256",
    "uir_r1_a3_k0_s1_e4_c256",
    "uir_r1_a3_k5_s1_e2_c256",
    "uir_r1_a5_k5_s1_e4_c256",
    "uir_r2_a0_k0_s1_e4_c256",
    "uir_r1_a5_k0_s1_e2_c256",
    "head_c960_h1280_cls1000",
)

_CONV_LARGE = _join(
    384,
    "cn_r1_k3_s2_c24",
    "er_r1_k3_s2_e4_c48",
    "uir_r1_a3_k5_s2_e4_c96",
    "uir_r1_a3_k3_s1_e4_c96",
    "uir_r1_a3_k5_s2_e4_c192",
    "uir_r3_a3_k3_s1_e4_c192",
    "uir_r1_a3_k5_s1_e4_c192",
    "uir_r5_a5_k3_s1_e4_c192",
    "uir_r1_a3_k0_s1_e4_c192",
    "uir_r4_a5_k5_s2_e4_c512",
    "uir_r1_a5_k0_s1_e4_c512",
    "uir_r1_a5_k3_s1_e4_c512",
    "uir_r2_a5_k0_s1_e4_c512",
    "uir_r1_a5_k3_s1_e4_c512",
    "uir_r1_a5_k5_s1_e4_c512",
    "uir_r3_a5_k0_s1_e4_c512",
    "head_c960_h1280_cls1000",
)

_MQA_M1 = "mqa_r1_k3_h4_s1_v2_d64_c160_ls"
_MQA_M2 = "mqa_r1_k3_h4_s1_d64_c256_ls"

_HYBRID_MEDIUM = _join(
    256,
    "cn_r1_k3_s2_c32",
    "er_r1_k3_s2_e4_c48",
    "uir_r1_a3_k5_s2_e4_c80_ls",
    "uir_r1_a3_k3_s1_e2_c80_ls",
    "uir_r1_a3_k5_s2_e6_c160_ls",
    "uir_r1_a0_k0_s1_e2_c160_ls",
    "uir_r1_a3_k3_s1_e4_c160_ls",
    "uir_r1_a3_k5_s1_e4_c160_ls",
    _MQA_M1,
    "uir_r1_a3_k3_s1_e4_c160_ls",
    _MQA_M1,
    "uir_r1_a3_k0_s1_e4_c160_ls",
    _MQA_M1,
    "uir_r1_a3_k3_s1_e4_c160_ls",
    _MQA_M1,
    "uir_r1_a3_k0_s1_e4_c160_ls",
    "uir_r1_a5_k5_s2_e6_c256_ls",
    "uir_r1_a5_k5_s1_e4_c256_ls",
    "uir_r2_a3_k5_s1_e4_c256_ls",
    "uir_r1_a0_k0_s1_e2_c256_ls",
    "uir_r1_a3_k5_s1_e2_c256_ls",
    "uir_r1_a0_k0_s1_e2_c256_ls",
    "uir_r1_a0_k0_s1_e4_c256_ls",
    _MQA_M2,
    "uir_r1_a3_k0_s1_e4_c256_ls",
    _MQA_M2,
    "uir_r1_a5_k5_s1_e4_c256_ls",
    _MQA_M2,
    "uir_r1_a5_k0_s1_e4_c256_ls",
    _MQA_M2,
    "uir_r1_a5_k0_s1_e4_c256_ls",
    "head_c960_h1280_cls1000",
)

_HYBRID_MEDIUM_PAPER = _join(
    256,
    "cn_r1_k3_s2_c32",
    "er_r1_k3_s2_e4_c48",
    "uir_r1_a3_k5_s2_e4_c80_ls",
    "uir_r1_a3_k3_s1_e2_c80_ls",
    "uir_r1_a3_k5_s2_e6_c160_ls",
    "uir_r2_a3_k3_s1_e4_c160_ls",
    "uir_r1_a3_k5_s1_e4_c160_ls",
    _MQA_M1,
    "uir_r1_a3_k3_s1_e4_c160_ls",
    _MQA_M1,
    "uir_r1_a3_k0_s1_e4_c160_ls",
    _MQA_M1,
    "uir_r1_a0_k0_s1_e4_c160_ls",
    _MQA_M1,
    "uir_r1_a3_k0_s1_e4_c160_ls",
    "uir_r1_a5_k5_s2_e6_c256_ls",
    "uir_r1_a5_k5_s1_e4_c256_ls",
    "uir_r2_a3_k5_s1_e4_c256_ls",
    "uir_r1_a0_k0_s1_e4_c256_ls",
    "uir_r1_a3_k0_s1_e4_c256_ls",
    "uir_r1_a3_k5_s1_e2_c256_ls",
    _MQA_M2,
    "uir_r1_a5_k5_s1_e4_c256_ls",
    _MQA_M2,
    "uir_r1_a0_k0_s1_e4_c256_ls",
    _MQA_M2,
    "uir_r1_a0_k0_s1_e4_c256_ls",
    _MQA_M2,
    "uir_r1_a5_k0_s1_e4_c256_ls",
    "head_c960_h1280_cls1000",
)

_MQA_L1 = "mqa_r1_k3_h8_s1_v2_d48_c192_ls"
_MQA_L2 = "mqa_r1_k3_h8_s1_d64_c512_ls"
_G = "_nge"  # GELU token

_HYBRID_LARGE = _join(
    384,
    "cn_r1_k3_s2_c24" + _G,
    "er_r1_k3_s2_e4_c48" + _G,
    "uir_r1_a3_k5_s2_e4_c96_ls" + _G,
    "uir_r1_a3_k3_s1_e4_c96_ls" + _G,
    "uir_r1_a3_k5_s2_e4_c192_ls" + _G,
    "uir_r3_a3_k3_s1_e4_c192_ls" + _G,
    "uir_r1_a3_k5_s1_e4_c192_ls" + _G,
    "uir_r2_a5_k3_s1_e4_c192_ls" + _G,
    _MQA_L1,
    "uir_r1_a5_k3_s1_e4_c192_ls" + _G,
    _MQA_L1,
    "uir_r1_a5_k3_s1_e4_c192_ls" + _G,
    _MQA_L1,
    "uir_r1_a5_k3_s1_e4_c192_ls" + _G,
    _MQA_L1,
    "uir_r1_a3_k0_s1_e4_c192_ls" + _G,
    "uir_r4_a5_k5_s2_e4_c512_ls" + _G,
    "uir_r1_a5_k0_s1_e4_c512_ls" + _G,
    "uir_r1_a5_k3_s1_e4_c512_ls" + _G,
    "uir_r2_a5_k0_s1_e4_c512_ls" + _G,
    "uir_r1_a5_k3_s1_e4_c512_ls" + _G,
    "uir_r1_a5_k5_s1_e4_c512_ls" + _G,
    _MQA_L2,
    "uir_r1_a5_k0_s1_e4_c512_ls" + _G,
    _MQA_L2,
    "uir_r1_a5_k0_s1_e4_c512_ls" + _G,
    _MQA_L2,
    "uir_r1_a5_k0_s1_e4_c512_ls" + _G,
    _MQA_L2,
    "uir_r1_a5_k0_s1_e4_c512_ls" + _G,
    "head_c960_h1280_cls1000" + _G,
)


def _mobilenet_v1() -> str:
    blocks = ["dsa_r1_k3_s1_c64", "dsa_r2_k3_s2_c128", "dsa_r2_k3_s2_c256", "dsa_r6_k3_s2_c512", "dsa_r2_k3_s2_c1024"]
    return _join(224, "cn_r1_k3_s2_c32_nr6", *(b + "_nr6" for b in blocks), "head_cls1000_nr6")


def _mobilenet_v2(multiplier: float) -> str:
    """MobileNetV2 with timm's width-multiplier rules (stem, blocks and head scaled; head ≥ 1280)."""

    def ch(c: int) -> int:
        return make_divisible(c * multiplier)

    stages = [(2, 2, 24), (3, 2, 32), (4, 2, 64), (3, 1, 96), (3, 2, 160), (1, 1, 320)]
    parts = [f"cn_r1_k3_s2_c{ch(32)}_nr6", f"ds_r1_k3_s1_c{ch(16)}_nr6"]
    parts += [f"uir_r{n}_a0_k3_s{s}_e6_c{ch(c)}_nr6" for n, s, c in stages]
    parts.append(f"head_c{max(1280, ch(1280))}_cls1000_nr6")
    return _join(224, *parts)


ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in (
        ZooEntry("mnv4-conv-small", "MNv4 Conv-S (paper Tab. 11)", _CONV_SMALL),
        ZooEntry("mnv4-conv-medium", "MNv4 Conv-M (paper Tab. 12)", _CONV_MEDIUM),
        ZooEntry("mnv4-conv-large", "MNv4 Conv-L (paper Tab. 14)", _CONV_LARGE),
        ZooEntry("mnv4-hybrid-medium", "MNv4 Hybrid-M (TF/timm block list)", _HYBRID_MEDIUM),
        ZooEntry("mnv4-hybrid-medium-paper", "MNv4 Hybrid-M (paper Tab. 13 list)", _HYBRID_MEDIUM_PAPER),
        ZooEntry("mnv4-hybrid-large", "MNv4 Hybrid-L (paper Tab. 15, GELU)", _HYBRID_LARGE),
        ZooEntry("mobilenet-v1", "MobileNetV1 1.0x (ReLU6)", _mobilenet_v1()),
        ZooEntry("mobilenet-v2-050", "MobileNetV2 0.5x (ReLU6)", _mobilenet_v2(0.5)),
        ZooEntry("mobilenet-v2-100", "MobileNetV2 1.0x (ReLU6)", _mobilenet_v2(1.0)),
        ZooEntry("mobilenet-v2-150", "MobileNetV2 1.5x (ReLU6)", _mobilenet_v2(1.5)),
        ZooEntry("mobilenet-v2-200", "MobileNetV2 2.0x (ReLU6)", _mobilenet_v2(2.0)),
    )
}

#: Names of the published-latency CSV rows each zoo model corresponds to (for calibration).
PUBLISHED_NAMES: dict[str, str] = {
    "mnv4-conv-small": "MNv4-Conv-S",
    "mnv4-conv-large": "MNv4-Conv-L",
    "mnv4-hybrid-large": "MNv4-Hybrid-L",
    "mobilenet-v1": "MobileNet-V1",
    "mobilenet-v2-050": "MobileNet-V2-0.5x",
    "mobilenet-v2-100": "MobileNet-V2",
    "mobilenet-v2-200": "MobileNet-V2-2.0x",
}


def zoo_names() -> list[str]:
    """Names of all reference models."""
    return list(ZOO)


def get_spec(name: str, num_classes: int | None = None, resolution: int | None = None) -> ArchSpec:
    """Spec of a reference model, optionally with another class count or input resolution."""
    try:
        spec = ZOO[name].spec()
    except KeyError:
        raise SpecError(f"unknown model {name!r} (known: {', '.join(ZOO)})") from None
    if num_classes is not None or resolution is not None:
        spec = ArchSpec(
            resolution or spec.resolution, spec.stem, spec.blocks, spec.head, num_classes or spec.num_classes
        )
    return spec


def resolve(text: str) -> tuple[ArchSpec, str]:
    """A zoo name, an arch string or a spec file (``.json``/``.toml``/text) → (spec, display name).

    An arch string (``res…|…``) is parsed as one, whatever its length, and never looked up as a path.
    """
    if text in ZOO:
        return get_spec(text), text
    if "|" in text and text.lstrip().startswith("res"):
        return parse_arch(text), "arch"
    if path_exists(text):
        p = Path(text)
        return load_spec_file(p), p.stem
    if Path(text).suffix.lower() in (".json", ".toml", ".txt"):
        raise SpecError(f"{text}: no such file")
    shown = text if len(text) <= 80 else f"{text[:60]}… ({len(text)} characters)"
    raise SpecError(f"{shown!r} is neither a zoo model (known: {', '.join(ZOO)}) nor a spec file nor an arch string")


__all__ = ["PUBLISHED_NAMES", "ZOO", "ZooEntry", "get_spec", "resolve", "zoo_names"]
