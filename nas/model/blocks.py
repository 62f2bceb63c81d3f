"""PyTorch modules for every block kind. Parameter layout follows timm's MobileNetV4 modules.

Forward passes have no data- or config-dependent branches: absent convs are ``nn.Identity`` and the
residual is an :class:`AddResidual` or :class:`NoResidual` module, so tracing and ONNX export see one
straight graph.
"""

from __future__ import annotations

import torch
from torch import nn

from nas.spec import ConvSpec, DSConvSpec, FusedIBSpec, HeadSpec, MHSASpec, MQASpec, Shape, UIBSpec

LAYER_SCALE_INIT = 1e-5


def make_act(name: str | None) -> nn.Module:
    """Activation module by spec name (``None`` → identity)."""
    if name is None:
        return nn.Identity()
    return {"relu": nn.ReLU, "relu6": nn.ReLU6, "gelu": nn.GELU}[name]()


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias, symmetric padding) → BatchNorm2d → activation."""

    def __init__(self, in_c: int, out_c: int, k: int, stride: int = 1, groups: int = 1, act: str | None = "relu"):
        super().__init__()
        self.conv = nn.Conv2d(in_c, out_c, k, stride, (k - 1) // 2, groups=groups, bias=False)
        self.bn: nn.BatchNorm2d | nn.Identity = nn.BatchNorm2d(out_c)  # Identity once folded into the conv
        self.act = make_act(act)


class LayerScale2d(nn.Module):
    """Per-channel learnable scale (MobileNetV4 hybrid models, init 1e-5)."""

    def __init__(self, channels: int, init: float = LAYER_SCALE_INIT):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((channels,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma.view(1, -1, 1, 1)


class AddResidual(nn.Module):
    """``x + y``."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + y


