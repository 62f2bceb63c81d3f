"""Golden parameter counts and MACs, and the cost model checked against torch's FlopCounterMode."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from nas.cost import cost_table, count_macs, count_params, layer_costs, ops_of, total_bytes
from nas.errors import SpecError
from nas.model import build_model
from nas.zoo import get_spec

# timm 1.0.31 parameter counts (../shared/reference/reference_counts.csv) and MACs at native resolution.
GOLDEN = {
    "mnv4-conv-small": (3_774_024, 186_005_568),
    "mnv4-conv-medium": (9_715_512, 1_080_244_224),
    "mnv4-conv-large": (32_590_864, 6_376_220_672),
    "mnv4-hybrid-medium": (11_074_648, 1_271_183_360),
    "mnv4-hybrid-large": (37_764_624, 7_711_877_120),
    "mnv4-hybrid-medium-paper": (11_170_008, 1_296_988_160),
    "mobilenet-v1": (4_231_976, 568_740_352),
    "mobilenet-v2-050": (1_968_680, 97_131_840),
    "mobilenet-v2-100": (3_504_872, 300_774_272),
    "mobilenet-v2-150": (6_858_152, 672_832_704),
    "mobilenet-v2-200": (11_258_088, 1_137_428_224),
}
# The reference's MACs (G), to 3 decimals; ours must be within 1%.
REFERENCE_GMACS = {
    "mnv4-conv-small": 0.186,
    "mnv4-conv-medium": 1.080,
    "mnv4-conv-large": 6.376,
    "mnv4-hybrid-medium": 1.271,
    "mnv4-hybrid-large": 7.712,
}


@pytest.mark.parametrize("name", list(GOLDEN))
def test_golden_counts(name):
    spec = get_spec(name)
    params, macs = GOLDEN[name]
    assert count_params(spec) == params
    assert count_macs(spec) == macs


@pytest.mark.parametrize("name", list(REFERENCE_GMACS))
def test_reference_macs_within_1pct(name):
    assert abs(count_macs(get_spec(name)) / 1e9 - REFERENCE_GMACS[name]) / REFERENCE_GMACS[name] < 0.01


@pytest.mark.parametrize("name", ["mnv4-conv-small", "mnv4-hybrid-medium", "mobilenet-v2-050", "mobilenet-v1"])
def test_cost_matches_built_model_and_flop_counter(name):
    spec = get_spec(name, resolution=128)
    model = build_model(spec).eval()
    assert sum(p.numel() for p in model.parameters()) == count_params(spec)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, 128, 128))
    assert counter.get_total_flops() == 2 * count_macs(spec)


def test_tiny_arch_every_kind_matches_flop_counter(tiny_arch):
    model = build_model(tiny_arch).eval()
    assert sum(p.numel() for p in model.parameters()) == count_params(tiny_arch)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, 32, 32))
    assert counter.get_total_flops() == 2 * count_macs(tiny_arch)


def test_per_layer_costs_and_bytes():
    spec = get_spec("mnv4-conv-small")
    costs = layer_costs(spec)
    assert len(costs) == len(spec.blocks) + 2  # stem + blocks + head
    assert sum(c.params for c in costs) == count_params(spec)
    # stem 3x3 s2 conv 3->32 at 224: 112*112*32*27 MACs, 864 weights + BN
    assert costs[0].macs == 112 * 112 * 32 * 27 and costs[0].params == 864 + 64
    ops = ops_of(spec)
    int8, fp16, fp32 = (total_bytes(ops, d) for d in ("int8", "fp16", "fp32"))
    assert fp32 == 4 * int8 and fp16 == 2 * int8
    table = cost_table(spec, "int8")
    assert list(table.columns) == [
        "index",
        "block",
        "in_shape",
        "out_shape",
        "params",
        "macs",
        "weight_bytes",
        "act_bytes",
    ]
    assert int(table["macs"].sum()) == count_macs(spec)
    with pytest.raises(SpecError, match="dtype"):
        costs[0].weight_bytes("bf8")


def test_gelu_costs_memory_but_relu_is_fused():
    relu = get_spec("mnv4-conv-large")
    ops = {o.name for o in ops_of(relu)}
    assert "act_exp" not in ops
    gelu_ops = [o for o in ops_of(get_spec("mnv4-hybrid-large")) if o.name == "act_exp"]
    assert gelu_ops and all(o.op_class == "elementwise" and o.macs == 0 for o in gelu_ops)
