from __future__ import annotations

import json

import pytest

from nas.errors import SpecError
from nas.spec import from_json, from_toml, load_spec_file, save_spec, spec_to_dict, to_json, to_toml
from nas.zoo import ZOO, get_spec


@pytest.mark.parametrize("name", list(ZOO))
def test_json_and_toml_round_trip(name):
    spec = get_spec(name)
    assert from_json(to_json(spec, name)) == spec
    assert from_toml(to_toml(spec, name)) == spec


def test_files_round_trip(tmp_path, tiny_arch):
    for suffix in (".json", ".toml"):
        p = save_spec(tiny_arch, tmp_path / f"a{suffix}")
        assert load_spec_file(p) == tiny_arch
    (tmp_path / "a.txt").write_text(tiny_arch.arch + "\n")
    assert load_spec_file(tmp_path / "a.txt") == tiny_arch


def test_arch_only_file(tiny_arch):
    assert from_json(json.dumps({"arch": tiny_arch.arch, "name": "x"})) == tiny_arch


@pytest.mark.parametrize(
    "mutate, msg",
    [
        (lambda d: d.update(colour="red"), "unknown key 'colour'"),
        (lambda d: d.pop("blocks"), "missing key 'blocks'"),
        (lambda d: d.update(resolution="224"), "key 'resolution'"),
        (lambda d: d.update(num_classes=7), "disagrees with head"),
        (lambda d: d["blocks"].__setitem__(0, "uir_r1_a3_k5_s2_e4_c80_zz1"), "key 'blocks[0]'"),
        (lambda d: d.update(arch=d["arch"].replace("c16", "c24", 1)), "key 'arch' disagrees"),
        (lambda d: d.update(format="v0"), "key 'format'"),
        (lambda d: d.update(blocks="uir"), "list of block strings"),
    ],
)
def test_malformed_files(tiny_arch, mutate, msg):
    d = spec_to_dict(tiny_arch)
    mutate(d)
    with pytest.raises(SpecError, match=msg.replace("[", "\\[").replace("]", "\\]")):
        from_json(json.dumps(d), "f.json")


def test_truncated_json_and_missing_file(tmp_path, tiny_arch):
    p = tmp_path / "t.json"
    p.write_text(to_json(tiny_arch)[:40])
    with pytest.raises(SpecError, match="invalid JSON"):
        load_spec_file(p)
    with pytest.raises(SpecError, match="no such spec file"):
        load_spec_file(tmp_path / "missing.json")
    with pytest.raises(SpecError, match="invalid TOML"):
        from_toml("resolution = = 3")
