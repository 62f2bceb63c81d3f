"""Training-free proxies: determinism for a seed, independence from what was scored before."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nas.supernet import make_estimator
from nas.supernet._estimators import ZenScore
from nas.supernet._gaussian import POOL_CHUNK as _POOL_CHUNK
from nas.zoo import get_spec


@pytest.fixture(scope="module")
def archs():
    return [get_spec("mnv4-conv-small"), get_spec("mnv4-conv-medium")]


@pytest.mark.parametrize("name", ["zen@32", "naswot@32"])
def test_a_proxy_scores_the_same_for_a_seed_whatever_came_before(name, archs):
    a = make_estimator(name).score(archs)
    b = make_estimator(name)
    reverse = b.score(archs[::-1])[::-1]
    np.testing.assert_array_equal(a, reverse)
    np.testing.assert_array_equal(a, make_estimator(name).score(archs))
    assert np.isfinite(a).all()


def test_zen_seed_changes_the_weights(archs):
    assert ZenScore(32, seed=0).score(archs[:1])[0] != ZenScore(32, seed=1).score(archs[:1])[0]


def test_zen_draws_are_one_sequence_across_chunks():
    """A weight that spans two chunks reads the same numbers as one long draw of each chunk's generator."""
    z = ZenScore(seed=3)
    seeds = [int(np.random.SeedSequence([3, k]).generate_state(1)[0]) for k in range(3)]
    whole = torch.cat([torch.randn(_POOL_CHUNK, generator=torch.Generator().manual_seed(s)) for s in seeds])
    for off, n in [(0, 10), (_POOL_CHUNK - 3, 7), (_POOL_CHUNK - 1, _POOL_CHUNK + 2), (2 * _POOL_CHUNK, 5)]:
        assert torch.equal(z._draws(off, n), whole[off : off + n]), (off, n)


def _zen_one_network(z: ZenScore, arch) -> float:
    """Zen-score as the authors compute it: one network, both passes through it, its BN running variances."""
    from torch import nn

    from nas.model import Net
    from nas.spec import ArchSpec

    net = Net(ArchSpec(z.resolution, arch.stem, arch.blocks, arch.head, 1))
    offset = 0
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(z._draws(offset, m.weight.numel()).view(m.weight.shape))
                offset += m.weight.numel()
                if m.bias is not None:
                    m.bias.zero_()
            elif hasattr(m, "gamma"):
                m.gamma.fill_(1.0)
        x, eps = z._inputs(2)
        net.train()
        out, mixed = net.forward_features(x), net.forward_features(x + z.gamma * eps)
        delta = torch.sum(torch.abs(out - mixed), dim=[1, 2, 3]).mean()
        log_bn = sum(
            float(torch.log(torch.sqrt(torch.mean(m.running_var))))
            for m in net.modules()
            if isinstance(m, nn.BatchNorm2d)
        )
    return float(torch.log(delta)) + log_bn


@pytest.mark.parametrize("threads", [1, 2])
def test_zen_two_copies_give_the_one_network_score(threads):
    """The two passes run on two copies that share weights, BN variances combined afterwards: the
    authors' one-network number up to float rounding, on 1 or 2 threads alike."""
    torch.set_num_threads(1)  # the reference's convolutions on one thread, as each copy's pass
    try:
        z = ZenScore(32, seed=5, threads=threads)
        for name in ("mnv4-conv-small", "mnv4-hybrid-medium"):
            arch = get_spec(name)
            assert z.score([arch])[0] == pytest.approx(_zen_one_network(z, arch), rel=1e-6, abs=1e-4), name
    finally:
        torch.set_num_threads(2)


def test_zen_reuses_modules_without_carrying_state(archs):
    """Blocks kept from one candidate serve the next with fresh weights and statistics: scoring
    A, B, A on one estimator gives A's fresh-estimator score twice (and a model with a block twice
    gets two modules)."""
    z = ZenScore(32, seed=2, threads=1)
    a1 = z._score_one(archs[0])
    z._score_one(archs[1])
    assert z._score_one(archs[0]) == a1 == ZenScore(32, seed=2, threads=1)._score_one(archs[0])
    (first, second), (bns_first, bns_second) = z._gaussian_models(archs[1])
    mods = [id(m) for net in (first, second) for m in net.blocks]
    assert len(mods) == len(set(mods))
    assert not {id(b) for b in bns_first} & {id(b) for b in bns_second}
    assert all(a.weight is b.weight for a, b in zip(bns_first, bns_second, strict=True))


def test_zen_is_picklable_after_scoring(archs):
    import pickle

    z = ZenScore(32, seed=4)
    s = z.score(archs[:1])[0]
    z2 = pickle.loads(pickle.dumps(z))
    assert "_pool" not in z2.__dict__ and "_workers" not in z2.__dict__
    z2._cache.clear()
    assert z2.score(archs[:1])[0] == s
