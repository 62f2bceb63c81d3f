"""Frozen, hashable specs of every block kind and of a whole architecture.

A spec says *what* a layer is, never how it is computed: input channels are not stored but derived
by shape propagation (:meth:`ArchSpec.layers`), as in timm's arch-def strings. Constructors validate
every field and raise :class:`~nas.errors.SpecError` (a ``ValueError``) naming the field and the
allowed values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import ClassVar, NamedTuple, Union

from nas.errors import SpecError
from nas.spec._format import format_arch

ACTIVATIONS: tuple[str, ...] = ("relu", "relu6", "gelu")
STRIDES: tuple[int, ...] = (1, 2)
CONV_KERNELS: tuple[int, ...] = (1, 3, 5, 7)
DW_KERNELS: tuple[int, ...] = (3, 5, 7, 9)
STRIDE_PLACEMENTS: tuple[str, ...] = ("start", "mid")
MAX_CHANNELS = 16384
MAX_RESOLUTION = 4096
#: Most body blocks an architecture may have (MobileNetV4 models have 20 to 40; this bounds the time and
#: memory a pasted or generated spec can cost).
MAX_BLOCKS = 2048


class Shape(NamedTuple):
    """Feature-map shape of one image: height, width, channels."""

    h: int
    w: int
    c: int

    def __str__(self) -> str:
        return f"{self.h}x{self.w}x{self.c}"

    @property
    def numel(self) -> int:
        """Number of elements."""
        return self.h * self.w * self.c


def make_divisible(v: float, divisor: int = 8, round_limit: float = 0.9) -> int:
    """Round ``v`` to a multiple of ``divisor`` the way TF/timm MobileNets do (never below 90%)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


