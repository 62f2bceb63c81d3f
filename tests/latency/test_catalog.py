from __future__ import annotations

import tomllib

import pytest

from nas.config import Config, load_config
from nas.errors import ConfigError, NasError
from nas.latency import get_device, load_catalog
from nas.latency._catalog import (
    MAX_FREE_PARAMS,
    DeviceModel,
    dump_catalog,
    parse_catalog,
    save_device,
)
from nas.latency._published import published_points

PAPER_TARGETS = ["pixel6-cpu", "s23-cpu", "pixel4-dsp", "pixel7-gpu", "s23-gpu", "iphone13-ane", "pixel8-edgetpu"]


def test_shipped_catalog_has_every_target_with_a_fit_report():
    cat = load_catalog()
    assert set(PAPER_TARGETS) | {"host-cpu"} <= set(cat)
    for name in PAPER_TARGETS:
        dev = cat[name]
        assert dev.fit is not None and dev.fit.data == "published"
        assert dev.fit.n == len(published_points(name)) >= 6
        assert dev.fit.loo_mape_pct is not None and dev.fit.loo_mape_pct < 20
        assert len(dev.free) <= MAX_FREE_PARAMS
    assert cat["pixel4-dsp"].unsupported == ("attention", "gelu")
    assert cat["host-cpu"].dtype == "fp32" and cat["pixel7-gpu"].dtype == "fp16" and cat["s23-cpu"].dtype == "int8"


def test_dump_round_trips():
    cat = load_catalog()
    text = dump_catalog(cat)
    tomllib.loads(text)
    again = parse_catalog(text, "x")
    assert again.keys() == cat.keys()
    for name in cat:
        assert again[name].model == cat[name].model  # 6 significant digits are stable
        assert again[name].free == cat[name].free and again[name].fit == cat[name].fit


ENTRY = '[devices.x]\nclass = "cpu"\ndtype = "int8"\nruntime = "r"\n'


@pytest.mark.parametrize(
    "extra, msg",
    [
        ('color = "red"\n', "unknown key 'color'"),
        ("[devices.x.model]\npeak = 3.0\n", "unknown key 'peak'"),
        ("[devices.x.model]\npeak_gmacs = -1.0\n", "peak_gmacs must be > 0"),
        ('unsupported = ["softmax"]\n', "unsupported must be a list"),
        ('free = ["peak_gmacs","bandwidth_gbs","eff_conv","eff_dwconv","op_overhead_ms","fixed_ms"]\n', "at most 5"),
    ],
)
def test_bad_entries_are_one_line_errors(extra, msg):
    with pytest.raises(ConfigError) as exc:
        parse_catalog(ENTRY + extra, "cat.toml")
    assert msg in str(exc.value) and "cat.toml" in str(exc.value) and "\n" not in str(exc.value)


def test_bad_class_and_dtype():
    with pytest.raises(ConfigError, match="class must be one of"):
        parse_catalog(ENTRY.replace('"cpu"', '"fpga"'), "c")
    with pytest.raises(ConfigError, match="dtype must be one of"):
        parse_catalog(ENTRY.replace('"int8"', '"int4"'), "c")


def test_user_adds_a_device_and_unknown_target_error(tables_dir):
    text = (tables_dir / "devices.toml").read_text()
    (tables_dir / "devices.toml").write_text(
        text + '\n[devices.my-phone]\nclass = "cpu"\ndtype = "int8"\nruntime = "tflite"\n'
    )
    dev = get_device("my-phone", tables_dir)
    assert dev.model == DeviceModel() and dev.fit is None
    with pytest.raises(NasError, match="unknown target 'nope'.*devices.nope"):
        get_device("nope", tables_dir)


def test_save_device_writes_the_configured_folder_only(tables_dir):
    from dataclasses import replace

    dev = get_device("s23-gpu", tables_dir)
    save_device(replace(dev, description="changed"), tables_dir)
    assert get_device("s23-gpu", tables_dir).description == "changed"
    assert get_device("s23-gpu").description != "changed"


def test_repo_nas_toml_latency_section_equals_defaults():
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    assert load_config(repo / "nas.toml").latency == Config().latency
