from __future__ import annotations

import math

import pandas as pd
import pytest

from nas.errors import ConfigError, NasError
from nas.latency import load_table, read_table, write_table
from nas.latency._keys import key_columns, zoo_keys
from nas.latency._table import COLUMNS, TableAppender, make_row, new_table
from nas.spec import arch_keys
from nas.zoo import get_spec

PAPER_TARGETS = ["pixel6-cpu", "s23-cpu", "pixel4-dsp", "pixel7-gpu", "s23-gpu", "iphone13-ane", "pixel8-edgetpu"]


def test_typed_columns_of_keys():
    c = key_columns("uir_r1_a3_k5_s2_e4_c80@64x64x48")
    assert c["kind"] == "uir" and (c["in_h"], c["in_w"], c["in_c"], c["out_c"]) == (64, 64, 48, 80)
    assert (c["stride"], c["start_dw_kernel"], c["mid_dw_kernel"], c["expanded_c"]) == (2, 3, 5, 192)
    assert c["stride_on"] == "mid" and c["activation"] == "relu" and c["residual"] is False
    m = key_columns("mqa_r1_k3_h4_s1_v2_d64_c160_ls@16x16x160")
    assert (m["kind"], m["heads"], m["key_dim"], m["value_dim"], m["kv_stride"], m["kernel"]) == (
        "mqa",
        4,
        64,
        64,
        2,
        3,
    )
    assert m["layer_scale"] is True and m["residual"] is True
    h = key_columns("head_c960_h1280_cls1000_nge@7x7x128")
    assert (h["kind"], h["expanded_c"], h["hidden_c"], h["out_c"], h["activation"]) == ("head", 960, 1280, 1000, "gelu")


def test_round_trip_and_metadata(tmp_path):
    keys = list(dict.fromkeys(arch_keys(get_spec("mnv4-conv-small"))))
    rows = [make_row(k, "fp32", 0.1 + i / 10, 0.01, 30) for i, k in enumerate(keys)]
    t = new_table(
        {"target": "t", "source": "profiled", "dtype": "fp32", "call_ms": "0.005", "overhead_ms": "0.2"}, rows
    )
    p = write_table(t, tmp_path / "t.csv")
    text = p.read_text()
    assert text.startswith("# mnv4-nas latency table\n# schema: 1\n# target: t\n# source: profiled")
    back = read_table(p)
    assert list(back.df.columns) == list(COLUMNS) and len(back) == len(keys)
    assert back.call_ms == 0.005 and back.overhead_ms == 0.2 and back.source == "profiled"
    assert back.entry_ms[keys[0]] == pytest.approx(0.1 - 0.005)
    # pandas reads the file directly too (comment lines skipped)
    df = pd.read_csv(p, comment="#")
    assert set(df["key"]) == set(keys)


def test_partial_last_line_is_ignored_and_repaired(tmp_path):
    p = tmp_path / "t.csv"
    keys = zoo_keys(["mobilenet-v2-050"])[:3]
    with TableAppender(p, {"target": "t", "source": "profiled"}) as out:
        out.append(make_row(keys[0], "fp32", 0.5))
        out.append(make_row(keys[1], "fp32", 0.7))
    with open(p, "a") as fh:  # a kill -9 in the middle of a write
        fh.write(keys[2] + ",uir,56,56")
    t = read_table(p)
    assert list(t.entry_ms) == keys[:2] or set(t.entry_ms) == set(keys[:2])
    with TableAppender(p, {"target": "t", "source": "profiled"}) as out:
        out.append(make_row(keys[2], "fp32", 0.9))
    assert set(read_table(p).entry_ms) == set(keys)
    assert p.read_text().count(keys[2]) == 1


@pytest.mark.parametrize(
    "mutate, msg",
    [
        (lambda s: s.replace("# schema: 1", "# schema: 9"), "schema must be 1"),
        (lambda s: s.replace("# source: profiled", "# source: guessed"), "source must be one of"),
        (lambda s: s.replace(",0.5,", ",-0.5,"), "must be a positive number"),
        (lambda s: s.replace(",0.5,", ",nan,"), "must be a positive number"),
    ],
)
def test_bad_tables_are_rejected(tmp_path, mutate, msg):
    key = zoo_keys(["mobilenet-v1"])[0]
    p = write_table(
        new_table({"target": "t", "source": "profiled"}, [make_row(key, "fp32", 0.5, 0.1, 3)]), tmp_path / "t.csv"
    )
    p.write_text(mutate(p.read_text()))
    with pytest.raises(ConfigError, match=msg):
        read_table(p)


