"""User-defined space files: valid ones load anywhere a name is accepted; bad ones give one-line errors."""

from __future__ import annotations

import pytest

from nas.errors import ConfigError
from nas.space import load_space

GOOD = """
name = "my-space"
resolution = 128
num_classes = 10
stem = "cn_r1_k3_s2_c16"
head = "head_c256_h512"

[fine]
start_dw = [0, 3]
mid_dw = [3, 5]
expansion = [4]

[[stages]]
kind = "fused"
stride = 2
channels = [24, 32]
depth = [1]

[[stages]]
kind = "uib"
stride = 2
channels = [32, 48]
depth = [1, 2]

[[stages]]
kind = "uib"
stride = 2
channels = [64, 96]
depth = [2, 3]
attention = { slots = 2, heads = 2, key_dim = 32, kv_stride = 2 }
"""


def test_good_user_space(tmp_path):
    p = tmp_path / "my.toml"
    p.write_text(GOOD)
    space = load_space(str(p))
    assert space.name == "my-space" and space.num_classes == 10 and len(space.stages) == 3


@pytest.mark.parametrize(
    "old, new, key, allowed",
    [
        ("resolution = 128", "resolution = 0", "resolution", "positive integer"),
        ("resolution = 128", "resolution = 4", "resolution", "resolution >= 16"),
        ("channels = [32, 48]", "channels = [32, 44]", "stages[1].channels", "multiples of 8"),
        ("channels = [32, 48]", "channels = []", "stages[1].channels", "non-empty list"),
        ("depth = [2, 3]", "depth = []", "stages[2].depth", "non-empty list"),
        ("mid_dw = [3, 5]", "mid_dw = [3, 4]", "fine.mid_dw", "0 (absent), 3, 5, 7, 9"),
        ("expansion = [4]", "expansion = []", "fine.expansion", "non-empty list"),
        ("stride = 2\nchannels = [32, 48]", "stride = 3\nchannels = [32, 48]", "stages[1].stride", "1, 2"),
        ('kind = "fused"', 'kind = "conv"', "stages[0].kind", "fixed, fused, uib"),
        ("num_classes = 10", 'num_classes = 10\ncolour = "red"', "colour", "allowed:"),
        ("key_dim = 32", "key_dim = 32, heads_x = 1", "stages[2].attention.heads_x", "allowed:"),
        ('stem = "cn_r1_k3_s2_c16"', 'stem = "uir_r1_a3_k3_s2_e4_c16"', "stem", "cn block"),
        ('head = "head_c256_h512"', 'head = "head_c256_x512"', "head", "'x512'"),
    ],
)
def test_bad_user_space_one_line_error(tmp_path, old, new, key, allowed):
    assert old in GOOD
    p = tmp_path / "bad.toml"
    p.write_text(GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as exc:
        load_space(str(p))
    msg = str(exc.value)
    assert "\n" not in msg and str(p) in msg and key in msg and allowed in msg, msg


def test_malformed_toml_and_missing_file(tmp_path):
    p = tmp_path / "broken.toml"
    p.write_text("name = ")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_space(str(p))
    with pytest.raises(ConfigError, match="no such search-space file"):
        load_space(str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="unknown search space 'nope'"):
        load_space("nope")


def test_ambiguous_stage_boundary_rejected(tmp_path):
    text = GOOD.replace("stride = 2\nchannels = [64, 96]", "stride = 1\nchannels = [48, 96]")
    p = tmp_path / "amb.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match="ambiguous"):
        load_space(str(p))


def test_space_dict_round_trip_and_stage_tables_are_pinned(tmp_path):
    # supernet checkpoints and few-shot manifests store this dict: its shape must not drift
    from nas.space import STAGE_KINDS, list_spaces, space_from_dict, space_to_dict

    assert list(STAGE_KINDS) == ["fixed", "fused", "uib"]
    for name in list_spaces():
        sp = load_space(name)
        assert space_from_dict(space_to_dict(sp), sp.source) == sp
    p = tmp_path / "kinds.toml"
    p.write_text(
        'name = "kinds"\nresolution = 64\nstem = "cn_r1_k3_s2_c8"\nhead = "head_c16"\n'
        '[[stages]]\nkind = "fixed"\nblocks = ["cn_r1_k1_s1_c8"]\n'
        '[[stages]]\nkind = "fused"\nstride = 2\nchannels = [16]\ndepth = [1, 2]\n'
        '[[stages]]\nkind = "uib"\nstride = 2\nchannels = [24, 32]\ndepth = [2, 3]\n'
        "attention = { slots = 1, heads = 2, key_dim = 8, kv_stride = 2 }\n"
    )
    assert space_to_dict(load_space(p))["stages"] == [
        {"kind": "fixed", "blocks": ["cn_r1_k1_s1_c8"]},
        {"kind": "fused", "stride": 2, "channels": [16], "depth": [1, 2], "kernel": 3, "expansion": 4.0},
        {
            "kind": "uib",
            "stride": 2,
            "channels": [24, 32],
            "depth": [2, 3],
            "attention": {"slots": 1, "heads": 2, "key_dim": 8, "value_dim": 8, "kv_stride": 2, "dw_kernel": 3},
        },
    ]
