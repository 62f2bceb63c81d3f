"""Pure cost functions of a spec: parameters, MACs, weight and activation bytes per layer.

Every block kind decomposes (through one ``functools.singledispatch`` registry, :func:`block_ops`)
into primitive :class:`Op` s — the layers a mobile runtime executes after folding BatchNorm into the
preceding conv. Parameter counts follow PyTorch's (BN affine and layer-scale included, BN running
statistics excluded); MACs count convolutions, attention matmuls and the classifier, as
``torch.utils.flop_counter`` does (flops / 2). The latency model consumes the same ops.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import singledispatch
from typing import TYPE_CHECKING

from nas.errors import SpecError
from nas.spec import (
    ArchSpec,
    BlockSpec,
    ConvSpec,
    DSConvSpec,
    FusedIBSpec,
    HeadSpec,
    MHSASpec,
    MQASpec,
    Shape,
    UIBSpec,
)
from nas.spec.blocks import conv_out

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pandas as pd

#: Op classes, each with its own efficiency in the roofline device model.
OP_CLASSES: tuple[str, ...] = ("conv", "dwconv", "pwconv", "matmul", "elementwise", "pool", "linear")
#: Bytes per element for each supported dtype.
DTYPE_BYTES: dict[str, int] = {"int8": 1, "fp16": 2, "fp32": 4}
#: Activations a runtime fuses into the preceding conv (no extra memory pass).
FUSED_ACTIVATIONS = frozenset({"relu", "relu6"})


@dataclass(frozen=True)
class Op:
    """One primitive layer as executed at inference time.

    ``params`` counts trainable parameters (incl. BN affine); ``weight_elems`` counts the weights the
    runtime reads (BN folded into a per-channel bias); ``in_elems``/``out_elems`` count activation
    elements read and written.
    """

    name: str
    op_class: str
    macs: int
    params: int
    weight_elems: int
    in_elems: int
    out_elems: int

    def weight_bytes(self, dtype: str = "fp32") -> int:
        """Bytes of weights read, for this dtype."""
        return self.weight_elems * _dtype_bytes(dtype)

    def act_bytes(self, dtype: str = "fp32") -> int:
        """Bytes of activations read and written, for this dtype."""
        return (self.in_elems + self.out_elems) * _dtype_bytes(dtype)


def _dtype_bytes(dtype: str) -> int:
    try:
        return DTYPE_BYTES[dtype]
    except KeyError:
        raise SpecError(f"dtype must be one of {', '.join(DTYPE_BYTES)} (got {dtype!r})") from None


def _conv(
    name: str, inp: Shape, out_c: int, k: int, stride: int = 1, groups: int = 1, bn: bool = True, bias: bool = False
) -> tuple[Op, Shape]:
    out = Shape(conv_out(inp.h, stride), conv_out(inp.w, stride), out_c)
    w = out_c * (inp.c // groups) * k * k
    op_class = "dwconv" if groups == inp.c and groups > 1 else ("pwconv" if k == 1 else "conv")
    params = w + (2 * out_c if bn else 0) + (out_c if bias else 0)
    weights = w + (out_c if (bn or bias) else 0)
    return Op(name, op_class, out.h * out.w * w, params, weights, inp.numel, out.numel), out


def _eltwise(name: str, n: int, reads: int = 1, params: int = 0) -> Op:
    return Op(name, "elementwise", 0, params, params, reads * n, n)


def _act(name: str, shape: Shape, activation: str) -> list[Op]:
    # ReLU/ReLU6 run fused into the conv; GELU is a separate pass over memory on every runtime we model.
    return [] if activation in FUSED_ACTIVATIONS else [_eltwise(name, shape.numel)]


@singledispatch
def block_ops(spec: BlockSpec, inp: Shape) -> list[Op]:
    """Primitive ops of one block at input shape ``inp`` (registry keyed by spec type)."""
    raise SpecError(f"no cost model for block type {type(spec).__name__}")


@block_ops.register
def _(spec: ConvSpec, inp: Shape) -> list[Op]:
    op, out = _conv("conv", inp, spec.out_channels, spec.kernel, spec.stride)
    return [op, *_act("act", out, spec.activation)]


@block_ops.register
def _(spec: FusedIBSpec, inp: Shape) -> list[Op]:
    mid = spec.mid_channels(inp.c)
    exp, s = _conv("conv_exp", inp, mid, spec.kernel, spec.stride)
    ops = [exp, *_act("act", s, spec.activation)]
    proj, out = _conv("conv_pwl", s, spec.out_channels, 1)
    ops.append(proj)
    if spec.has_residual(inp):
        ops.append(_eltwise("add", out.numel, reads=2))
    return ops


@block_ops.register
def _(spec: UIBSpec, inp: Shape) -> list[Op]:
    ops: list[Op] = []
    s = inp
    if spec.start_dw_kernel is not None:
        stride = spec.stride if spec.stride_on == "start" else 1
        op, s = _conv("dw_start", s, s.c, spec.start_dw_kernel, stride, groups=s.c)
        ops.append(op)
    op, s = _conv("pw_exp", s, spec.mid_channels(inp.c), 1)
    ops += [op, *_act("act_exp", s, spec.activation)]
    if spec.mid_dw_kernel is not None:
        stride = spec.stride if spec.stride_on == "mid" else 1
        op, s = _conv("dw_mid", s, s.c, spec.mid_dw_kernel, stride, groups=s.c)
        ops += [op, *_act("act_mid", s, spec.activation)]
    op, out = _conv("pw_proj", s, spec.out_channels, 1)
    ops.append(op)
    if spec.layer_scale:
        ops.append(_eltwise("layer_scale", out.numel, params=out.c))
    if spec.has_residual(inp):
        ops.append(_eltwise("add", out.numel, reads=2))
    return ops


@block_ops.register
def _(spec: DSConvSpec, inp: Shape) -> list[Op]:
    dw, s = _conv("conv_dw", inp, inp.c, spec.kernel, spec.stride, groups=inp.c)
    ops = [dw, *_act("act_dw", s, spec.activation)]
    pw, out = _conv("conv_pw", s, spec.out_channels, 1)
    ops.append(pw)
    if spec.pw_act:
        ops += _act("act_pw", out, spec.activation)
    if spec.has_residual(inp):
        ops.append(_eltwise("add", out.numel, reads=2))
    return ops


def _attention_ops(spec: MQASpec | MHSASpec, inp: Shape, kv_heads: int) -> list[Op]:
    h, dk, dv = spec.heads, spec.key_dim, spec.v_dim
    n_q, n_kv = spec.q_tokens(inp), spec.kv_tokens(inp)
    ops = [_eltwise("norm", inp.numel, params=2 * inp.c)]
    q_in = inp
    if spec.query_stride > 1:
        q_in = Shape(inp.h // spec.query_stride, inp.w // spec.query_stride, inp.c)
        ops.append(Op("q_pool", "pool", 0, 0, 0, inp.numel, q_in.numel))
        ops.append(_eltwise("q_norm", q_in.numel, params=2 * inp.c))
    op, _ = _conv("q_proj", q_in, h * dk, 1, bn=False)
    ops.append(op)
    for name, dim in (("k", dk), ("v", dv)):
        s = inp
        if spec.kv_stride > 1:
            op, s = _conv(f"{name}_down", s, s.c, spec.dw_kernel, spec.kv_stride, groups=s.c)
            ops.append(op)
        op, _ = _conv(f"{name}_proj", s, kv_heads * dim, 1, bn=False)
        ops.append(op)
    logits = h * n_q * n_kv
    ops.append(Op("qk_matmul", "matmul", logits * dk, 0, 0, h * n_q * dk + kv_heads * n_kv * dk, logits))
    ops.append(_eltwise("softmax", logits))
    ops.append(Op("av_matmul", "matmul", logits * dv, 0, 0, logits + kv_heads * n_kv * dv, h * n_q * dv))
    o_in = Shape(q_in.h, q_in.w, h * dv)
    if spec.query_stride > 1:
        up = Shape(inp.h, inp.w, h * dv)
        ops.append(Op("upsample", "pool", 0, 0, 0, o_in.numel, up.numel))
        o_in = up
    op, out = _conv("o_proj", o_in, spec.out_channels, 1, bn=False)
    ops.append(op)
    if spec.layer_scale:
        ops.append(_eltwise("layer_scale", out.numel, params=out.c))
    if spec.has_residual(inp):
        ops.append(_eltwise("add", out.numel, reads=2))
    return ops


@block_ops.register
def _(spec: MQASpec, inp: Shape) -> list[Op]:
    return _attention_ops(spec, inp, kv_heads=1)


@block_ops.register
def _(spec: MHSASpec, inp: Shape) -> list[Op]:
    return _attention_ops(spec, inp, kv_heads=spec.heads)


def head_ops(head: HeadSpec, inp: Shape, num_classes: int) -> list[Op]:
    """Primitive ops of the classifier head."""
    ops: list[Op] = []
    s = inp
    if head.conv_channels:
        op, s = _conv("head_conv", s, head.conv_channels, 1)
        ops += [op, *_act("head_act", s, head.activation)]
    pooled = Shape(1, 1, s.c)
    ops.append(Op("pool", "pool", 0, 0, 0, s.numel, pooled.numel))
    s = pooled
    if head.hidden_channels:
        op, s = _conv("head_hidden", s, head.hidden_channels, 1)
        ops += [op, *_act("head_hidden_act", s, head.activation)]
    w = s.c * num_classes
    ops.append(Op("classifier", "linear", w, w + num_classes, w + num_classes, s.c, num_classes))
    return ops


@dataclass(frozen=True)
class LayerCost:
    """Totals of one positioned layer (stem, a block, or the head)."""

    index: int
    name: str
    in_shape: Shape
    out_shape: Shape
    ops: tuple[Op, ...]

    @property
    def params(self) -> int:
        """Trainable parameters."""
        return sum(o.params for o in self.ops)

    @property
    def macs(self) -> int:
        """Multiply-accumulates."""
        return sum(o.macs for o in self.ops)

    def weight_bytes(self, dtype: str = "fp32") -> int:
        """Bytes of weights read at inference."""
        return sum(o.weight_bytes(dtype) for o in self.ops)

    def act_bytes(self, dtype: str = "fp32") -> int:
        """Bytes of activations read and written at inference."""
        return sum(o.act_bytes(dtype) for o in self.ops)


def layer_costs(arch: ArchSpec) -> list[LayerCost]:
    """Per-layer costs of an architecture: stem, every block, then the head (index ``len(blocks)+1``)."""
    from nas.spec.dsl import format_block, format_head

    out = [
        LayerCost(
            layer.index,
            format_block(layer.spec),
            layer.in_shape,
            layer.out_shape,
            tuple(block_ops(layer.spec, layer.in_shape)),
        )
        for layer in arch.layers
    ]
    body = arch.body_out_shape
    out.append(
        LayerCost(
            len(out),
            format_head(arch.head, arch.num_classes),
            body,
            Shape(1, 1, arch.num_classes),
            tuple(head_ops(arch.head, body, arch.num_classes)),
        )
    )
    return out


def count_params(arch: ArchSpec) -> int:
    """Trainable parameters of the built model (BN affine and layer scale included)."""
    return sum(c.params for c in layer_costs(arch))


def count_macs(arch: ArchSpec) -> int:
    """MACs of one forward pass at batch 1 (convs, attention matmuls, classifier)."""
    return sum(c.macs for c in layer_costs(arch))


def ops_of(arch: ArchSpec) -> list[Op]:
    """All primitive ops of an architecture, in execution order."""
    return [op for c in layer_costs(arch) for op in c.ops]


def cost_table(arch: ArchSpec, dtype: str = "fp32") -> pd.DataFrame:
    """One row per layer: index, block string, input/output shape, params, MACs, weight and activation bytes."""
    rows = [
        {
            "index": c.index,
            "block": c.name,
            "in_shape": str(c.in_shape),
            "out_shape": str(c.out_shape),
            "params": c.params,
            "macs": c.macs,
            "weight_bytes": c.weight_bytes(dtype),
            "act_bytes": c.act_bytes(dtype),
        }
        for c in layer_costs(arch)
    ]
    import pandas as pd  # imported here: the CLI's start-up needs nas.cost but not pandas

    return pd.DataFrame(rows)


def total_bytes(ops: Iterable[Op], dtype: str) -> int:
    """Weight plus activation bytes of some ops."""
    return sum(o.weight_bytes(dtype) + o.act_bytes(dtype) for o in ops)
