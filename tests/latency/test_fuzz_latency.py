"""Fuzzing latency tables, results CSVs, the device catalog and budgets: each is a value in range
(finite, non-negative overheads and scales; predictions finite and positive) or a one-line
ConfigError/NasError naming the file and the field; the issue-24 regressions are named tests."""

from __future__ import annotations

import math
import os
import re
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas.errors import ConfigError, NasError
from nas.latency import load_catalog, load_predictor, read_results, read_table
from nas.resources import data_dir
from nas.units import parse_latency_ms as parse_budget
from nas.zoo import get_spec

FUZZ = settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
SHIPPED = data_dir("latency_tables")
_TABLE = (SHIPPED / "pixel6-cpu.csv").read_text()
_HEAD, _, _BODY = _TABLE.partition("\nkey,")
SMALL_TABLE = _HEAD + "\nkey," + "\n".join(_BODY.split("\n")[:40]) + "\n"
CATALOG = (SHIPPED / "devices.toml").read_text()
NUMBERS = st.one_of(
    st.sampled_from(["nan", "-nan", "inf", "-inf", "-1", "0", "1e309", "-0", "abc", "", "9" * 60, "1,5", "0x10"]),
    st.floats(allow_subnormal=False).map(repr),
    st.integers(-(10**20), 10**20).map(str),
)


def _one_line(exc: BaseException) -> None:
    assert str(exc) and "\n" not in str(exc), str(exc)


@FUZZ
@given(
    st.sampled_from(["overhead_ms", "call_ms", "context_scale", "cache_mib", "cache_ms_per_mib", "threads", "dtype"]),
    NUMBERS,
)
def test_table_metadata(tmp_path_factory, key, value):
    text = re.sub(rf"^# {key}: .*\n", "", SMALL_TABLE, flags=re.M).replace(
        "# created:", f"# {key}: {value}\n# created:", 1
    )
    p = tmp_path_factory.mktemp("t") / "pixel6-cpu.csv"
    p.write_text(text)
    try:
        t = read_table(p)
    except ConfigError as exc:
        _one_line(exc)
        assert key in str(exc) and str(p) in str(exc)
        return
    for v in (t.call_ms, t.overhead_ms, t.cache_ms_per_mib):
        assert math.isfinite(v) and v >= 0
    assert math.isfinite(t.context_scale) and t.context_scale > 0
    assert t.cache_mib >= 0
    assert all(math.isfinite(v) and v > 0 for v in t.entry_ms.values())


@FUZZ
@given(
    st.sampled_from(["in_h", "macs", "weight_bytes", "latency_ms", "std_ms", "n", "kind"]), NUMBERS, st.integers(0, 38)
)
def test_table_cells(tmp_path_factory, column, value, row):
    lines = SMALL_TABLE.split("\n")
    at = next(i for i, line in enumerate(lines) if line.startswith("key,"))
    cols = lines[at].split(",")
    cells = lines[at + 1 + row].split(",")
    cells[cols.index(column)] = f'"{value}"' if "," in value else value
    lines[at + 1 + row] = ",".join(cells)
    p = tmp_path_factory.mktemp("t") / "pixel6-cpu.csv"
    p.write_text("\n".join(lines))
    try:
        t = read_table(p)
    except ConfigError as exc:
        _one_line(exc)
        return
    assert (t.df["in_h"] >= 0).all() and (t.df["weight_bytes"] >= 0).all()


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "cn_r1_k3_s2_c8@32x32x3",
                    "er_r1_k3_s1_e2_c16@16x16x8",
                    "zz@1x1x1",
                    "cn_r1_k3_s2_c8@0x1x1",
                    "__call__",
                    "",
                    "res32|cn_r1_k3_s2_c8|head_cls10",
                ]
            ),
            NUMBERS,
            NUMBERS,
        ),
        max_size=4,
    ),
    st.sampled_from(["key,latency_ms,std_ms", "key,latency_ms", "latency_ms,key,std_ms", "key,latency,std_ms"]),
)
def test_results_csv(tmp_path_factory, rows, header):
    p = tmp_path_factory.mktemp("r") / "results.csv"
    p.write_text(header + "\n" + "".join(f"{k},{a},{b}\n" for k, a, b in rows))
    try:
        _, df = read_results(p)
    except ConfigError as exc:
        _one_line(exc)
        return
    assert (df["latency_ms"] > 0).all() and df["latency_ms"].map(math.isfinite).all()


_CATALOG_FIELDS = [
    ("[devices.pixel6-cpu.model]", k)
    for k in ("peak_gmacs", "bandwidth_gbs", "eff_dwconv", "op_overhead_ms", "fixed_ms")
] + [
    ("[devices.pixel6-cpu]", "ridge_point_ref"),
    ("[devices.pixel6-cpu.fit]", "n"),
    ("[devices.pixel6-cpu.fit]", "mape_pct"),
    ("[devices.pixel6-cpu.fit]", "loo_mape_pct"),
]


def _catalog_with(section: str, key: str, value: str) -> str:
    head, _, rest = CATALOG.partition(section + "\n")
    block, sep, tail = rest.partition("\n\n")
    block = re.sub(rf"^{key} = .*$", f"{key} = {value}", block, flags=re.M)
    return head + section + "\n" + block + sep + tail


