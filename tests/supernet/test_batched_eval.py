"""Batched subnet scoring: the same accuracies as recalibrating and evaluating one subnet at a time."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nas.errors import NasError
from nas.model import recalibrate_bn
from nas.model.blocks import LayerScale2d
from nas.space import coarse_space, sample_distinct
from nas.spec import parse_arch
from nas.supernet import Supernet, largest_arch, load_data, smallest_arch
from nas.supernet._batched_eval import SubnetScorer
from nas.supernet._evaluate import calibration_batches, subnet_accuracy


@pytest.fixture(scope="module")
def data():
    return load_data("builtin:20", 32)  # 200 training, 200 held-out images


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _supernet(space) -> Supernet:
    """A supernet whose members disagree: random classifier, layer scales 1 (1e-5 hides residual branches)."""
    net = Supernet(space, resolution=32, num_classes=10, seed=1)
    with torch.no_grad():
        torch.nn.init.normal_(net.head.classifier.weight, 0.0, 0.5, generator=torch.Generator().manual_seed(2))
        for m in net.modules():
            if isinstance(m, LayerScale2d):
                m.gamma.fill_(1.0)
    return net.eval()


def _members(space, n: int = 7) -> list:
    archs = [largest_arch(space), smallest_arch(space)]
    archs += sample_distinct(space, np.random.default_rng(0), n)
    return archs + sample_distinct(coarse_space(space), np.random.default_rng(1), 2)


@pytest.mark.parametrize("which", ["conv_space", "hybrid_space"])
def test_batched_equals_one_at_a_time(request, which, data):
    space = request.getfixturevalue(which)
    net = _supernet(space)
    calib = calibration_batches(data, 3, 40)  # 120 images, the last batch of 40 like the others
    archs = _members(space)
    reference = np.asarray([subnet_accuracy(net, a, data, calib) for a in archs])
    assert len(set(reference.tolist())) > 3  # the members really differ
    nchw = SubnetScorer(net, data, calib, channels_last=False, fold_bn=False, group=4)
    # Same layout, same operations: bit-identical to extracting and recalibrating each subnet alone.
    assert np.array_equal(nchw(archs), reference)
    assert np.array_equal(nchw(archs[::-1], workers=2), reference[::-1])
    # No kept outputs of the shared layers (recomputed per group): still identical.
    exact = SubnetScorer(net, data, calib, channels_last=False, fold_bn=False, cache_bytes=0)
    assert np.array_equal(exact(archs), reference)
    # Channels-last and folded BatchNorm change rounding only: at most one held-out image in 200 flips.
    cl = SubnetScorer(net, data, calib, group=3)
    batched = cl(archs)
    assert np.abs(batched - reference).max() <= 1 / 200 + 1e-12
    assert np.array_equal([cl([a])[0] for a in archs], batched)


def test_shared_layers_keep_their_statistics_and_supernet_is_untouched(conv_space, data):
    net = _supernet(conv_space)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    calib = calibration_batches(data, 2, 50)
    scorer = SubnetScorer(net, data, calib)
    archs = _members(conv_space, 4)
    first = scorer(archs)
    # The stem (shared by all) was recalibrated once, exactly as a whole extracted model would be.
    whole = recalibrate_bn(net.extract(archs[0]), calib)
    stem = scorer._prefix[0].module
    assert torch.allclose(stem.bn.running_var, whole.stem.bn.running_var, rtol=1e-5)
    assert np.array_equal(scorer(archs), first)  # scoring again changes nothing
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())


def test_duplicates_order_and_non_members(conv_space, data):
    net = _supernet(conv_space)
    scorer = SubnetScorer(net, data, calibration_batches(data, 1, 64))
    a, b = _members(conv_space, 2)[:2]
    out = scorer([a, b, a])
    assert out[0] == out[2] and out.shape == (3,)
    assert scorer([]).shape == (0,)
    other = parse_arch("res32|cn_r1_k3_s2_c8|uir_r1_a0_k3_s2_e4_c16|head_c32_h48_cls10")
    with pytest.raises(NasError, match="not a member"):
        scorer([a, other])
