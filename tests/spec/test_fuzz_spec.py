"""Fuzzing the spec language: arch and block strings, spec dicts, JSON/TOML spec files. Every input is
either a spec (that round-trips through its canonical string) or a one-line SpecError, never another
exception; the regressions of issue 24 are named tests."""

from __future__ import annotations

import json
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas.errors import SpecError
from nas.spec import (
    MAX_ARCH_CHARS,
    MAX_BLOCKS,
    ArchSpec,
    from_json,
    from_toml,
    load_spec_file,
    parse_arch,
    parse_blocks,
    parse_key,
    spec_from_dict,
    spec_to_dict,
    to_json,
    to_toml,
)
from nas.zoo import ZOO, get_spec

FUZZ = settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
ARCHS = [get_spec(n).arch for n in ZOO]
DSL_CHARS = "resuirmqahdcnkvlgxt_|@0123456789.- \n\t"


def _one_line(exc: BaseException) -> None:
    msg = str(exc)
    assert msg and "\n" not in msg and "\r" not in msg, msg
    assert len(msg) < 2000, len(msg)


def _parse_or_error(text: str) -> ArchSpec | None:
    try:
        arch = parse_arch(text)
    except SpecError as exc:
        _one_line(exc)
        return None
    assert parse_arch(arch.arch) == arch  # a correct result: the canonical string round-trips
    return arch


@FUZZ
@given(st.text(alphabet=DSL_CHARS, max_size=200))
def test_random_text_is_a_spec_or_a_spec_error(text):
    _parse_or_error(text)