@FUZZ
@given(st.sampled_from(_CATALOG_FIELDS), st.one_of(NUMBERS, st.sampled_from(['"abc"', "[]", "{}", "true", '"1"'])))
def test_catalog_values(tmp_path_factory, field, value):
    d = tmp_path_factory.mktemp("c")
    (d / "devices.toml").write_text(_catalog_with(*field, value))
    try:
        devices = load_catalog(d)
    except ConfigError as exc:
        _one_line(exc)
        return
    dev = devices["pixel6-cpu"]
    assert all(
        math.isfinite(getattr(dev.model, k)) and getattr(dev.model, k) >= 0 for k in dev.model.__dataclass_fields__
    )
    assert dev.ridge_point_ref is None or 0 < dev.ridge_point_ref < math.inf
    assert dev.fit is None or (dev.fit.n >= 0 and math.isfinite(dev.fit.mape_pct))


@FUZZ
@given(st.one_of(st.text(alphabet="0123456789.eE+-nafi msuµ", max_size=12), NUMBERS.map(lambda v: v + "ms")))
def test_budgets(text):
    try:
        ms = parse_budget(text)
    except NasError as exc:
        _one_line(exc)
        return
    assert math.isfinite(ms) and ms > 0


# ------------------------------------------------------------------------------------------------
# issue 24 regressions
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, value",
    [
        ("overhead_ms", "nan"),
        ("overhead_ms", "-1"),
        ("overhead_ms", "inf"),
        ("context_scale", "0"),
        ("context_scale", "-1"),
        ("cache_ms_per_mib", "-1"),
        ("cache_mib", "nan"),
        ("call_ms", "inf"),
        ("threads", "abc"),
        ("dtype", "int9"),
    ],
)
def test_nonsense_table_metadata_is_refused(tables_dir, key, value):
    text = re.sub(rf"^# {key}: .*$", f"# {key}: {value}", _TABLE, flags=re.M)
    if f"# {key}: {value}" not in text:
        text = text.replace("# created:", f"# {key}: {value}\n# created:", 1)
    (tables_dir / "pixel6-cpu.csv").write_text(text)
    with pytest.raises(ConfigError, match=f"metadata '{key}'") as exc:
        load_predictor("pixel6-cpu", tables_dir).predict_archs([get_spec("mnv4-conv-small")])
    _one_line(exc.value)


def test_a_search_table_with_a_negative_overhead_is_refused_before_it_can_mislead(tables_dir):
    # issue 24: such a table reported a 1.58 GMAC model at 0.001 ms "within" a 3 ms budget
    (tables_dir / "pixel6-cpu.csv").write_text(re.sub(r"^# overhead_ms: .*$", "# overhead_ms: -5", _TABLE, flags=re.M))
    with pytest.raises(ConfigError, match="overhead_ms"):
        load_predictor("pixel6-cpu", tables_dir)


@pytest.mark.parametrize("kind", ["binary", "nonutf8", "fifo", "dir"])
def test_unreadable_tables(tables_dir, kind):
    p = tables_dir / "pixel6-cpu.csv"
    if kind == "binary":
        p.write_bytes(bytes(range(256)) * 64)
    elif kind == "nonutf8":
        p.write_bytes(b"\xff\xfe" + _TABLE.encode())
    elif kind == "fifo":
        os.mkfifo(p)  # refused, not skipped for the shipped table, and never opened
    else:
        p.mkdir()
    with pytest.raises(ConfigError, match="latency table") as exc:
        load_predictor("pixel6-cpu", tables_dir)
    _one_line(exc.value)


@pytest.mark.parametrize("kind", ["fifo", "dir", "binary", "deep", "fit-n-abc", "fit-mape-nan", "ridge-nan"])
def test_bad_catalogs(tables_dir, kind):
    p = tables_dir / "devices.toml"
    p.unlink()
    if kind == "fifo":
        os.mkfifo(p)
    elif kind == "dir":
        p.mkdir()
    elif kind == "binary":
        p.write_bytes(bytes(range(256)) * 8)
    elif kind == "deep":
        p.write_text("x = " + "[" * 100_000 + "]" * 100_000)
    else:
        section, key, value = {
            "fit-n-abc": ("[devices.pixel6-cpu.fit]", "n", '"abc"'),
            "fit-mape-nan": ("[devices.pixel6-cpu.fit]", "mape_pct", "nan"),
            "ridge-nan": ("[devices.pixel6-cpu]", "ridge_point_ref", "nan"),
        }[kind]
        p.write_text(_catalog_with(section, key, value))
    with pytest.raises(ConfigError) as exc:
        load_catalog(tables_dir)
    _one_line(exc.value)


def test_a_tables_dir_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "tables"
    f.write_text("not a folder")
    with pytest.raises(ConfigError, match="tables_dir"):
        load_catalog(f)


def test_integer_latencies_are_numbers(tmp_path):
    from nas.latency import read_model_latencies

    p = tmp_path / "models.csv"
    p.write_text("model_or_spec,latency_ms\nmnv4-conv-small,2\n" + f"{get_spec('mnv4-hybrid-large').arch},7.5\n")
    pairs = read_model_latencies(
        p, lambda s: (get_spec(s), s) if s.startswith("mnv4") else (get_spec("mnv4-hybrid-large"), "arch")
    )
    assert [ms for _, _, ms in pairs] == [2.0, 7.5]


def test_copying_the_shipped_catalog_still_loads(tmp_path):
    shutil.copy(SHIPPED / "devices.toml", tmp_path / "devices.toml")
    assert "pixel6-cpu" in load_catalog(tmp_path)


def test_a_row_with_more_cells_than_the_header_is_refused_not_shifted(tmp_path):
    # pandas reads such a row's first cell as an index: every column would shift by one, silently
    p = tmp_path / "results.csv"
    p.write_text("key,latency_ms\ncn_r1_k3_s2_c8@32x32x3,1,5\ner_r1_k3_s1_e2_c16@16x16x8,2\n")
    with pytest.raises(ConfigError, match="more cells than the header"):
        read_results(p)
