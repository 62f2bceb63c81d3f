from __future__ import annotations

import pytest

from nas.errors import SpecError
from nas.spec import MQASpec, UIBSpec
from nas.zoo import PUBLISHED_NAMES, ZOO, get_spec, zoo_names


def test_zoo_has_every_required_model():
    required = {
        "mnv4-conv-small": 224,
        "mnv4-conv-medium": 256,
        "mnv4-conv-large": 384,
        "mnv4-hybrid-medium": 256,
        "mnv4-hybrid-medium-paper": 256,
        "mnv4-hybrid-large": 384,
        "mobilenet-v1": 224,
        "mobilenet-v2-050": 224,
        "mobilenet-v2-100": 224,
        "mobilenet-v2-150": 224,
        "mobilenet-v2-200": 224,
    }
    assert {n: get_spec(n).resolution for n in zoo_names()} == required
    assert set(PUBLISHED_NAMES) <= set(ZOO)


def test_hybrid_medium_variants_differ_as_documented():
    code, paper = get_spec("mnv4-hybrid-medium"), get_spec("mnv4-hybrid-medium-paper")
    assert sum(isinstance(b, MQASpec) for b in code.blocks) == 8 == sum(isinstance(b, MQASpec) for b in paper.blocks)
    assert len(code.blocks) == 31 and len(paper.blocks) == 30
    # code: 2nd block of the 16x16 stage is an FFN e2; paper: ExtraDW 3/3 e4
    assert code.blocks[4] == UIBSpec(160, None, None, 2.0, layer_scale=True)
    assert paper.blocks[4] == UIBSpec(160, 3, 3, 4.0, layer_scale=True)


def test_hybrid_large_uses_gelu_and_layer_scale():
    spec = get_spec("mnv4-hybrid-large")
    assert spec.stem.activation == "gelu" and spec.head.activation == "gelu"
    uibs = [b for b in spec.blocks if isinstance(b, UIBSpec)]
    assert all(b.activation == "gelu" and b.layer_scale for b in uibs)


def test_unknown_model_and_overrides():
    with pytest.raises(SpecError, match="unknown model 'mnv5'"):
        get_spec("mnv5")
    s = get_spec("mnv4-conv-small", num_classes=10, resolution=160)
    assert s.num_classes == 10 and s.resolution == 160 and s.blocks == get_spec("mnv4-conv-small").blocks