def conv_out(size: int, stride: int) -> int:
    """Spatial size after an odd-kernel conv with symmetric padding (k-1)//2 and this stride."""
    return -(-size // stride)


def _fail(kind: str, name: str, value: object, allowed: str) -> SpecError:
    return SpecError(f"{kind}: {name} must be {allowed} (got {value!r})")


def _check_choice(kind: str, name: str, value: object, allowed: tuple[object, ...]) -> None:
    # bool is an int subclass: True must not pass as stride 1.
    if isinstance(value, bool) or value not in allowed:
        raise _fail(kind, name, value, "one of " + ", ".join(map(str, allowed)))


def _check_int(kind: str, name: str, value: object, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _fail(kind, name, value, f"an integer in [{lo}, {hi}]")


def _check_optional_kernel(kind: str, name: str, value: object) -> None:
    if value is not None:
        _check_choice(kind, name, value, DW_KERNELS)


def _check_expansion(kind: str, value: object) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(float(value)) or not 0 < float(value) <= 16:  # type: ignore[arg-type]
        raise _fail(kind, "expansion", value, "a number in (0, 16]")


def _check_bool(kind: str, name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise _fail(kind, name, value, "true or false")


def _check_channels(kind: str, value: object, name: str = "out_channels") -> None:
    _check_int(kind, name, value, 1, MAX_CHANNELS)


@dataclass(frozen=True)
class ConvSpec:
    """k×k convolution → BatchNorm → activation (timm ``cn``; the stem and Conv-S's early layers)."""

    kind: ClassVar[str] = "cn"
    out_channels: int
    kernel: int = 3
    stride: int = 1
    activation: str = "relu"

    def __post_init__(self) -> None:
        _check_channels(self.kind, self.out_channels)
        _check_choice(self.kind, "kernel", self.kernel, CONV_KERNELS)
        _check_choice(self.kind, "stride", self.stride, STRIDES)
        _check_choice(self.kind, "activation", self.activation, ACTIVATIONS)

    def out_shape(self, inp: Shape) -> Shape:
        """Output shape for input ``inp``."""
        return Shape(conv_out(inp.h, self.stride), conv_out(inp.w, self.stride), self.out_channels)


@dataclass(frozen=True)
class FusedIBSpec:
    """FusedIB: k×k conv to ``in·expansion`` → BN → act → 1×1 conv → BN (timm ``er``)."""

    kind: ClassVar[str] = "er"
    out_channels: int
    kernel: int = 3
    stride: int = 1
    expansion: float = 4.0
    activation: str = "relu"
    skip: bool = True

    def __post_init__(self) -> None:
        _check_channels(self.kind, self.out_channels)
        _check_choice(self.kind, "kernel", self.kernel, CONV_KERNELS)
        _check_choice(self.kind, "stride", self.stride, STRIDES)
        _check_expansion(self.kind, self.expansion)
        object.__setattr__(self, "expansion", float(self.expansion))
        _check_choice(self.kind, "activation", self.activation, ACTIVATIONS)
        _check_bool(self.kind, "skip", self.skip)

    def mid_channels(self, in_channels: int) -> int:
        """Expanded width for a given input width."""
        return make_divisible(in_channels * self.expansion)

    def out_shape(self, inp: Shape) -> Shape:
        """Output shape for input ``inp``."""
        return Shape(conv_out(inp.h, self.stride), conv_out(inp.w, self.stride), self.out_channels)

    def has_residual(self, inp: Shape) -> bool:
        """Whether the block adds its input to its output."""
        return self.skip and self.stride == 1 and inp.c == self.out_channels


@dataclass(frozen=True)
class UIBSpec:
    """Universal Inverted Bottleneck (timm ``uir``).

    Start DW (BN, no act) → 1×1 expand (BN, act) → middle DW (BN, act) → 1×1 project (BN) →
    optional layer scale → residual. ``None`` kernels mean the DW is absent: IB (start none),
    ConvNext-like (middle none), ExtraDW (both), FFN (neither). ``stride_on`` says which DW carries
    a stride of 2; it defaults to the middle DW when present, as in every MobileNetV4 model.
    """

    kind: ClassVar[str] = "uir"
    out_channels: int
    start_dw_kernel: int | None = None
    mid_dw_kernel: int | None = 3
    expansion: float = 4.0
    stride: int = 1
    stride_on: str | None = None
    activation: str = "relu"
    layer_scale: bool = False
    skip: bool = True

    def __post_init__(self) -> None:
        k = self.kind
        _check_channels(k, self.out_channels)
        _check_optional_kernel(k, "start_dw_kernel", self.start_dw_kernel)
        _check_optional_kernel(k, "mid_dw_kernel", self.mid_dw_kernel)
        _check_expansion(k, self.expansion)
        object.__setattr__(self, "expansion", float(self.expansion))
        _check_choice(k, "stride", self.stride, STRIDES)
        _check_choice(k, "activation", self.activation, ACTIVATIONS)
        _check_bool(k, "layer_scale", self.layer_scale)
        _check_bool(k, "skip", self.skip)
        default_on = "mid" if self.mid_dw_kernel is not None else "start"
        if self.stride == 1:
            # Placement is meaningless without a stride; normalise so equal blocks compare equal.
            object.__setattr__(self, "stride_on", default_on)
            return
        if self.start_dw_kernel is None and self.mid_dw_kernel is None:
            raise SpecError(
                "uir: stride 2 needs a depthwise conv to carry it "
                "(start_dw_kernel or mid_dw_kernel must be one of 3, 5, 7, 9; an FFN block cannot downsample)"
            )
        on = default_on if self.stride_on is None else self.stride_on
        _check_choice(k, "stride_on", on, STRIDE_PLACEMENTS)
        if (on == "start" and self.start_dw_kernel is None) or (on == "mid" and self.mid_dw_kernel is None):
            raise SpecError(f"uir: stride_on={on!r} but that depthwise conv is absent (allowed: the present one)")
        object.__setattr__(self, "stride_on", on)

    @property
    def variant(self) -> str:
        """The paper's name of this instantiation: ExtraDW, IB, ConvNext or FFN."""
        start, mid = self.start_dw_kernel is not None, self.mid_dw_kernel is not None
        return {(True, True): "ExtraDW", (False, True): "IB", (True, False): "ConvNext", (False, False): "FFN"}[
            (start, mid)
        ]

    def mid_channels(self, in_channels: int) -> int:
        """Expanded width for a given input width."""
        return make_divisible(in_channels * self.expansion)

    def out_shape(self, inp: Shape) -> Shape:
        """Output shape for input ``inp``."""
        return Shape(conv_out(inp.h, self.stride), conv_out(inp.w, self.stride), self.out_channels)

    def has_residual(self, inp: Shape) -> bool:
        """Whether the block adds its input to its output."""
        return self.skip and self.stride == 1 and inp.c == self.out_channels


@dataclass(frozen=True)
class DSConvSpec:
    """Depthwise-separable conv: DW k×k → BN → act → 1×1 → BN (→ act if ``pw_act``).

    timm ``ds`` (MobileNetV2's first block, linear projection) and ``dsa`` (MobileNetV1, activated
    projection, never a residual).
    """

    kind: ClassVar[str] = "ds"
    out_channels: int
    kernel: int = 3
    stride: int = 1
    pw_act: bool = False
    activation: str = "relu"
    skip: bool = True

    def __post_init__(self) -> None:
        _check_channels(self.kind, self.out_channels)
        _check_choice(self.kind, "kernel", self.kernel, DW_KERNELS)
        _check_choice(self.kind, "stride", self.stride, STRIDES)
        _check_bool(self.kind, "pw_act", self.pw_act)
        _check_choice(self.kind, "activation", self.activation, ACTIVATIONS)
        _check_bool(self.kind, "skip", self.skip)
        if self.pw_act:
            # timm's 'dsa' never has a skip: normalise so that the DSL round trip is exact.
            object.__setattr__(self, "skip", False)

    def out_shape(self, inp: Shape) -> Shape:
        """Output shape for input ``inp``."""
        return Shape(conv_out(inp.h, self.stride), conv_out(inp.w, self.stride), self.out_channels)

    def has_residual(self, inp: Shape) -> bool:
        """Whether the block adds its input to its output."""
        return self.skip and self.stride == 1 and inp.c == self.out_channels


@dataclass(frozen=True)
class _AttentionSpec:
    """Fields shared by Mobile MQA and MHSA blocks (pre-norm BN → attention → layer scale → residual)."""

    kind: ClassVar[str] = ""
    out_channels: int
    heads: int = 4
    key_dim: int = 64
    value_dim: int | None = None
    kv_stride: int = 1
    query_stride: int = 1
    dw_kernel: int = 3
    layer_scale: bool = False
    skip: bool = True
    stride: ClassVar[int] = 1

    def __post_init__(self) -> None:
        k = self.kind
        _check_channels(k, self.out_channels)
        _check_int(k, "heads", self.heads, 1, 64)
        _check_int(k, "key_dim", self.key_dim, 1, 1024)
        if self.value_dim is None:
            object.__setattr__(self, "value_dim", self.key_dim)
        _check_int(k, "value_dim", self.value_dim, 1, 1024)
        _check_choice(k, "kv_stride", self.kv_stride, (1, 2, 4))
        _check_choice(k, "query_stride", self.query_stride, (1, 2, 4))
        _check_choice(k, "dw_kernel", self.dw_kernel, DW_KERNELS)
        _check_bool(k, "layer_scale", self.layer_scale)
        _check_bool(k, "skip", self.skip)

    @property
    def v_dim(self) -> int:
        """Value dimension (``value_dim`` after normalisation, typed as ``int``)."""
        assert self.value_dim is not None
        return self.value_dim

    def out_shape(self, inp: Shape) -> Shape:
        """Output shape for input ``inp`` (attention keeps the spatial size)."""
        if inp.h % self.query_stride or inp.w % self.query_stride:
            raise SpecError(
                f"{self.kind}: query_stride {self.query_stride} needs a feature map divisible by it "
                f"(input is {inp.h}x{inp.w})"
            )
        return Shape(inp.h, inp.w, self.out_channels)

    def has_residual(self, inp: Shape) -> bool:
        """Whether the block adds its input to its output."""
        return self.skip and inp.c == self.out_channels

    def kv_tokens(self, inp: Shape) -> int:
        """Number of key/value tokens after spatial reduction."""
        return conv_out(inp.h, self.kv_stride) * conv_out(inp.w, self.kv_stride)

    def q_tokens(self, inp: Shape) -> int:
        """Number of query tokens after query striding."""
        return (inp.h // self.query_stride) * (inp.w // self.query_stride)


@dataclass(frozen=True)
class MQASpec(_AttentionSpec):
    """Mobile MQA (timm ``mqa``): ``heads`` query heads, one shared K and V head, K/V spatially
    reduced by a stride-``kv_stride`` depthwise conv (+BN) when ``kv_stride > 1``."""

    kind: ClassVar[str] = "mqa"


@dataclass(frozen=True)
class MHSASpec(_AttentionSpec):
    """Multi-head self-attention baseline (timm letters ``mha``): K and V have ``heads`` heads each;
    same optional K/V spatial reduction as Mobile MQA, for ablations."""

    kind: ClassVar[str] = "mha"


BlockSpec = Union[ConvSpec, FusedIBSpec, UIBSpec, DSConvSpec, MQASpec, MHSASpec]
BLOCK_TYPES: tuple[type, ...] = (ConvSpec, FusedIBSpec, UIBSpec, DSConvSpec, MQASpec, MHSASpec)


@dataclass(frozen=True)
class HeadSpec:
    """Classifier head: [1×1 conv → BN → act] → global average pool → [1×1 conv (no bias) → BN → act]
    → linear classifier. ``conv_channels``/``hidden_channels`` of 0 drop that conv (MobileNetV1 has
    neither, MobileNetV2 only the first, MobileNetV4 both: 960 → pool → 1280)."""

    conv_channels: int = 960
    hidden_channels: int = 1280
    activation: str = "relu"

    def __post_init__(self) -> None:
        _check_int("head", "conv_channels", self.conv_channels, 0, MAX_CHANNELS)
        _check_int("head", "hidden_channels", self.hidden_channels, 0, MAX_CHANNELS)
        _check_choice("head", "activation", self.activation, ACTIVATIONS)

    def features(self, in_channels: int) -> int:
        """Width of the vector that reaches the classifier."""
        return self.hidden_channels or self.conv_channels or in_channels


class Layer(NamedTuple):
    """One positioned layer of an architecture: its index, spec and input/output shapes."""

    index: int  # type: ignore[assignment]  # the field shadows tuple.index on purpose (public name)
    spec: BlockSpec
    in_shape: Shape
    out_shape: Shape


@dataclass(frozen=True)
class ArchSpec:
    """A whole network: input resolution, stem conv, body blocks, head and class count.

    The canonical DSL string (:attr:`arch`) is the architecture's identity: equal specs have equal
    strings and the string parses back to an equal spec.
    """

    resolution: int
    stem: ConvSpec
    blocks: tuple[BlockSpec, ...]
    head: HeadSpec = field(default_factory=HeadSpec)
    num_classes: int = 1000

    def __post_init__(self) -> None:
        _check_int("arch", "resolution", self.resolution, 1, MAX_RESOLUTION)
        if not isinstance(self.stem, ConvSpec):
            raise SpecError(f"arch: stem must be a cn (ConvSpec) block (got {type(self.stem).__name__})")
        if not isinstance(self.blocks, tuple):
            object.__setattr__(self, "blocks", tuple(self.blocks))
        if len(self.blocks) > MAX_BLOCKS:
            raise SpecError(f"arch: {len(self.blocks)} body blocks; at most {MAX_BLOCKS} are allowed")
        for i, b in enumerate(self.blocks):
            if not isinstance(b, BLOCK_TYPES):
                allowed = ", ".join(t.__name__ for t in BLOCK_TYPES)
                raise SpecError(f"arch: blocks[{i}] must be one of {allowed} (got {type(b).__name__})")
        if not isinstance(self.head, HeadSpec):
            raise SpecError(f"arch: head must be a HeadSpec (got {type(self.head).__name__})")
        _check_int("arch", "num_classes", self.num_classes, 1, 1_000_000)
        # Validate shapes eagerly: a spec that cannot run should not exist.
        _ = self.layers

    @property
    def input_shape(self) -> Shape:
        """Shape of one input image."""
        return Shape(self.resolution, self.resolution, 3)

    @cached_property
    def layers(self) -> tuple[Layer, ...]:
        """Stem and body blocks with their input and output shapes (shape propagation)."""
        out: list[Layer] = []
        shape = self.input_shape
        for i, spec in enumerate((self.stem, *self.blocks)):
            if spec.stride > 1 and min(shape.h, shape.w) < spec.stride:
                raise SpecError(
                    f"arch: layer {i} ({spec.kind}) downsamples a {shape.h}x{shape.w} feature map; "
                    f"resolution {self.resolution} is too small for this stride pattern"
                )
            nxt = spec.out_shape(shape)
            out.append(Layer(i, spec, shape, nxt))
            shape = nxt
        return tuple(out)

    @property
    def body_out_shape(self) -> Shape:
        """Shape entering the head."""
        return self.layers[-1].out_shape

    @cached_property
    def arch(self) -> str:
        """Canonical DSL string (see :mod:`nas.spec.dsl`)."""
        return format_arch(self)

    def __str__(self) -> str:
        return self.arch