def _coerced_only(path):
    """What read_table gives when every numeric column is coerced from its strings (no C-reader hint)."""
    from nas.latency._table import _check_rows, _coerce, parse_table_text

    _, df = parse_table_text(path.read_text(), str(path))
    return _coerce(df, _check_rows(df, str(path)))


@pytest.mark.parametrize(
    "cell_from, cell_to",
    [
        (",3\n", ", 3\n"),  # an integer with a space
        (",3\n", ",\n"),  # an empty count
        (",0.1,", ",nan,"),  # std_ms written as nan
        (",0.1,", ", ,"),  # std_ms blank but for a space
        (",3\n", ",3.0\n"),  # a whole number written as a float
        (",3\n", ",1e400\n"),  # a count that overflows
        (",3\n", ",12345678901234567890123\n"),  # too many digits
        (",3\n", ",three\n"),
        (",3\n", ",nan\n"),
        (",3\n", ",-0\n"),
        (",0.5,", ",0x10,"),
    ],
)
def test_the_fast_number_reader_agrees_with_coercing_the_strings(tmp_path, cell_from, cell_to):
    """read_table parses numbers with pandas' C reader and falls back to coercing strings where a cell
    is odd: same table, or the same one-line error naming the cell, either way."""
    keys = zoo_keys(["mobilenet-v1"])[:2]
    p = write_table(
        new_table({"target": "t", "source": "profiled"}, [make_row(k, "fp32", 0.5, 0.1, 3) for k in keys]),
        tmp_path / "t.csv",
    )
    p.write_text(p.read_text().replace(cell_from, cell_to, 1))
    try:
        expected = _coerced_only(p)
    except ConfigError as exc:
        with pytest.raises(ConfigError) as got:
            read_table(p)
        assert str(got.value) == str(exc)
    else:
        pd.testing.assert_frame_equal(read_table(p).df, expected)


def test_duplicate_keys_rejected():
    key = zoo_keys(["mobilenet-v1"])[0]
    with pytest.raises(ConfigError, match="duplicate key"):
        new_table({"target": "t", "source": "imported"}, [make_row(key, "int8", 1.0), make_row(key, "int8", 2.0)])


def test_missing_table_names_the_build_command(tmp_path):
    with pytest.raises(NasError, match="latency build --target my-dev"):
        load_table("my-dev", tmp_path)


@pytest.mark.parametrize("target", PAPER_TARGETS)
def test_shipped_tables_cover_zoo_and_spaces(target):
    t = load_table(target)
    assert t.source == "roofline-fit" and t.dtype in ("int8", "fp16")
    assert set(t.spaces) == {
        "mnv4-conv-small",
        "mnv4-conv-medium",
        "mnv4-conv-large",
        "mnv4-hybrid-medium",
        "mnv4-hybrid-large",
    }
    assert math.isclose(t.overhead_ms, t.meta_float("overhead_ms"))
    kinds = set(t.blocks["kind"])
    if target == "pixel4-dsp":
        assert "mqa" not in kinds and not (t.blocks["activation"] == "gelu").any()
    else:
        assert "mqa" in kinds
        assert set(zoo_keys()) <= set(t.entry_ms)


def test_a_shipped_table_finds_its_space_file_from_any_folder(tmp_path, monkeypatch):
    """The INT8 host table names `benchmarks/int8_space.toml` of the checkout it was profiled in:
    validation and calibration must find it whatever the current folder."""
    from pathlib import Path

    from nas.latency import load_table

    monkeypatch.chdir(tmp_path)
    spaces = load_table("host-cpu-tflite-int8").spaces
    assert spaces and all(Path(s).is_file() for s in spaces)
    assert load_table("pixel6-cpu").spaces == [
        s for s in load_table("pixel6-cpu").meta.get("spaces", "").split(",") if s
    ]
