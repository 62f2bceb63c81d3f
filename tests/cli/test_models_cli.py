from __future__ import annotations

import json

import onnxruntime as ort
import pytest

from nas.export import read_timm_lines
from nas.spec import from_toml, to_json
from nas.zoo import get_spec

EXACT = {
    "mnv4-conv-small": 3_774_024,
    "mnv4-conv-medium": 9_715_512,
    "mnv4-conv-large": 32_590_864,
    "mnv4-hybrid-medium": 11_074_648,
    "mnv4-hybrid-large": 37_764_624,
}


def test_zoo_json_through_console_script(console_script):
    r = console_script("zoo", "--json")
    assert r.code == 0, r.err
    rows = {row["name"]: row for row in json.loads(r.out)}
    for name, params in EXACT.items():
        assert rows[name]["params"] == params
        assert {"name", "resolution", "params", "macs", "arch"} <= set(rows[name])
    assert rows["mnv4-conv-medium"]["resolution"] == 256


def test_zoo_table(cli):
    r = cli("zoo")
    assert r.code == 0 and "mnv4-conv-small" in r.out and "3,774,024" in r.out


def test_show_table_and_json(cli):
    r = cli("show", "mnv4-conv-small")
    assert r.code == 0
    assert "ExtraDW" in r.out and "28x28x64" in r.out and "Head" in r.out
    j = cli("show", "mnv4-hybrid-medium", "--json").json()
    assert j["params"] == 11_074_648
    assert any(layer["block"] == "MobileMQA" for layer in j["layers"])


def test_export_text_formats(cli, tmp_path):
    r = cli("export", "mnv4-conv-small", "--format", "toml", "--output", str(tmp_path / "s.toml"))
    assert r.code == 0
    assert from_toml((tmp_path / "s.toml").read_text()) == get_spec("mnv4-conv-small")
    r = cli("export", "mnv4-conv-small", "--format", "json", "--output", "-")
    assert json.loads(r.out)["arch"] == get_spec("mnv4-conv-small").arch
    r = cli("export", str(tmp_path / "s.toml"), "--format", "timm")
    assert r.code == 0 and read_timm_lines(r.out)[0] == ["cn_r1_k3_s2_c32", "cn_r1_k1_s1_c32"]


@pytest.mark.slow
def test_export_onnx_runs_in_onnxruntime(console_script, tmp_path):
    out = tmp_path / "m.onnx"
    r = console_script("export", "mnv4-conv-small", "--format", "onnx", "--output", str(out))
    assert r.code == 0, r.err
    assert "max |ort - torch|" in r.out
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape == [1, 3, 224, 224]


def _one_line_error(r, code=2):
    assert r.code == code
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mnv4-nas: error:"), r.err
    assert "Traceback" not in r.err
    return lines[0]


@pytest.mark.parametrize(
    "arch, needle",
    [
        ("res224|cn_r1_k3_s2_c32|uir_r1_a3_k5_s2_e4_x80|head_cls10", "'x80'"),
        ("res224|cn_r1_k3_s2_c32|uir_r1_a3_k5_s2_e4_c-80|head_cls10", "'c-80'"),
        ("res224|cn_r1_k3_s3_c32|head_cls10", "stride must be one of 1, 2"),
        ("res224|cn_r1_k3_s2_c32_nswish|head_cls10", "'nswish'"),
    ],
)
def test_malformed_specs_give_one_line_errors(cli, tmp_path, arch, needle):
    f = tmp_path / "bad.json"
    f.write_text(json.dumps({"arch": arch}))
    for cmd in (("show", str(f)), ("export", str(f), "--format", "json")):
        assert needle in _one_line_error(cli(*cmd))


def test_truncated_json_and_unknown_activation_file(cli, tmp_path, tiny_arch):
    f = tmp_path / "t.json"
    f.write_text(to_json(tiny_arch)[:50])
    assert "invalid JSON" in _one_line_error(cli("show", str(f)))
    g = tmp_path / "g.toml"
    g.write_text('resolution = 32\nstem = "cn_r1_k3_s2_c8_nmish"\nblocks = []\nhead = "head_cls10"\n')
    assert "'nmish'" in _one_line_error(cli("export", str(g), "--format", "json"))


def test_usage_errors(console_script, cli):
    assert "No such command" in _one_line_error(console_script("frobnicate"))
    assert "'--format'" in _one_line_error(cli("export", "mnv4-conv-small", "--format", "xml"))
    assert "--output PATH is required" in _one_line_error(cli("export", "mnv4-conv-small", "--format", "onnx"))
    assert "neither a zoo model" in _one_line_error(cli("show", "mnv9"))
    assert "no such file" in _one_line_error(cli("show", "missing.json"))
