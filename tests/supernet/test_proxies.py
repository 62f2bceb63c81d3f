"""Training-free proxies: determinism for a seed, independence from what was scored before."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nas.supernet import make_estimator
from nas.supernet._estimators import _POOL_CHUNK, ZenScore
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
