"""Build PyTorch models from specs: ``build_model(spec) -> nn.Module`` through a registry keyed by block type."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from nas.errors import SpecError
from nas.model.blocks import (
    AttentionBlock,
    ConvLayer,
    DepthwiseSeparable,
    FusedIB,
    Head,
    LayerScale2d,
    UniversalInvertedBottleneck,
)
from nas.spec import ArchSpec, BlockSpec, ConvSpec, DSConvSpec, FusedIBSpec, HeadSpec, MHSASpec, MQASpec, Shape, UIBSpec

#: a module constructor for one spec type (its first argument is a spec of the type it is registered for)
BlockBuilder = Callable[[Any, Shape], nn.Module]
#: a head constructor: ``(head spec, input channels, classes, dropout) -> nn.Module``
HeadBuilder = Callable[[HeadSpec, int, int, float], nn.Module]
_BUILDERS: dict[type, BlockBuilder] = {}


def register_block(spec_type: type) -> Callable[[BlockBuilder], BlockBuilder]:
    """Register the module constructor for a block spec type (``fn(spec, input_shape) -> nn.Module``)."""

    def deco(fn: BlockBuilder) -> BlockBuilder:
        _BUILDERS[spec_type] = fn
        return fn

    return deco


for _t, _m in (
    (ConvSpec, ConvLayer),
    (FusedIBSpec, FusedIB),
    (UIBSpec, UniversalInvertedBottleneck),
    (DSConvSpec, DepthwiseSeparable),
    (MQASpec, AttentionBlock),
    (MHSASpec, AttentionBlock),
):
    register_block(_t)(_m)


def build_block(spec: BlockSpec, inp: Shape) -> nn.Module:
    """Module for one block at input shape ``inp``."""
    try:
        builder = _BUILDERS[type(spec)]
    except KeyError:
        raise SpecError(f"no builder registered for block type {type(spec).__name__}") from None
    return builder(spec, inp)


class Net(nn.Module):
    """A network built from an :class:`ArchSpec`: ``stem → blocks → head``.

    ``block_builder`` makes the stem's and blocks' modules (default :func:`build_block`) and
    ``head_builder`` the head (default :class:`~nas.model.blocks.Head`); a caller that builds many
    networks can hand out modules it built before (the Zen-score proxy does)."""

    def __init__(
        self,
        arch: ArchSpec,
        dropout: float = 0.0,
        *,
        block_builder: BlockBuilder | None = None,
        head_builder: HeadBuilder | None = None,
    ):
        super().__init__()
        self.arch = arch
        build = block_builder or build_block
        layers = arch.layers
        self.stem = build(arch.stem, layers[0].in_shape)
        self.blocks = nn.Sequential(*(build(layer.spec, layer.in_shape) for layer in layers[1:]))
        self.head = (head_builder or Head)(arch.head, arch.body_out_shape.c, arch.num_classes, dropout)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map before the head."""
        return self.blocks(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


def init_weights(model: nn.Module, seed: int = 0) -> nn.Module:
    """Initialise weights reproducibly from ``seed`` (timm/TF MobileNet scheme).

    Convs: normal(0, sqrt(2 / fan_out)); attention projections: Xavier-uniform (timm found it
    stabilises MNv4 hybrids); BN: 1/0; linear: uniform(±1/sqrt(out)); layer scale: 1e-5.
    """
    g = torch.Generator().manual_seed(seed)
    attn_convs = {
        id(m)
        for block in model.modules()
        if isinstance(block, AttentionBlock)
        for m in block.attn.modules()
        if isinstance(m, nn.Conv2d)
    }
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                if id(m) in attn_convs:
                    nn.init.xavier_uniform_(m.weight, generator=g)
                else:
                    fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                    nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5, generator=g)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / m.weight.shape[0] ** 0.5
                nn.init.uniform_(m.weight, -bound, bound, generator=g)
                nn.init.zeros_(m.bias)
            elif isinstance(m, LayerScale2d):
                m.gamma.fill_(1e-5)
    return model


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor]) -> nn.Module:
    """Reset every BatchNorm's running statistics and re-estimate them (cumulative average) from
    ``batches``; returns the model in eval mode. Used after weight sharing and before exporting an
    untrained model, whose identity statistics would make activations explode or vanish."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    try:
        for x in batches:
            model(x)
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom
    return model.eval()


def random_batches(shape: tuple[int, ...], n: int, seed: int = 0) -> list[torch.Tensor]:
    """``n`` standard-normal tensors of ``shape`` from a seeded generator."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g) for _ in range(n)]


def build_model(arch: ArchSpec, *, seed: int = 0, dropout: float = 0.0) -> Net:
    """Build the network of ``arch`` with weights initialised from ``seed``."""
    return init_weights(Net(arch, dropout), seed)  # type: ignore[return-value]


__all__ = [
    "BlockBuilder",
    "Net",
    "build_block",
    "build_model",
    "init_weights",
    "random_batches",
    "recalibrate_bn",
    "register_block",
]
