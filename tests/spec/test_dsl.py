from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.errors import SpecError
from nas.spec import (
    ArchSpec,
    ConvSpec,
    DSConvSpec,
    FusedIBSpec,
    HeadSpec,
    MHSASpec,
    MQASpec,
    UIBSpec,
    arch_keys,
    format_arch,
    format_block,
    parse_arch,
    parse_block,
    parse_blocks,
    parse_key,
)
from nas.zoo import ZOO, get_spec

TIMM_EXAMPLES = [
    "uir_r1_a3_k5_s2_e4_c80",
    "mqa_r1_k3_h4_s1_v2_d64_c160",
    "er_r1_k3_s2_e4_c48",
    "cn_r1_k1_s1_c960",
    "ds_r1_k3_s1_c16",
    "dsa_r1_k3_s2_c128",
    "mha_r1_k3_h4_s1_d64_c256",
    "uir_r1_a0_k0_s1_e2_c160",
]


@pytest.mark.parametrize("text", TIMM_EXAMPLES)
def test_timm_strings_round_trip(text):
    assert format_block(parse_block(text)) == text


def test_parse_values():
    b = parse_block("uir_r1_a3_k5_s2_e4_c80")
    assert b == UIBSpec(80, 3, 5, 4.0, stride=2)
    m = parse_block("mqa_r1_k3_h4_s1_v2_d64_c160_ls")
    assert m == MQASpec(160, heads=4, key_dim=64, kv_stride=2, layer_scale=True)
    assert parse_block("uir_r1_a3_k0_s1_e4_c96_nge").activation == "gelu"
    assert parse_block("cn_r1_k3_s2_e1_c32") == ConvSpec(32, 3, 2)  # timm writes e1 on cn


def test_repeats_expand_like_timm():
    blocks = parse_blocks("uir_r3_a3_k3_s2_e4_c96")
    assert len(blocks) == 3 and blocks[0].stride == 2 and blocks[1].stride == 1 and blocks[1] == blocks[2]
    with pytest.raises(SpecError, match="single block"):
        parse_block("uir_r2_a3_k3_s1_e4_c96")


@pytest.mark.parametrize(
    "text, offending",
    [
        ("uir_r1_a3_k5_s2_e4_c80_x5", "'x5'"),
        ("uir_r1_a3_k5_k3_s2_e4_c80", "duplicate token 'k3'"),
        ("uir_r1_a3_k5_s2_e4", "missing token 'c'"),
        ("uir_a3_k5_s2_e4_c80", "missing token 'r'"),
        ("uir_r1_a3_k5_s3_e4_c80", "stride must be one of 1, 2"),
        ("uir_r1_a3_k5_s2_e4_c-80", "'c-80'"),
        ("uir_r1_a3_k5_s2_e4_c80_nsw", "'nsw'"),
        ("foo_r1_k3_s1_c8", "unknown block kind 'foo'"),
        ("mqa_r1_k3_h4_s2_d64_c160", "attention keeps the resolution"),
        ("cn_r1_k3_s1_e4_c8", "'e4'"),
        ("uir_r1_a3_k5_s2_e4_c80.5", "'c80.5'"),
        ("", "empty"),
    ],
)
def test_malformed_blocks_name_the_token(text, offending):
    with pytest.raises(SpecError) as exc:
        parse_block(text)
    assert offending in str(exc.value)


def test_arch_round_trip_every_zoo_model():
    for name in ZOO:
        spec = get_spec(name)
        assert parse_arch(spec.arch) == spec
        assert format_arch(parse_arch(spec.arch)) == spec.arch


def test_malformed_arch():
    for text, msg in [
        ("cn_r1_k3_s2_c32|head_cls10", "expected 'res<R>"),
        ("res224|uir_r1_a3_k3_s2_e4_c8|head_cls10", "must be a cn block"),
        ("rez224|cn_r1_k3_s2_c32|head_cls10", "res<resolution>"),
        ("res224|cn_r1_k3_s2_c32|head_c960", "missing token 'cls'"),
        ("res224|cn_r1_k3_s2_c32|head_cls10_cls10", "duplicate"),
    ]:
        with pytest.raises(SpecError, match=msg.replace("(", "\\(")):
            parse_arch(text)


def test_keys_round_trip(tiny_arch):
    for key, layer in zip(arch_keys(tiny_arch), tiny_arch.layers):
        block, shape = parse_key(key)
        assert block == layer.spec and shape == layer.in_shape
    head, shape = parse_key(arch_keys(tiny_arch)[-1])
    assert head == (tiny_arch.head, tiny_arch.num_classes) and shape == tiny_arch.body_out_shape
    with pytest.raises(SpecError, match="input shape"):
        parse_key("cn_r1_k3_s1_c8@7x7")


# --- property tests: format(parse(s)) == s for every block kind --------------------------------
ch = st.integers(1, 1024)
act = st.sampled_from(["relu", "relu6", "gelu"])
kern = st.sampled_from([3, 5, 7, 9])
okern = st.one_of(st.none(), kern)
exp = st.sampled_from([1, 2, 3, 4, 6, 2.5, 0.5])
conv = st.builds(ConvSpec, ch, st.sampled_from([1, 3, 5, 7]), st.sampled_from([1, 2]), act)
fused = st.builds(FusedIBSpec, ch, st.sampled_from([1, 3, 5]), st.sampled_from([1, 2]), exp, act, st.booleans())


@st.composite
def uib(draw):
    k1, k2 = draw(okern), draw(okern)
    stride = draw(st.sampled_from([1, 2])) if (k1 or k2) else 1
    on = draw(st.sampled_from([x for x, k in (("start", k1), ("mid", k2)) if k])) if stride == 2 else None
    return UIBSpec(draw(ch), k1, k2, draw(exp), stride, on, draw(act), draw(st.booleans()), draw(st.booleans()))


ds = st.builds(DSConvSpec, ch, kern, st.sampled_from([1, 2]), st.booleans(), act, st.booleans())
attn_kwargs = dict(
    out_channels=ch,
    heads=st.integers(1, 16),
    key_dim=st.integers(1, 128),
    value_dim=st.one_of(st.none(), st.integers(1, 128)),
    kv_stride=st.sampled_from([1, 2, 4]),
    query_stride=st.sampled_from([1, 2, 4]),
    dw_kernel=kern,
    layer_scale=st.booleans(),
    skip=st.booleans(),
)
any_block = st.one_of(conv, fused, uib(), ds, st.builds(MQASpec, **attn_kwargs), st.builds(MHSASpec, **attn_kwargs))


@settings(max_examples=400, deadline=None)
@given(any_block)
def test_block_round_trip_property(block):
    text = format_block(block)
    assert parse_block(text) == block
    assert format_block(parse_block(text)) == text


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.one_of(conv, fused, uib(), ds), min_size=0, max_size=6),
    st.builds(HeadSpec, st.integers(0, 512), st.integers(0, 512), act),
    st.integers(1, 2000),
)
def test_arch_round_trip_property(blocks, head, classes):
    arch = ArchSpec(256, ConvSpec(16, 3, 2), tuple(blocks), head, classes)
    assert parse_arch(arch.arch) == arch
