from __future__ import annotations

import torch

from nas.model import build_model
from nas.spec import parse_arch


def test_space_list_and_show(cli):
    r = cli("space", "list", "--json")
    assert r.code == 0 and {row["name"] for row in r.json()} >= {"mnv4-conv-medium", "mnv4-hybrid-large"}
    r = cli("space", "show", "mnv4-conv-medium")
    assert r.code == 0 and "architectures (10^" in r.out and "mnv4-conv-medium (member)" in r.out
    j = cli("space", "show", "mnv4-conv-medium", "--json").json()
    assert int(j["size"]) > 10**40 and j["reference_member"].endswith("(member)")


def test_space_sample_json_builds_and_runs(cli):
    r = cli("space", "sample", "mnv4-conv-small", "--n", "3", "--seed", "4", "--json")
    assert r.code == 0
    rows = r.json()
    assert len(rows) == 3 and all(set(row) == {"arch", "params", "macs"} for row in rows)
    again = cli("space", "sample", "mnv4-conv-small", "--n", "3", "--seed", "4", "--json").json()
    assert rows == again
    for row in rows:
        arch = parse_arch(row["arch"])
        with torch.no_grad():
            assert build_model(arch).eval()(torch.randn(1, 3, 224, 224)).shape == (1, 1000)


def test_space_sample_stages(cli):
    coarse = cli("space", "sample", "mnv4-hybrid-medium", "--n", "2", "--stage", "coarse", "--json").json()
    assert all("mqa" not in row["arch"] for row in coarse)
    r = cli("space", "sample", "mnv4-hybrid-medium", "--n", "2", "--stage", "fine")
    assert r.code == 0 and "fine stage around the widths and depths of mnv4-hybrid-medium" in r.out


def test_space_errors(cli, tmp_path):
    r = cli("space", "show", "nope")
    assert r.code == 2 and r.err.count("\n") == 1 and "unknown search space 'nope'" in r.err
    p = tmp_path / "bad.toml"
    p.write_text('name = "x"\nresolution = -1\nstem = "cn_r1_k3_s2_c8"\nhead = "head"\nstages = []\n')
    r = cli("space", "sample", str(p))
    assert r.code == 2 and "resolution" in r.err and str(p) in r.err
    r = cli("space", "sample", "mnv4-conv-small", "--stage", "fine", "--coarse", "mnv4-conv-medium")
    assert r.code == 2 and "not choices" in r.err
