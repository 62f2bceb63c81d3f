from __future__ import annotations

import pytest
import torch
from torch import nn

from nas.model import build_model, random_batches, recalibrate_bn
from nas.model.blocks import AddResidual, NoResidual, UniversalInvertedBottleneck
from nas.spec import ArchSpec, ConvSpec, HeadSpec, Shape, UIBSpec, parse_arch
from nas.zoo import get_spec


@pytest.mark.parametrize("resolution", [32, 48])
def test_forward_shapes_at_two_resolutions(tiny_arch, resolution):
    arch = ArchSpec(resolution, tiny_arch.stem, tiny_arch.blocks, tiny_arch.head, tiny_arch.num_classes)
    model = build_model(arch).eval()
    with torch.no_grad():
        feats = model.forward_features(torch.randn(2, 3, resolution, resolution))
        logits = model(torch.randn(2, 3, resolution, resolution))
    s = arch.body_out_shape
    assert tuple(feats.shape) == (2, s.c, s.h, s.w)
    assert tuple(logits.shape) == (2, 10)


@pytest.mark.parametrize("name", ["mnv4-conv-small", "mnv4-hybrid-medium"])
@pytest.mark.parametrize("resolution", [64, 96])
def test_zoo_models_run_at_two_resolutions(name, resolution):
    model = build_model(get_spec(name, resolution=resolution, num_classes=5)).eval()
    with torch.no_grad():
        assert tuple(model(torch.randn(1, 3, resolution, resolution)).shape) == (1, 5)


def test_uib_absent_convs_are_identity_and_residual_is_a_module():
    block = UniversalInvertedBottleneck(UIBSpec(16, None, None, 2.0), Shape(8, 8, 16))
    assert isinstance(block.dw_start, nn.Identity) and isinstance(block.dw_mid, nn.Identity)
    assert isinstance(block.residual, AddResidual)
    block2 = UniversalInvertedBottleneck(UIBSpec(24, 3, 5, 2.0, stride=2), Shape(8, 8, 16))
    assert isinstance(block2.residual, NoResidual)
    assert block2.dw_mid.conv.stride == (2, 2) and block2.dw_start.conv.stride == (1, 1)
    block3 = UniversalInvertedBottleneck(UIBSpec(24, 3, 5, 2.0, stride=2, stride_on="start"), Shape(8, 8, 16))
    assert block3.dw_start.conv.stride == (2, 2) and block3.dw_mid.conv.stride == (1, 1)


def test_mqa_shares_one_kv_head():
    arch = parse_arch("res32|cn_r1_k3_s2_c16|mqa_r1_k3_h4_s1_v2_d8_c16|mha_r1_k3_h4_s1_v2_d8_c16|head_cls10")
    model = build_model(arch)
    mqa, mha = model.blocks[0].attn, model.blocks[1].attn
    assert mqa.key.proj.out_channels == 8 and mqa.value.proj.out_channels == 8  # one shared K/V head
    assert mha.key.proj.out_channels == 32  # MHSA: a K head per query head
    assert mqa.key.down_conv.stride == (2, 2) and mqa.key.down_conv.groups == 16  # stride-2 depthwise SR


def test_build_is_seeded():
    spec = get_spec("mobilenet-v2-050", resolution=32)
    a, b, c = build_model(spec, seed=1), build_model(spec, seed=1), build_model(spec, seed=2)
    pa, pb, pc = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_recalibrate_bn_normalises_activations():
    spec = ArchSpec(32, ConvSpec(16, 3, 2), tuple(UIBSpec(16, 3, 3) for _ in range(8)), HeadSpec(0, 0), 10)
    model = recalibrate_bn(build_model(spec), random_batches((8, 3, 32, 32), 2))
    assert not model.training
    bn = model.stem[1]
    assert bn.num_batches_tracked.item() == 2 and bn.momentum == 0.1
    with torch.no_grad():
        out = model.stem(torch.randn(8, 3, 32, 32))
    assert 0.3 < out.std().item() < 3
