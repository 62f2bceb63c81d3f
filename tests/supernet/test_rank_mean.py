"""``supernet+macs:CKPT``: supernet accuracy and MAC count combined by their mean rank in a reference sample."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy import stats

from nas.cost import count_macs
from nas.errors import NasError
from nas.space import contains, sample
from nas.supernet import TrainConfig, load_data, make_estimator, train_supernet, tunas_search
from nas.supernet._rank_mean import RankMean, SupernetMacsEstimator


def test_reference_members_order_by_their_mean_rank():
    rng = np.random.default_rng(0)
    acc = rng.uniform(0.5, 0.9, 40)
    macs = rng.uniform(1e6, 9e6, 40)
    score = RankMean(acc, macs)(acc, macs)
    mean_rank = stats.rankdata(acc) + stats.rankdata(macs)
    # Same order as the mean of the two ranks (ties in the mean rank may break either way).
    assert stats.kendalltau(score, mean_rank).statistic > 0.99
    # The score reads as an accuracy of the reference sample: within (and spanning most of) its range.
    assert acc.min() <= score.min() and score.max() <= acc.max()
    # A member at both medians scores the median accuracy.
    mid = RankMean(acc, macs)(np.median(acc, keepdims=True), np.median(macs, keepdims=True))
    assert mid[0] == pytest.approx(np.median(acc), abs=0.02)


def test_members_outside_the_reference_range_still_order():
    ref_acc, ref_macs = np.array([0.6, 0.7, 0.8]), np.array([1e6, 2e6, 4e6])
    m = RankMean(ref_acc, ref_macs)
    # Higher accuracy at the same MACs, and more MACs at the same accuracy, both beyond the sample.
    hi = m(np.array([0.85, 0.9, 0.95]), np.array([8e6, 8e6, 8e6]))
    assert np.all(np.diff(hi) > 0)
    more = m(np.array([0.95, 0.95]), np.array([8e6, 16e6]))
    assert more[1] > more[0]
    lo = m(np.array([0.5, 0.4]), np.array([5e5, 5e5]))
    assert lo[0] > lo[1]


def test_a_constant_reference_is_not_a_division_by_zero():
    m = RankMean(np.full(4, 0.7), np.array([1e6, 2e6, 3e6, 4e6]))
    out = m(np.array([0.7, 0.7]), np.array([1e6, 4e6]))
    assert np.all(np.isfinite(out)) and out[1] >= out[0]
    with pytest.raises(NasError, match="at least 2"):
        SupernetMacsEstimator("unused.pt", n_ref=1)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, conv_space):
    p = tmp_path_factory.mktemp("rankmean") / "sn.pt"
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_supernet(
            conv_space,
            load_data("builtin:20", 32),
            p,
            TrainConfig(epochs=1, batch_size=32, eval_every=0),
            data_spec="builtin:20",
        )
    finally:
        torch.set_num_threads(old)
    return p


def test_estimator_combines_the_supernet_and_the_mac_count(ckpt, conv_space):
    est = SupernetMacsEstimator(ckpt, n_ref=12)
    assert est.name == f"supernet+macs:{ckpt}" and "reference sample of 12" in est.meaning
    ref = est.reference()
    assert len(ref) == 12 and len({a.arch for a in ref}) == 12 and all(contains(conv_space, a) for a in ref)
    assert [a.arch for a in ref] == [
        a.arch for a in SupernetMacsEstimator(ckpt, n_ref=12, supernet=est.base).reference()
    ]
    acc = est.base.score(ref)
    macs = np.asarray([count_macs(a) for a in ref], dtype=float)
    np.testing.assert_allclose(est.score(ref), RankMean(acc, macs)(acc, macs))
    rng = np.random.default_rng(3)
    archs = [sample(conv_space, rng) for _ in range(3)]
    s = est.score(archs)
    assert s.shape == (3,) and np.all(np.isfinite(s))
    np.testing.assert_array_equal(est.score(archs[::-1]), s[::-1])  # cached per arch
    # A member at another deployment resolution (what a search hands in) scores like the training one.
    hi = dataclasses.replace(archs[0], resolution=64, num_classes=1000)
    assert est.score([hi])[0] == s[0]
    assert est.search_space is est.base.search_space and est.controller() is None


def test_registry_and_tunas_use_it(ckpt, conv_space):
    est = make_estimator(f"supernet+macs:{ckpt}")
    assert isinstance(est, SupernetMacsEstimator) and est.n_ref == 64
    with pytest.raises(NasError, match="needs a checkpoint"):
        make_estimator("supernet+macs")
    small = SupernetMacsEstimator(ckpt, n_ref=8, supernet=est.base)
    res = tunas_search(conv_space, small, lambda archs: np.ones(len(archs)), 1.0, steps=4, seed=0)
    assert contains(conv_space, res.arch)
    assert res.score == small.score([res.arch])[0]  # the final score is the full combined estimate
    q = small.tunas_quality()([res.arch, res.arch])
    assert q.shape == (2,) and np.all(np.isfinite(q))