@FUZZ
@given(
    st.sampled_from(ARCHS),
    st.lists(st.tuples(st.integers(0, 2000), st.sampled_from(DSL_CHARS + "é\x00\x7f")), max_size=4),
    st.integers(0, 3),
)
def test_mutated_zoo_archs(arch, edits, deletions):
    text = arch
    for pos, ch in edits:
        pos %= len(text) + 1
        text = text[:pos] + ch + text[pos:]
    for _ in range(deletions):
        text = text[: len(text) // 3] + text[len(text) // 3 + 1 :]
    _parse_or_error(text)


@FUZZ
@given(
    st.sampled_from(["cn", "er", "uir", "ds", "dsa", "mqa", "mha", "zz"]),
    st.lists(
        st.tuples(
            st.sampled_from("rakseocdhvqn"),
            st.one_of(
                st.integers(-3, 10**12).map(str),
                st.sampled_from(["", "nan", "inf", "1e400", "9" * 50, "0.5", "e4", "re", "r6", "ge"]),
            ),
        ),
        max_size=9,
    ),
)
def test_block_tokens(kind, tokens):
    text = "_".join([kind, *(letter + value for letter, value in tokens)])
    try:
        blocks = parse_blocks(text)
    except SpecError as exc:
        _one_line(exc)
        return
    assert 1 <= len(blocks) <= 64


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_subnormal=False),
    st.text(max_size=30),
    st.lists(st.text(max_size=30), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


@FUZZ
@given(
    st.sampled_from(list(ZOO)),
    st.sampled_from(["format", "name", "arch", "resolution", "num_classes", "stem", "blocks", "head", "x"]),
    _VALUES,
)
def test_spec_dict_with_one_value_replaced(name, key, value):
    d = spec_to_dict(get_spec(name), name)
    d[key] = value
    try:
        arch = spec_from_dict(d, "fuzz.json")
    except SpecError as exc:
        _one_line(exc)
        return
    assert spec_from_dict(spec_to_dict(arch), "again") == arch


@FUZZ
@given(st.sampled_from(list(ZOO)), st.integers(0, 10**6), st.sampled_from(["json", "toml"]))
def test_truncated_spec_files(name, cut, fmt):
    arch = get_spec(name)
    text = to_json(arch) if fmt == "json" else to_toml(arch)
    text = text[: cut % (len(text) + 1)]
    try:
        got = from_json(text, "f") if fmt == "json" else from_toml(text, "f")
    except SpecError as exc:
        _one_line(exc)
        return
    assert got == arch


@FUZZ
@given(st.text(alphabet="0123456789x@cn_rks", max_size=40))
def test_table_keys(text):
    try:
        parse_key(text)
    except SpecError as exc:
        _one_line(exc)


# ------------------------------------------------------------------------------------------------
# issue 24 regressions
# ------------------------------------------------------------------------------------------------


def test_arch_strings_longer_than_a_file_name_parse():
    for name in ZOO:
        arch = get_spec(name).arch
        assert parse_arch(arch) == get_spec(name)
    assert max(len(a) for a in ARCHS) > 1000


@pytest.mark.parametrize(
    "text, msg",
    [
        ("res224|cn_r1_k3_s2_c32\n|head_cls10", "control character"),
        ("res224|cn_r1_k3_s2_c32|\thead_cls10", "control character"),
        ("res" + "2" * 5000 + "|cn_r1_k3_s2_c32|head_cls10", "res<resolution>"),
        ("res224|cn_r1_k3_s2_c32|head_cls" + "1" * 5000, "unknown token"),
        ("res224|cn_r1_k3_s2_c" + "3" * 5000 + "|head_cls10", "at most 9 digits"),
        ("res224|cn_r1_k3_s2_c32|er_r1_k3_s1_e1" + "0" * 400 + "_c32|head_cls10", "at most 9 digits"),
        ("res２２４|cn_r1_k3_s2_c32|head_cls10", "res<resolution>"),
        ("res224|cn_r1_k3_s2_c32|🙂|head_cls10", "non-ASCII"),
        ("x" * (MAX_ARCH_CHARS + 1), "characters; at most"),
    ],
)
def test_malformed_arch_strings_are_one_line_errors(text, msg):
    with pytest.raises(SpecError, match=msg) as exc:
        parse_arch(text)
    _one_line(exc.value)


def test_a_million_layers_are_refused_at_once():
    text = "res224|cn_r1_k3_s2_c32|" + "|".join(["uir_r64_a3_k3_s1_e4_c32"] * 20_000) + "|head_cls10"
    t0 = time.process_time()
    with pytest.raises(SpecError, match=f"more than {MAX_BLOCKS} body blocks"):
        parse_arch(text)
    assert time.process_time() - t0 < 30  # not a timing claim: a guard against reintroducing the hang
    blocks = {
        "resolution": 224,
        "stem": "cn_r1_k3_s2_c32",
        "head": "head_cls10",
        "blocks": ["uir_r1_a3_k3_s1_e4_c32"] * 3000,
    }
    with pytest.raises(SpecError, match="at most"):
        spec_from_dict(blocks, "big.json")


@pytest.mark.parametrize(
    "content, msg",
    [
        ("[" * 100_000 + "]" * 100_000, "nested deeper"),
        ('{"resolution": ' + "9" * 5000 + "}", "too many digits"),
        ('{"resolution": NaN, "stem": "cn_r1_k3_s2_c8", "blocks": [], "head": "head_cls10"}', "NaN is not a number"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
    ],
)
def test_malformed_spec_files(tmp_path, content, msg):
    p = tmp_path / "s.json"
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(SpecError, match=msg) as exc:
        load_spec_file(p)
    _one_line(exc.value)


@pytest.mark.parametrize("kind", ["fifo", "dir", "devzero", "devnull", "huge"])
def test_spec_files_that_are_not_regular_or_too_big(tmp_path, kind):
    p = tmp_path / "s.json"
    if kind == "fifo":
        os.mkfifo(p)
    elif kind == "dir":
        p.mkdir()
    elif kind == "huge":
        p.write_bytes(b" " * (5 * 2**20))
    else:
        p = "/dev/zero" if kind == "devzero" else "/dev/null"
    with pytest.raises(SpecError, match="regular file|larger than") as exc:
        load_spec_file(p)  # returns at once: a FIFO is never opened
    _one_line(exc.value)


def test_spec_file_round_trip_with_a_long_arch(tmp_path):
    arch = get_spec("mnv4-hybrid-large")
    p = tmp_path / "a.txt"
    p.write_text(arch.arch + "\n")
    assert load_spec_file(p) == arch
    p.write_text(json.dumps({"arch": arch.arch}))
    assert load_spec_file(p) == arch
