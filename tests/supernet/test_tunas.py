"""TuNAS controller and search engine: REINFORCE with the absolute reward, multi-target costs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nas.cost import count_macs, count_params
from nas.errors import NasError
from nas.space import decisions, decode, encode
from nas.spec import UIBSpec
from nas.supernet import Controller, abs_reward, largest_arch, smallest_arch, tunas_search
from nas.supernet._supernet import active_mask


def _k5_fraction(archs):
    out = []
    for a in archs:
        uibs = [b for b in a.blocks if isinstance(b, UIBSpec)]
        out.append(sum(b.mid_dw_kernel == 5 for b in uibs) / len(uibs))
    return np.asarray(out)


def test_abs_reward_matches_tunas_formula():
    q = np.array([0.7, 0.7, 0.5])
    t1, t2 = np.array([2.0, 4.0, 6.0]), np.array([10.0, 10.0, 5.0])
    r = abs_reward(q, [t1], [4.0], [-0.1])
    np.testing.assert_allclose(r, q + -0.1 * np.abs(t1 / 4.0 - 1))
    r2 = abs_reward(q, [t1, t2], [4.0, 10.0], [-0.1, -0.5])
    np.testing.assert_allclose(r2, r - 0.5 * np.abs(t2 / 10.0 - 1))


def test_controller_starts_uniform_and_samples_canonical(conv_space):
    c = Controller(conv_space)
    for d, p in zip(decisions(conv_space), c.probabilities()):
        np.testing.assert_allclose(p, np.full(d.radix, 1 / d.radix))
    vecs = c.sample(np.random.default_rng(0), 64)
    for v in vecs:
        a = decode(conv_space, v)
        assert np.array_equal(encode(conv_space, a), v)
    # log p counts only the active decisions: uniform => sum of -log(radix) over active ones.
    mask = active_mask(conv_space, vecs)
    radix = np.array([d.radix for d in decisions(conv_space)])
    expect = -(np.log(radix)[None, :] * mask).sum(1)
    np.testing.assert_allclose(c.log_prob(vecs).detach().numpy(), expect)


def test_search_learns_the_quality_signal(conv_space):
    res = tunas_search(
        conv_space,
        _k5_fraction,
        lambda archs: np.ones(len(archs)),
        1.0,
        steps=150,
        seed=0,
        samples_per_step=4,
        rl_lr=0.1,
    )
    uibs = [b for b in res.arch.blocks if isinstance(b, UIBSpec)]
    assert all(b.mid_dw_kernel == 5 for b in uibs)
    assert res.score == 1.0 and res.latency_ms == [1.0] and res.reward == pytest.approx(1.0)
    assert len(res.history) == 150 and res.history[-1]["p_max"] > res.history[0]["p_max"]
    probs = res.probabilities["stage2.block0.uib"]
    assert "_k5_" in max(probs, key=probs.get)
    assert abs(sum(probs.values()) - 1) < 1e-4
    d = res.to_dict()
    assert d["arch"] == res.arch.arch and d["steps"] == 150 and d["samples"] == 600


def test_search_respects_the_latency_budgets(conv_space):
    small, big = count_macs(smallest_arch(conv_space)), count_macs(largest_arch(conv_space))
    budget = small + 0.15 * (big - small)

    def macs(archs):
        return np.asarray([count_macs(a) for a in archs], dtype=float)

    def params(archs):
        return np.asarray([count_params(a) for a in archs], dtype=float)

    quality = lambda archs: np.full(len(archs), 0.5)  # noqa: E731
    res = tunas_search(
        conv_space,
        quality,
        [macs, params],
        [budget, 1e9],
        beta=[-1.0, 0.0],
        steps=200,
        seed=1,
        samples_per_step=4,
        rl_lr=0.1,
    )
    assert abs(res.latency_ms[0] / budget - 1) < 0.35
    rng = np.random.default_rng(0)
    from nas.space import sample

    median = np.median(macs([sample(conv_space, rng) for _ in range(100)]))
    assert res.latency_ms[0] < median
    assert len(res.latency_ms) == 2 and res.budgets == [budget, 1e9] and res.betas == [-1.0, 0.0]


def test_search_argument_errors(conv_space):
    q = lambda archs: np.zeros(len(archs))  # noqa: E731
    lat = lambda archs: np.ones(len(archs))  # noqa: E731
    with pytest.raises(NasError, match="beta must be negative"):
        tunas_search(conv_space, q, lat, 1.0, steps=1, beta=0.5)
    with pytest.raises(NasError, match="2 values for 1"):
        tunas_search(conv_space, q, lat, [1.0, 2.0], steps=1)
    with pytest.raises(NasError, match="positive"):
        tunas_search(conv_space, q, lat, 0.0, steps=1)
    with pytest.raises(NasError, match="steps"):
        tunas_search(conv_space, q, lat, 1.0, steps=0)


def test_controller_state_round_trip_and_warmup(conv_space, tmp_path):
    c = Controller(conv_space, lr=0.2)
    rng = np.random.default_rng(0)
    for _ in range(5):
        v = c.sample(rng, 2)
        c.update(v, _k5_fraction([decode(conv_space, x) for x in v]))
    path = tmp_path / "c.pt"
    torch.save(c.state_dict(), path)
    c2 = Controller(conv_space)
    c2.load_state_dict(torch.load(path, weights_only=True))
    for a, b in zip(c.probabilities(), c2.probabilities()):
        np.testing.assert_allclose(a, b)
    assert c2.baseline == c.baseline and c2.updates == 5
    # Full warm-up turns every decision into its largest option; none leaves samples alone.
    v = c.sample(rng, 8)
    assert np.array_equal(c.warmup(v, rng, 0.0, 0.0), v)
    w = c.warmup(v, rng, 1.0, 1.0)
    assert all(decode(conv_space, x) == largest_arch(conv_space) for x in w)
    # RL delay: lr 0 moves only the baseline.
    before = [p.copy() for p in c.probabilities()]
    c.update(v, np.ones(8), lr=0.0)
    for a, b in zip(before, c.probabilities()):
        np.testing.assert_allclose(a, b)