class NoResidual(nn.Module):
    """``y`` (the block has no skip connection)."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return y


def _residual(enabled: bool) -> nn.Module:
    return AddResidual() if enabled else NoResidual()


class ConvLayer(ConvBNAct):
    """``cn`` block."""

    def __init__(self, spec: ConvSpec, inp: Shape):
        super().__init__(inp.c, spec.out_channels, spec.kernel, spec.stride, act=spec.activation)


class FusedIB(nn.Module):
    """``er`` block: k×k expand conv (BN, act) → 1×1 linear projection (BN) → residual."""

    def __init__(self, spec: FusedIBSpec, inp: Shape):
        super().__init__()
        mid = spec.mid_channels(inp.c)
        self.conv_exp = ConvBNAct(inp.c, mid, spec.kernel, spec.stride, act=spec.activation)
        self.conv_pwl = ConvBNAct(mid, spec.out_channels, 1, act=None)
        self.residual = _residual(spec.has_residual(inp))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x, self.conv_pwl(self.conv_exp(x)))


class UniversalInvertedBottleneck(nn.Module):
    """``uir`` block; absent depthwise convs are ``nn.Identity``."""

    def __init__(self, spec: UIBSpec, inp: Shape):
        super().__init__()
        mid = spec.mid_channels(inp.c)
        k1, k2 = spec.start_dw_kernel, spec.mid_dw_kernel
        s1 = spec.stride if spec.stride_on == "start" else 1
        s2 = spec.stride if spec.stride_on == "mid" else 1
        self.dw_start = ConvBNAct(inp.c, inp.c, k1, s1, groups=inp.c, act=None) if k1 else nn.Identity()
        self.pw_exp = ConvBNAct(inp.c, mid, 1, act=spec.activation)
        self.dw_mid = ConvBNAct(mid, mid, k2, s2, groups=mid, act=spec.activation) if k2 else nn.Identity()
        self.pw_proj = ConvBNAct(mid, spec.out_channels, 1, act=None)
        self.layer_scale = LayerScale2d(spec.out_channels) if spec.layer_scale else nn.Identity()
        self.residual = _residual(spec.has_residual(inp))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layer_scale(self.pw_proj(self.dw_mid(self.pw_exp(self.dw_start(x)))))
        return self.residual(x, y)


class DepthwiseSeparable(nn.Module):
    """``ds``/``dsa`` block: DW k×k (BN, act) → 1×1 (BN, act if ``pw_act``) → residual."""

    def __init__(self, spec: DSConvSpec, inp: Shape):
        super().__init__()
        self.conv_dw = ConvBNAct(inp.c, inp.c, spec.kernel, spec.stride, groups=inp.c, act=spec.activation)
        self.conv_pw = ConvBNAct(inp.c, spec.out_channels, 1, act=spec.activation if spec.pw_act else None)
        self.residual = _residual(spec.has_residual(inp))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x, self.conv_pw(self.conv_dw(x)))


def _kv_branch(inp: Shape, out_c: int, stride: int, k: int) -> nn.Sequential:
    seq = nn.Sequential()
    if stride > 1:
        # Spatial reduction (SR) of the paper: a stride-2 depthwise conv + BN instead of SRA's AvgPool.
        seq.add_module("down_conv", nn.Conv2d(inp.c, inp.c, k, stride, (k - 1) // 2, groups=inp.c, bias=False))
        seq.add_module("norm", nn.BatchNorm2d(inp.c))
    seq.add_module("proj", nn.Conv2d(inp.c, out_c, 1, bias=False))
    return seq


class Attention2d(nn.Module):
    """Multi-query (``kv_heads=1``, Mobile MQA) or multi-head attention on NCHW feature maps.

    Layouts are chosen so that every matmul contracts adjacent dimensions: Q is ``[B, h, dk, N]``
    and K ``[B, 1|h, dk, M]``, so ``Qᵀ·K`` and ``V·Aᵀ`` are single batched matmuls whose transposes
    onnxruntime folds into ``FusedMatMul``, and the output ``[B, h, dv, N]`` reshapes to NCHW with
    no transpose (the paper's einsum reordering, App. G).
    """

    def __init__(self, spec: MQASpec | MHSASpec, inp: Shape, kv_heads: int):
        super().__init__()
        self.heads, self.kv_heads = spec.heads, kv_heads
        self.key_dim, self.value_dim = spec.key_dim, spec.v_dim
        self.scale = spec.key_dim**-0.5
        self.query = nn.Sequential()
        if spec.query_stride > 1:
            self.query.add_module("down_pool", nn.AvgPool2d(spec.query_stride))
            self.query.add_module("norm", nn.BatchNorm2d(inp.c))
        self.query.add_module("proj", nn.Conv2d(inp.c, spec.heads * spec.key_dim, 1, bias=False))
        self.key = _kv_branch(inp, kv_heads * spec.key_dim, spec.kv_stride, spec.dw_kernel)
        self.value = _kv_branch(inp, kv_heads * spec.v_dim, spec.kv_stride, spec.dw_kernel)
        self.output = nn.Sequential()
        if spec.query_stride > 1:
            self.output.add_module(
                "upsample", nn.Upsample(scale_factor=spec.query_stride, mode="bilinear", align_corners=False)
            )
        self.output.add_module("proj", nn.Conv2d(spec.heads * spec.v_dim, spec.out_channels, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.query(x)
        b, _, hq, wq = q.shape
        q = q.reshape(b, self.heads, self.key_dim, hq * wq) * self.scale
        k = self.key(x).flatten(2).reshape(b, self.kv_heads, self.key_dim, -1)
        v = self.value(x).flatten(2).reshape(b, self.kv_heads, self.value_dim, -1)
        attn = torch.matmul(q.transpose(-1, -2), k).softmax(dim=-1)  # [B, h, N, M]
        o = torch.matmul(v, attn.transpose(-1, -2))  # [B, h, dv, N]
        return self.output(o.reshape(b, self.heads * self.value_dim, hq, wq))


class AttentionBlock(nn.Module):
    """``mqa``/``mha`` block: BN (no act) → attention → layer scale → residual (no CPE, no FFN)."""

    def __init__(self, spec: MQASpec | MHSASpec, inp: Shape):
        super().__init__()
        self.norm = nn.BatchNorm2d(inp.c)
        self.attn = Attention2d(spec, inp, kv_heads=1 if isinstance(spec, MQASpec) else spec.heads)
        self.layer_scale = LayerScale2d(spec.out_channels) if spec.layer_scale else nn.Identity()
        self.residual = _residual(spec.has_residual(inp))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x, self.layer_scale(self.attn(self.norm(x))))


class Head(nn.Module):
    """[1×1 conv-BN-act] → global average pool → [1×1 conv-BN-act] → dropout → linear."""

    def __init__(self, spec: HeadSpec, in_channels: int, num_classes: int, dropout: float = 0.0):
        super().__init__()
        c = in_channels
        self.conv = ConvBNAct(c, spec.conv_channels, 1, act=spec.activation) if spec.conv_channels else nn.Identity()
        c = spec.conv_channels or c
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.hidden = (
            ConvBNAct(c, spec.hidden_channels, 1, act=spec.activation) if spec.hidden_channels else nn.Identity()
        )
        self.flatten = nn.Flatten(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(spec.features(in_channels), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.hidden(self.pool(self.conv(x)))
        return self.classifier(self.dropout(self.flatten(x)))
