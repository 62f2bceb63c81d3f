"""User tables live in the user's folder, merge over the shipped ones, and never write under the package."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest
from latency_helpers import TINY_CONV, FakeTimer

from nas.errors import ConfigError, NasError
from nas.latency import (
    TimingConfig,
    add_device,
    build_table,
    get_device,
    load_catalog,
    load_table,
    profile_host,
    read_table,
    save_device,
    user_tables_dir,
    write_table,
)
from nas.latency._catalog import dump_catalog, parse_catalog
from nas.latency._table import LatencyTable
from nas.resources import data_dir
from nas.spec import arch_keys, parse_arch

SHIPPED = data_dir("latency_tables")


def _digest() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(SHIPPED.iterdir())}


def test_default_folder_is_the_env_and_writes_never_touch_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("MNV4NAS_TABLES", str(tmp_path / "mine"))
    before = _digest()
    keys = list(dict.fromkeys(arch_keys(parse_arch(TINY_CONV))))
    cfg = TimingConfig(runs=1, sessions=1, warmup=0)
    res = profile_host(keys, cfg=cfg, measure=FakeTimer(), call_ms=0.005)  # tables_dir=None: the user's default
    assert res.path == tmp_path / "mine" / "host-cpu.csv" and user_tables_dir() == tmp_path / "mine"
    build_table(get_device("pixel6-cpu"), ())
    save_device(replace(get_device("s23-gpu"), description="mine"))
    assert (tmp_path / "mine" / "pixel6-cpu.csv").is_file() and (tmp_path / "mine" / "devices.toml").is_file()
    assert _digest() == before  # the shipped tables and catalog are untouched
    with pytest.raises(ConfigError, match="read-only package data") as exc:
        profile_host(keys, cfg=cfg, tables_dir=SHIPPED, measure=FakeTimer(), call_ms=0.005)
    assert "\n" not in str(exc.value)
    with pytest.raises(ConfigError, match="read-only"):
        save_device(get_device("s23-gpu"), SHIPPED)
    assert _digest() == before


def test_user_table_merges_over_the_shipped_one(tables_dir):
    shipped = load_table("pixel6-cpu", tables_dir)
    keys = list(shipped.entry_ms)[:3]
    mine = shipped.df[shipped.df["key"].isin(keys)].copy()
    mine["latency_ms"] = [10.0, 20.0, 30.0]
    write_table(
        LatencyTable({**shipped.meta, "source": "imported", "overhead_ms": "0"}, mine), tables_dir / "pixel6-cpu.csv"
    )
    merged = load_table("pixel6-cpu", tables_dir)
    assert [merged.entry_ms[k] for k in keys] == [10.0, 20.0, 30.0]  # the user's entries win
    other = list(shipped.entry_ms)[10]
    assert merged.entry_ms[other] == pytest.approx(shipped.entry_ms[other])  # shipped fills the rest
    assert len(merged) == len(shipped) and merged.source == "imported+roofline-fit"
    assert merged.overhead_ms == 0 and "3 entries from" in merged.meta["merged"]
    # the user's file holds only what the user wrote
    assert len(read_table(tables_dir / "pixel6-cpu.csv")) == 3


def test_merge_keeps_each_entry_contribution_across_calibrations(tables_dir):
    base = load_table("pixel6-cpu")
    key = next(iter(base.entry_ms))
    row = base.df[base.df["key"] == key].copy()
    row["key"] = row["key"]  # same key: overridden
    user = LatencyTable({**base.meta, "call_ms": "0.01", "context_scale": "2"}, row)
    write_table(user, tables_dir / "pixel6-cpu.csv")
    merged = load_table("pixel6-cpu", tables_dir)
    other = list(base.entry_ms)[5]
    assert merged.context_scale == 2 and merged.entry_ms[other] == pytest.approx(base.entry_ms[other], rel=1e-5)


def test_device_add_round_trip(tables_dir):
    dev, path = add_device("my-phone", "cpu", "int8", "TFLite XNNPACK", tables_dir, unsupported=["gelu"])
    assert path == tables_dir / "devices.toml"
    again = get_device("my-phone", tables_dir)
    assert again == dev and again.unsupported == ("gelu",) and again.model == get_device("pixel6-cpu").model
    catalog = load_catalog(tables_dir)
    assert "pixel8-edgetpu" in catalog and "my-phone" in catalog  # added beside the shipped entries
    assert parse_catalog(dump_catalog(catalog), "x")["my-phone"] == dev
    with pytest.raises(ConfigError, match="exists already"):
        add_device("my-phone", "cpu", "int8", "x", tables_dir)
    with pytest.raises(ConfigError, match="class must be one of"):
        add_device("p2", "fpga", "int8", "x", tables_dir)
    with pytest.raises(ConfigError, match="--like 'nope'"):
        add_device("p3", "gpu", "fp16", "x", tables_dir, like="nope")
    assert "my-phone" not in load_catalog()  # nothing of it reached the shipped catalog


def test_user_catalog_holds_only_the_users_entries(tmp_path):
    d = tmp_path / "t"
    save_device(replace(get_device("s23-gpu"), description="changed"), d)
    own = parse_catalog((d / "devices.toml").read_text(), "own")
    assert list(own) == ["s23-gpu"]
    assert get_device("s23-gpu", d).description == "changed" and "pixel6-cpu" in load_catalog(d)


def test_a_missing_target_names_both_folders(tmp_path):
    with pytest.raises(NasError, match=f"looked in {tmp_path}"):
        load_table("nope", tmp_path)
