from __future__ import annotations

import re

import pytest

from nas.errors import SpecError
from nas.export import read_timm_lines, timm_lines, to_timm
from nas.spec import parse_arch
from nas.zoo import ZOO, get_spec

# timm's own arch-def of mobilenetv4_conv_medium (timm 1.0.31, repeats expanded)
TIMM_CONV_MEDIUM = [
    ["er_r1_k3_s2_e4_c48"],
    ["uir_r1_a3_k5_s2_e4_c80", "uir_r1_a3_k3_s1_e2_c80"],
    ["uir_r1_a3_k5_s2_e6_c160"]
    + ["uir_r1_a3_k3_s1_e4_c160"] * 2
    + [
        "uir_r1_a3_k5_s1_e4_c160",
        "uir_r1_a3_k3_s1_e4_c160",
        "uir_r1_a3_k0_s1_e4_c160",
        "uir_r1_a0_k0_s1_e2_c160",
        "uir_r1_a3_k0_s1_e4_c160",
    ],
    ["uir_r1_a5_k5_s2_e6_c256", "uir_r1_a5_k5_s1_e4_c256"]
    + ["uir_r1_a3_k5_s1_e4_c256"] * 2
    + ["uir_r1_a0_k0_s1_e4_c256", "uir_r1_a3_k0_s1_e4_c256", "uir_r1_a3_k5_s1_e2_c256", "uir_r1_a5_k5_s1_e4_c256"]
    + ["uir_r1_a0_k0_s1_e4_c256"] * 2
    + ["uir_r1_a5_k0_s1_e2_c256"],
    ["cn_r1_k1_s1_c960"],
]
# The token grammar of timm's _decode_block_str: type, then options each 'noskip'/'skip', 'n<act>' or letters+number.
TIMM_TOKEN = re.compile(r"^(noskip|skip|n(re|r6|hs|sw|mi)|[a-z]+\d+(\.\d+)?)$")


def test_conv_medium_matches_timm_arch_def():
    ta = to_timm(get_spec("mnv4-conv-medium"))
    assert [list(s) for s in ta.stages] == TIMM_CONV_MEDIUM
    assert ta.kwargs["stem_size"] == 32 and ta.kwargs["num_features"] == 1280 and ta.model_class == "MobileNetV3"


@pytest.mark.parametrize("name", list(ZOO))
def test_lines_are_timm_parsable(name):
    text = timm_lines(get_spec(name), name)
    stages = read_timm_lines(text)
    for line in (b for s in stages for b in s):
        kind, *opts = line.split("_")
        assert kind in {"cn", "er", "uir", "mqa", "ds", "dsa", "ir", "mha"}
        assert all(TIMM_TOKEN.match(o) for o in opts), line


def test_hybrid_kwargs():
    ta = to_timm(get_spec("mnv4-hybrid-large"))
    assert ta.kwargs["act_layer"] == "gelu" and ta.kwargs["layer_scale_init_value"] == 1e-5
    assert "mqa_r1_k3_h8_s1_v2_d48_c192" in {b for s in ta.stages for b in s}


def test_inexpressible_specs_are_refused():
    mixed = parse_arch("res32|cn_r1_k3_s2_c8|uir_r1_a3_k3_s1_e4_c8_ls|uir_r1_a3_k3_s1_e4_c8|head_cls10")
    with pytest.raises(SpecError, match="layer scale"):
        to_timm(mixed)
    gelu_block = parse_arch("res32|cn_r1_k3_s2_c8|uir_r1_a3_k3_s1_e4_c8_nge|head_cls10")
    with pytest.raises(SpecError, match="gelu"):
        to_timm(gelu_block)


@pytest.mark.parametrize("name", ["mnv4-conv-small", "mnv4-hybrid-large", "mobilenet-v2-100"])
def test_the_build_snippet_compiles_and_holds_the_arch_def(name):
    """The ``#|`` lines of the text are a Python script that builds the model in timm (checked by hand
    against timm 1.0.31: every zoo model builds, runs and matches our parameter count; timm is no
    test dependency). Here: it compiles, and its ``stages`` literal is the arch-def of the text."""
    import ast

    from nas.cost import count_params
    from nas.export import read_timm_snippet

    arch = get_spec(name)
    text = timm_lines(arch, name)
    code = read_timm_snippet(text)
    tree = ast.parse(code)
    compile(tree, "best.timm.txt", "exec")
    stages = next(n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "stages")
    assert ast.literal_eval(stages) == read_timm_lines(text) == [list(s) for s in to_timm(arch).stages]
    assert f"assert n_params == {count_params(arch)}," in code
    assert f"torch.randn(1, 3, {arch.resolution}, {arch.resolution})" in code
    assert "from timm.models._efficientnet_builder import decode_arch_def" in code
