"""Search spaces: shipped definitions, encoding, sampling, size, distinct blocks, phases."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.errors import SpecError
from nas.model import build_model
from nas.space import (
    arch_slot_keys,
    coarse_space,
    contains,
    decisions,
    decode,
    distinct_blocks,
    encode,
    fix_coarse,
    list_spaces,
    load_space,
    log10_size,
    sample,
    sample_coarse,
    sample_distinct,
    sample_vectors,
    size,
    slots,
    widths_of,
)
from nas.spec import MQASpec, UIBSpec, arch_keys
from nas.zoo import get_spec

SHIPPED = ["mnv4-conv-small", "mnv4-conv-medium", "mnv4-conv-large", "mnv4-hybrid-medium", "mnv4-hybrid-large"]


def test_shipped_spaces():
    assert set(SHIPPED) <= set(list_spaces())


@pytest.mark.parametrize("name", SHIPPED)
def test_reference_is_a_member(name):
    space = load_space(name)
    ref = get_spec(space.reference)
    assert contains(space, ref)
    assert decode(space, encode(space, ref)) == ref


def test_paper_hybrid_medium_is_in_the_hybrid_medium_space():
    assert contains(load_space("mnv4-hybrid-medium"), get_spec("mnv4-hybrid-medium-paper"))


def test_non_members_say_why():
    space = load_space("mnv4-conv-medium")
    with pytest.raises(SpecError, match="resolution"):
        encode(space, get_spec("mnv4-conv-small"))
    assert not contains(space, get_spec("mnv4-hybrid-medium"))  # layer scale + MQA
    assert not contains(load_space("mnv4-conv-small"), get_spec("mnv4-conv-medium"))


@pytest.mark.parametrize("name", SHIPPED)
def test_encode_decode_bijective_on_samples(name):
    space = load_space(name)
    vecs = sample_vectors(space, np.random.default_rng(0), 200)
    archs = [decode(space, v) for v in vecs]
    for v, a in zip(vecs, archs, strict=True):
        np.testing.assert_array_equal(encode(space, a), v)
    # distinct canonical vectors <-> distinct architectures
    assert len({tuple(v) for v in vecs}) == len({a.arch for a in archs})


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(SHIPPED))
def test_bijection_property(seed, name):
    space = load_space(name)
    a = sample(space, np.random.default_rng(seed))
    assert decode(space, encode(space, a)) == a


@pytest.mark.parametrize("name", SHIPPED)
def test_distinct_blocks_cover_1000_samples(name):
    space = load_space(name)
    keys = set(distinct_blocks(space))
    rng = np.random.default_rng(1)
    for v in sample_vectors(space, rng, 1000):
        assert set(arch_slot_keys(space, v)) <= keys
    for _ in range(20):  # coarse and fine members too
        c = sample_coarse(space, rng)
        assert set(arch_keys(c)) <= keys
        assert set(arch_keys(sample(fix_coarse(space, c), rng))) <= keys


def test_slot_keys_equal_arch_keys():
    space = load_space("mnv4-hybrid-medium")
    for v in sample_vectors(space, np.random.default_rng(2), 100):
        assert sorted(arch_slot_keys(space, v)) == sorted(arch_keys(decode(space, v)))
    for s in slots(space):
        assert len(s.deps) == len(s.radices)


def test_sampling_is_reproducible_and_seed_dependent():
    space = load_space("mnv4-conv-medium")
    a = [sample(space, np.random.default_rng(7)).arch for _ in range(3)]
    b = [sample(space, np.random.default_rng(7)).arch for _ in range(3)]
    c = sample(space, np.random.default_rng(8)).arch
    assert a == b and a[0] != c


def test_sample_distinct_draws_distinct_members_in_first_drawn_order(tmp_path):
    space = load_space("mnv4-conv-small")
    archs = sample_distinct(space, np.random.default_rng(5), 12)
    assert len({a.arch for a in archs}) == 12 and all(contains(space, a) for a in archs)
    # the first draws of the same generator, in order (no repeats are likely among 12 of this space)
    rng = np.random.default_rng(5)
    assert [a.arch for a in archs] == [decode(space, v).arch for v in sample_vectors(space, rng, 12)]
    assert [a.arch for a in sample_distinct(space, np.random.default_rng(5), 12)] == [a.arch for a in archs]
    # a space smaller than the request: every member once, then it stops
    p = tmp_path / "few.toml"
    p.write_text(
        'name = "few"\nresolution = 32\nnum_classes = 10\nstem = "cn_r1_k3_s2_c8"\nhead = "head_c16"\n'
        "[fine]\nstart_dw = [0]\nmid_dw = [0, 3]\nexpansion = [2]\n"
        '[[stages]]\nkind = "uib"\nstride = 2\nchannels = [8, 16]\ndepth = [1]\n'
    )
    tiny = load_space(p)
    got = sample_distinct(tiny, np.random.default_rng(0), 10, max_rounds=20)
    assert len(got) == len({a.arch for a in got}) == size(tiny) < 10


def test_coarse_stage_fixes_blocks_to_ib_e4_k3():
    space = load_space("mnv4-hybrid-medium")
    coarse = coarse_space(space)
    assert {d.kind for d in decisions(coarse)} == {"channels", "depth"}
    arch = sample(coarse, np.random.default_rng(3))
    uibs = [b for b in arch.blocks if isinstance(b, UIBSpec)]
    assert all(b.start_dw_kernel is None and b.mid_dw_kernel == 3 and b.expansion == 4 for b in uibs)
    assert not any(isinstance(b, MQASpec) for b in arch.blocks)
    assert contains(space, arch)  # coarse members are members of the joint space


def test_fix_coarse_keeps_widths_and_searches_variants_and_mqa():
    space = load_space("mnv4-hybrid-medium")
    ref = get_spec("mnv4-hybrid-medium")
    fine = fix_coarse(space, ref)
    assert {d.kind for d in decisions(fine)} == {"uib", "mqa"}
    rng = np.random.default_rng(4)
    for _ in range(10):
        a = sample(fine, rng)
        assert widths_of(space, a) == widths_of(space, ref)
    assert contains(fine, ref)
    # widths fixed to the reference (UIB depths 2, 8, 12); per stage: 32 strided firsts x 36^(d-1) x 2^slots
    assert size(fine) == (32 * 36) * (32 * 36**7 * 2**4) * (32 * 36**11 * 2**4)


def test_slot_keys_of_a_fixed_block_after_a_searchable_stage(tmp_path):
    # the fixed blocks' input width is the searchable stage's chosen width, not its first choice
    p = tmp_path / "fixed_after.toml"
    p.write_text(
        'name = "fixed-after"\nresolution = 32\nnum_classes = 10\nstem = "cn_r1_k3_s2_c8"\nhead = "head_c16"\n'
        '[[stages]]\nkind = "fused"\nstride = 2\nchannels = [8, 16, 24]\ndepth = [1, 2]\n'
        '[[stages]]\nkind = "fixed"\nblocks = ["cn_r1_k1_s1_c32", "cn_r1_k3_s2_c40"]\n'
        '[[stages]]\nkind = "uib"\nstride = 1\nchannels = [40, 48]\ndepth = [1, 2]\n'
        '[[stages]]\nkind = "fixed"\nblocks = ["cn_r1_k1_s1_c64"]\n'
    )
    space = load_space(p)
    for sp in (space, coarse_space(space)):
        radices = [d.radix for d in decisions(sp)]
        for v in itertools.product(*map(range, radices)):
            assert sorted(arch_slot_keys(sp, np.array(v))) == sorted(arch_keys(decode(sp, np.array(v))))
        for s in slots(sp):
            assert len(s.deps) == len(s.radices)


def test_size_is_exact_for_a_tiny_space(tmp_path):
    p = tmp_path / "tiny.toml"
    p.write_text(
        'name = "tiny"\nresolution = 32\nnum_classes = 10\nstem = "cn_r1_k3_s2_c8"\nhead = "head_c16"\n'
        "[fine]\nstart_dw = [0, 3]\nmid_dw = [0, 3]\nexpansion = [2]\n"
        '[[stages]]\nkind = "uib"\nstride = 2\nchannels = [8, 16]\ndepth = [1, 2, 3]\n'
        "attention = { slots = 1, heads = 1, key_dim = 8 }\n"
    )
    space = load_space(p)
    # enumerate every canonical vector and count distinct architectures
    radices = [d.radix for d in decisions(space)]
    archs = {decode(space, np.array(v)).arch for v in itertools.product(*map(range, radices))}
    # per width: depth1: 3 firsts; depth2: 3*4*2 (MQA before block 1); depth3: 3*16*2
    assert size(space) == len(archs) == 2 * (3 + 24 + 96)
    assert math.isclose(log10_size(space), math.log10(246))
    assert len(decisions(space)) == 1 + 1 + 3 + 1  # channels, depth, three blocks, one MQA slot


@pytest.mark.parametrize("name", ["mnv4-conv-small", "mnv4-hybrid-medium"])
def test_samples_build_and_run_forward(name):
    import torch

    space = load_space(name)
    rng = np.random.default_rng(5)
    for _ in range(2):
        arch = sample(space, rng)
        model = build_model(arch).eval()
        with torch.no_grad():
            out = model(torch.randn(1, 3, space.resolution, space.resolution))
        assert out.shape == (1, space.num_classes)


def test_stride2_first_block_keeps_a_dw():
    space = load_space("mnv4-conv-medium")
    first = [d for d in decisions(space) if d.name == "stage1.block0.uib"][0]
    assert "a0_k0_e4" not in first.choices and "a3_k0_e4" in first.choices
    other = [d for d in decisions(space) if d.name == "stage1.block1.uib"][0]
    assert "a0_k0_e4" in other.choices and len(other.choices) == 36


def test_derived_data_follows_the_space_it_belongs_to():
    # derived data (decisions, slots) is per object: a replaced or unpickled space never reuses another's
    import dataclasses
    import pickle

    space = load_space("mnv4-conv-small")
    keys = [k for s in slots(space) for _, k in s.keys()]
    other = dataclasses.replace(space, resolution=256)
    assert [k for s in slots(other) for _, k in s.keys()] != keys
    back = pickle.loads(pickle.dumps(space))
    assert back == space and [k for s in slots(back) for _, k in s.keys()] == keys
