"""Fuzzing search-space definitions: a space dict with one value replaced (by NaN, inf, a negative
number, a huge integer, a wrong type) is either a space whose samples are members, or a one-line
ConfigError naming the key; the space-TOML regressions of issue 24 are named tests."""

from __future__ import annotations

import copy
import os
import tomllib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiny_spaces import CONV_SPACE

from nas.errors import ConfigError
from nas.space import contains, load_space, load_space_file, sample, space_from_dict

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
BASE = tomllib.loads(CONV_SPACE)
BASE["stages"].append(
    {
        "kind": "uib",
        "stride": 1,
        "channels": [40, 48],
        "depth": [2, 3],
        "attention": {"slots": 2, "heads": 2, "key_dim": 8, "kv_stride": 1},
    }
)


def _leaves(d: object, path: tuple = ()) -> list[tuple]:
    if isinstance(d, dict):
        return [p for k, v in d.items() for p in _leaves(v, (*path, k))]
    if isinstance(d, list) and d and all(isinstance(x, dict) for x in d):
        return [p for i, v in enumerate(d) for p in _leaves(v, (*path, i))]
    return [path]


LEAVES = _leaves(BASE)
_VALUES = st.one_of(
    st.sampled_from(
        [float("nan"), float("inf"), -1, 0, 1, 2, 3, 7, 9, 10**30, -(10**30), "", "a9_k3_e4", "a3_k3_e0", True]
    ),
    st.lists(st.one_of(st.integers(-2, 70), st.sampled_from([float("nan"), 2.5, 5])), max_size=4),
    st.text(max_size=8),
    st.floats(allow_subnormal=False),
)


def _set(d: dict, path: tuple, value: object) -> None:
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(LEAVES), _VALUES), min_size=1, max_size=2))
def test_space_dict_with_values_replaced(edits):
    d = copy.deepcopy(BASE)
    for path, value in edits:
        _set(d, path, value)
    try:
        space = space_from_dict(d, "fuzz.toml")
    except ConfigError as exc:
        assert str(exc).startswith("fuzz.toml: ") and "\n" not in str(exc)
        return
    rng = np.random.default_rng(0)
    for _ in range(3):  # a correct result: an accepted space samples members of itself
        assert contains(space, sample(space, rng))


def test_attention_slots_above_the_stage_depth_are_refused():
    d = copy.deepcopy(BASE)
    d["stages"][-1]["attention"]["slots"] = 3  # depth at most 3: 2 positions (never before the first block)
    with pytest.raises(ConfigError, match=r"stages\[4\]\.attention\.slots: 3 exceeds the 2 MQA position"):
        space_from_dict(d, "s.toml")


@pytest.mark.parametrize("block", ["a7_k7_e4", "a9_k3_e4", "a0_k9_e4"])
def test_a_coarse_kernel_outside_the_fine_kernels_is_refused(block):
    d = copy.deepcopy(BASE)
    d["coarse"] = {"block": block}
    with pytest.raises(ConfigError, match="coarse.block"):
        space_from_dict(d, "s.toml")


@pytest.mark.parametrize(
    "text, msg",
    [
        (CONV_SPACE.replace("expansion = 2", "expansion = nan"), "expansion"),
        (CONV_SPACE.replace("depth = [1, 3]", "depth = [1, " + "9" * 5000 + "]"), "too many digits"),
        (CONV_SPACE + "\nx = " + "[" * 5000 + "]" * 5000, "nested deeper"),
        (CONV_SPACE + '\n[coarse]\nblock = "a' + "3" * 40 + '_k3_e4"\n', "must look like 'a0_k3_e4'"),
    ],
)
def test_malformed_space_files(tmp_path, text, msg):
    p = tmp_path / "s.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=msg):
        load_space_file(p)


@pytest.mark.parametrize("kind", ["fifo", "dir", "devzero", "empty-name"])
def test_space_paths_that_are_not_files(tmp_path, kind):
    p = tmp_path / "s.toml"
    if kind == "fifo":
        os.mkfifo(p)
    elif kind == "dir":
        p.mkdir()
    elif kind == "devzero":
        p = "/dev/zero"
    else:
        p = ""
    with pytest.raises(ConfigError, match="regular file|empty name"):
        load_space(p)


def test_a_crlf_space_file_loads(tmp_path):
    p = tmp_path / "s.toml"
    p.write_bytes(CONV_SPACE.replace("\n", "\r\n").encode())
    assert load_space_file(p).name == "t-conv"
