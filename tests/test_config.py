from __future__ import annotations

import pytest

from nas.cli import main
from nas.config import Config, load_config
from nas.errors import ConfigError


def test_defaults_when_no_file(tmp_path):
    cfg = load_config(cwd=tmp_path)
    assert cfg == Config() and cfg.source == "built-in defaults"
    assert cfg.project.output_dir == "results" and cfg.search.target == "pixel8-edgetpu"


def test_cwd_file_and_explicit_path(tmp_path):
    (tmp_path / "nas.toml").write_text('[project]\nseed = 7\n[search]\nbudget = "2ms"\n')
    cfg = load_config(cwd=tmp_path)
    assert cfg.project.seed == 7 and cfg.search.budget == "2ms" and cfg.project.output_dir == "results"
    other = tmp_path / "other.toml"
    other.write_text('[project]\noutput_dir = "runs"\n')
    assert load_config(other).project.output_dir == "runs"


@pytest.mark.parametrize(
    "text, msg",
    [
        ("[project]\nsede = 1\n", "unknown key project.sede"),
        ("[proj]\nseed = 1\n", "unknown section [proj]"),
        ("[project]\nseed = 'one'\n", "project.seed must be an integer"),
        ("[project\nseed = 1\n", "invalid TOML"),
        ("project = 3\n", "[project] must be a table"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path, text, msg):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert str(p) in str(exc.value) and msg in str(exc.value)


def test_repo_nas_toml_equals_builtin_defaults():
    from dataclasses import replace
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    cfg = load_config(repo / "nas.toml")
    assert cfg == replace(Config(), source=cfg.source)  # every section, every key


def test_cli_reports_bad_config(tmp_path, capsys):
    p = tmp_path / "c.toml"
    p.write_text("[project]\nfoo = 1\n")
    assert main(["--config", str(p), "zoo"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown key project.foo" in err and str(p) in err
