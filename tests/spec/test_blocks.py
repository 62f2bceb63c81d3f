from __future__ import annotations

import dataclasses

import pytest

from nas.errors import SpecError
from nas.spec import ArchSpec, ConvSpec, DSConvSpec, FusedIBSpec, HeadSpec, MHSASpec, MQASpec, Shape, UIBSpec


def test_specs_are_frozen_and_hashable():
    a = UIBSpec(80, 3, 5, 4, stride=2)
    b = UIBSpec(80, 3, 5, 4.0, stride=2, stride_on="mid")
    assert a == b and hash(a) == hash(b)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.out_channels = 96  # type: ignore[misc]
    assert len({a, b, UIBSpec(80, None, 5, 4, stride=2)}) == 2


@pytest.mark.parametrize(
    "make, field, allowed",
    [
        (lambda: ConvSpec(32, stride=3), "stride", "1, 2"),
        (lambda: ConvSpec(-8), "out_channels", "[1, 16384]"),
        (lambda: ConvSpec(32, activation="swish"), "activation", "relu, relu6, gelu"),
        (lambda: UIBSpec(80, start_dw_kernel=4), "start_dw_kernel", "3, 5, 7, 9"),
        (lambda: UIBSpec(80, mid_dw_kernel=2), "mid_dw_kernel", "3, 5, 7, 9"),
        (lambda: UIBSpec(80, expansion=0), "expansion", "(0, 16]"),
        (lambda: UIBSpec(80, expansion=float("nan")), "expansion", "(0, 16]"),
        (lambda: UIBSpec(80, stride=True), "stride", "1, 2"),
        (lambda: FusedIBSpec(48, kernel=4), "kernel", "1, 3, 5, 7"),
        (lambda: MQASpec(160, heads=0), "heads", "[1, 64]"),
        (lambda: MQASpec(160, kv_stride=3), "kv_stride", "1, 2, 4"),
        (lambda: DSConvSpec(16, kernel=1), "kernel", "3, 5, 7, 9"),
        (lambda: HeadSpec(conv_channels=-1), "conv_channels", "[0, 16384]"),
        (lambda: UIBSpec(80, layer_scale="yes"), "layer_scale", "true or false"),
    ],
)
def test_validation_names_field_and_allowed_values(make, field, allowed):
    with pytest.raises(ValueError) as exc:
        make()
    assert isinstance(exc.value, SpecError)
    assert field in str(exc.value) and allowed in str(exc.value)


def test_uib_stride_needs_a_depthwise_conv():
    with pytest.raises(SpecError, match="stride 2 needs a depthwise conv"):
        UIBSpec(80, None, None, stride=2)
    with pytest.raises(SpecError, match="stride_on='mid'"):
        UIBSpec(80, 3, None, stride=2, stride_on="mid")
    assert UIBSpec(80, 3, None, stride=2).stride_on == "start"
    assert UIBSpec(80, 3, 5, stride=2, stride_on="start").stride_on == "start"
    # stride 1 normalises the placement so that equal blocks compare equal
    assert UIBSpec(80, 3, 5, stride_on="start") == UIBSpec(80, 3, 5)


def test_uib_variants():
    assert UIBSpec(8, 3, 3).variant == "ExtraDW"
    assert UIBSpec(8, None, 3).variant == "IB"
    assert UIBSpec(8, 3, None).variant == "ConvNext"
    assert UIBSpec(8, None, None).variant == "FFN"


def test_dsa_never_skips():
    assert DSConvSpec(16, pw_act=True).skip is False
    assert DSConvSpec(16, pw_act=True) == DSConvSpec(16, pw_act=True, skip=False)


def test_shape_propagation(tiny_arch):
    shapes = [(str(layer.in_shape), str(layer.out_shape)) for layer in tiny_arch.layers]
    assert shapes[0] == ("32x32x3", "16x16x8")
    assert shapes[2] == ("16x16x8", "8x8x16")  # uir stride 2
    assert tiny_arch.body_out_shape == Shape(2, 2, 32)
    # odd sizes round up like symmetric-padded convs: 7 -> 4
    assert ConvSpec(8, stride=2).out_shape(Shape(7, 7, 3)) == Shape(4, 4, 8)


def test_arch_rejects_bad_values_and_shapes():
    stem = ConvSpec(8, stride=2)
    with pytest.raises(SpecError, match="resolution"):
        ArchSpec(0, stem, ())
    with pytest.raises(SpecError, match="too small"):
        ArchSpec(2, stem, (UIBSpec(8, 3, 3, stride=2), UIBSpec(8, 3, 3, stride=2)))
    with pytest.raises(SpecError, match="query_stride"):
        ArchSpec(20, stem, (MQASpec(8, heads=1, key_dim=8, query_stride=4),))
    with pytest.raises(SpecError, match="blocks\\[0\\]"):
        ArchSpec(32, stem, ("uir_r1_a3_k3_s1_e4_c8",))  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="num_classes"):
        ArchSpec(32, stem, (), num_classes=0)


def test_attention_value_dim_defaults_to_key_dim():
    assert MQASpec(64, key_dim=32).value_dim == 32
    assert MHSASpec(64, key_dim=32, value_dim=16).value_dim == 16
    assert MQASpec(64) != MHSASpec(64)
