"""The weight-sharing supernet: subnet forward == extracted model forward, one tensor per shared weight."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from nas.errors import NasError
from nas.model import Net, recalibrate_bn
from nas.model.blocks import UniversalInvertedBottleneck
from nas.space import coarse_space, contains, decisions, fix_coarse, load_space, sample
from nas.spec import MQASpec, UIBSpec, parse_arch
from nas.supernet import Supernet, largest_arch, smallest_arch
from nas.zoo import get_spec


def _calibrated(net: Supernet, archs, seed: int = 0) -> None:
    """Give the shared BN statistics non-trivial values (train-mode passes of several subnets)."""
    g = torch.Generator().manual_seed(seed)
    net.train()
    with torch.no_grad():
        for a in archs:
            net(torch.randn(4, 3, net.resolution, net.resolution, generator=g), a)
    net.eval()


def _check_equal(net: Supernet, archs, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    for a in archs:
        x = torch.randn(3, 3, net.resolution, net.resolution, generator=g)
        with torch.no_grad():
            y_super = net(x, a)
            model = net.extract(a)
            assert isinstance(model, Net) and not model.training
            y_model = model(x)
        assert y_super.shape == (3, net.num_classes)
        torch.testing.assert_close(y_super, y_model, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("which", ["conv_space", "hybrid_space"])
def test_subnet_forward_equals_extracted_model(request, which):
    space = request.getfixturevalue(which)
    net = Supernet(space, seed=3)
    net.verify_storage()
    rng = np.random.default_rng(0)
    archs = [largest_arch(space), smallest_arch(space)] + [sample(space, rng) for _ in range(5)]
    archs += [sample(coarse_space(space), rng)]
    _calibrated(net, archs[:4])
    _check_equal(net, archs)


@pytest.mark.parametrize("name", ["mnv4-conv-small", "mnv4-hybrid-medium"])
def test_shipped_spaces_at_a_small_resolution(name):
    space = load_space(name)
    net = Supernet(space, resolution=32, num_classes=10)
    rng = np.random.default_rng(1)
    archs = [sample(space, rng) for _ in range(2)]
    ref = get_spec(space.reference)
    archs.append(ref)
    _calibrated(net, archs[:1])
    _check_equal(net, archs)
    # The reference at the space's resolution (what latency tables see) maps to the training resolution.
    assert net.normalize(ref).resolution == 32 and net.normalize(ref).num_classes == 10


def test_fine_space_members_and_phase_independent_weights(conv_space):
    net = Supernet(conv_space)
    coarse = sample(coarse_space(conv_space), np.random.default_rng(2))
    fine = fix_coarse(conv_space, coarse)
    archs = [sample(fine, np.random.default_rng(i)) for i in range(3)]
    _calibrated(net, archs)
    _check_equal(net, archs)


def test_one_parameter_tensor_per_shared_weight(conv_space):
    net = Supernet(conv_space)
    rng = np.random.default_rng(0)
    archs = [largest_arch(conv_space), smallest_arch(conv_space)] + [sample(conv_space, rng) for _ in range(20)]
    # Storage is one tensor per (position, tensor name): no per-variant copies.
    names = [n for n, _ in net.named_parameters()]
    assert len(names) == len(set(names))
    positions = {n.split(".")[1] for n in names if n.startswith("body.")}
    assert positions == set(net.storage_keys())
    # The supernet stores far fewer scalars than the subnets it covers would separately.
    total = sum(p.numel() for p in net.parameters())
    separate = sum(sum(p.numel() for p in net.extract(a).parameters()) for a in archs)
    assert total < separate / 5
    # ... and no more than the largest subnet plus absent-kernel/width variants' maxima.
    largest = sum(p.numel() for p in net.extract(largest_arch(conv_space)).parameters())
    assert total == largest


def test_kernels_widths_and_expansions_are_nested_slices(conv_space):
    net = Supernet(conv_space)
    stage = 2  # first UIB stage
    big = next(b for b in largest_arch(conv_space).blocks if isinstance(b, UIBSpec))
    assert big.start_dw_kernel == 5 and big.mid_dw_kernel == 5 and big.expansion == 4
    storage = net.body[f"s{stage}_b0"]
    w5 = storage.dw_mid.conv.weight
    # A 3x3 middle DW, expansion 2, narrow subnet: its gradient lands only in the centre 3x3 of the
    # first make_divisible(in*2) channels of the 5x5 storage, and only the first width rows of pw_proj.
    arch = next(
        a
        for a in (sample(conv_space, np.random.default_rng(s)) for s in range(500))
        if (lambda u: u.mid_dw_kernel == 3 and u.expansion == 2 and u.out_channels == 16)(
            next(b for b in a.blocks if isinstance(b, UIBSpec))
        )
    )
    _, steps = net.layout(arch)
    step = next(s for s in steps if s.key == f"s{stage}_b0")
    mid = step.spec.mid_channels(step.inp.c)
    torch.nn.init.normal_(net.head.classifier.weight)  # the zero-initialised classifier would block gradients
    net.train()
    net.zero_grad()
    net(torch.randn(4, 3, 32, 32), arch).sum().backward()
    g = w5.grad
    assert g is not None
    assert torch.count_nonzero(g[:mid, :, 1:4, 1:4]) > 0
    mask = torch.ones_like(g, dtype=torch.bool)
    mask[:mid, :, 1:4, 1:4] = False
    assert torch.count_nonzero(g[mask]) == 0
    proj = storage.pw_proj.conv.weight.grad
    assert proj is not None and torch.count_nonzero(proj[16:]) == 0 and torch.count_nonzero(proj[:16, mid:]) == 0
    # The extracted tensors are exactly those slices.
    m = net.extract(arch)
    blk = m.blocks[[s.key for s in steps[1:]].index(f"s{stage}_b0")]
    torch.testing.assert_close(blk.dw_mid.conv.weight, w5.detach()[:mid, :, 1:4, 1:4])


def test_absent_dw_and_mqa_slots_are_skipped(hybrid_space):
    net = Supernet(hybrid_space)
    rng = np.random.default_rng(5)
    archs = [sample(hybrid_space, rng) for _ in range(30)]
    with_mqa = next(a for a in archs if any(isinstance(b, MQASpec) for b in a.blocks))
    without = next(a for a in archs if not any(isinstance(b, MQASpec) for b in a.blocks))
    torch.nn.init.normal_(net.head.classifier.weight)
    for a, used in ((with_mqa, True), (without, False)):
        net.zero_grad()
        net.train()
        net(torch.randn(2, 3, 64, 64), a).sum().backward()
        mqa_grads = [p.grad for n, p in net.named_parameters() if "_mqa" in n]
        assert any(g is not None for g in mqa_grads) == used
    ffn = dataclasses.replace(smallest_arch(hybrid_space))
    _, steps = net.layout(ffn)
    net.zero_grad()
    net(torch.randn(2, 3, 64, 64), ffn).sum().backward()
    for st in steps:
        if isinstance(st.spec, UIBSpec) and st.spec.start_dw_kernel is None:
            assert net.body[st.key].dw_start.conv.weight.grad is None


def test_forward_has_no_hidden_state(conv_space):
    net = Supernet(conv_space).eval()
    rng = np.random.default_rng(9)
    a, b = sample(conv_space, rng), sample(conv_space, rng)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ya = net(x, a)
        net(x, b)
        torch.testing.assert_close(net(x, a), ya)


def test_batch_statistics_mode_leaves_running_stats(conv_space):
    net = Supernet(conv_space).train()
    before = {k: v.clone() for k, v in net.state_dict().items() if "running" in k}
    with torch.no_grad():
        net(torch.randn(4, 3, 32, 32), largest_arch(conv_space), track_bn=False)
    after = {k: v for k, v in net.state_dict().items() if "running" in k}
    assert all(torch.equal(before[k], after[k]) for k in before)
    with torch.no_grad():
        net(torch.randn(4, 3, 32, 32), largest_arch(conv_space))
    assert any(not torch.equal(before[k], net.state_dict()[k]) for k in before)


def test_extracted_model_is_independent_and_recalibrates(conv_space):
    net = Supernet(conv_space)
    a = sample(conv_space, np.random.default_rng(0))
    m = net.extract(a)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(1.0)
    # Changing the extracted copy leaves the supernet untouched.
    m2 = net.extract(a)
    assert not torch.equal(next(m.parameters()), next(m2.parameters()))
    recalibrate_bn(m2, [torch.randn(4, 3, 32, 32)])


def test_non_members_and_too_small_resolutions(conv_space):
    net = Supernet(conv_space)
    other = parse_arch("res32|cn_r1_k3_s2_c8|uir_r1_a0_k3_s2_e4_c16|head_c32_h48_cls10")
    with pytest.raises(NasError, match="not a member"):
        net(torch.randn(1, 3, 32, 32), other)
    assert not contains(conv_space, other)
    with pytest.raises(NasError, match="too small"):
        Supernet(conv_space, resolution=4)


def test_decisions_and_extremes(conv_space):
    net = Supernet(conv_space)
    assert net.decisions() == decisions(conv_space)
    big, small = net.largest(), net.smallest()
    assert contains(conv_space, big) and contains(conv_space, small)
    from nas.cost import count_params

    rng = np.random.default_rng(0)
    for a in (sample(conv_space, rng) for _ in range(50)):
        assert count_params(small) <= count_params(a) <= count_params(big)


def test_kernel_transform_maps_the_centre_and_extracts_exactly(conv_space):
    net = Supernet(conv_space, seed=3, kernel_transform=True)
    plain = Supernet(conv_space, seed=3)
    # One 9x9 matrix per depthwise conv that some member runs at 3x3 (here: start and middle DW of
    # every UIB position), identity at start: the untrained transform computes what plain sharing does.
    keys = set(net.kernel_transforms)
    uib = [k for k in net.storage_keys() if isinstance(net.body[k], UniversalInvertedBottleneck)]
    assert keys == {f"{k}__dw_{w}_conv_weight__3" for k in uib for w in ("start", "mid")}
    assert all(torch.equal(p, torch.eye(9)) for p in net.kernel_transforms.values())
    assert net.no_weight_decay() == {f"kernel_transforms.{k}" for k in keys}
    plain.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith("kernel_transforms.")})
    rng = np.random.default_rng(0)
    archs = [largest_arch(conv_space), smallest_arch(conv_space)] + [sample(conv_space, rng) for _ in range(5)]
    with torch.no_grad():
        torch.nn.init.normal_(net.head.classifier.weight)
        plain.head.classifier.weight.copy_(net.head.classifier.weight)
    _calibrated(net, archs[:4])
    _calibrated(plain, archs[:4])
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net(x, archs[1]), plain(x, archs[1]))
        for p in net.kernel_transforms.values():
            p.add_(0.1 * torch.randn_like(p))
        # A learned transform changes the 3x3 members only, and extract() bakes it into the kernel.
        assert not torch.allclose(net(x, archs[1]), plain(x, archs[1]))
        torch.testing.assert_close(net(x, archs[0]), plain(x, archs[0]))
    _check_equal(net, archs)


def test_kernel_transform_learns_from_3x3_members_only(conv_space):
    net = Supernet(conv_space, kernel_transform=True).train()
    torch.nn.init.normal_(net.head.classifier.weight)
    net(torch.randn(2, 3, 32, 32), largest_arch(conv_space)).sum().backward()
    assert all(p.grad is None for p in net.kernel_transforms.values())
    small = smallest_arch(conv_space)
    _, steps = net.layout(small)
    net(torch.randn(2, 3, 32, 32), small).sum().backward()
    used = {
        f"{s.key}__dw_mid_conv_weight__3" for s in steps if isinstance(s.spec, UIBSpec) and s.spec.mid_dw_kernel == 3
    }
    used |= {
        f"{s.key}__dw_start_conv_weight__3"
        for s in steps
        if isinstance(s.spec, UIBSpec) and s.spec.start_dw_kernel == 3
    }
    assert used
    for k, p in net.kernel_transforms.items():
        assert (p.grad is not None and torch.count_nonzero(p.grad) > 0) == (k in used), k
