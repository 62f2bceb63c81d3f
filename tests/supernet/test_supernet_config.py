"""The ``[supernet]`` config section: repo nas.toml equals the built-in defaults; values reach the CLI."""

from __future__ import annotations

from pathlib import Path

from nas.config import Config, SupernetConfig, load_config

ROOT = Path(__file__).resolve().parents[2]


def test_repo_nas_toml_supernet_section_equals_defaults():
    assert load_config(ROOT / "nas.toml").supernet == Config().supernet == SupernetConfig()


def test_supernet_section_is_validated(tmp_path):
    import pytest

    from nas.errors import ConfigError

    p = tmp_path / "c.toml"
    p.write_text("[supernet]\nepochs = 'many'\n")
    with pytest.raises(ConfigError, match="supernet.epochs must be an integer"):
        load_config(p)
    p.write_text("[supernet]\nresolution = 48\nsampler = 'tunas'\n")
    cfg = load_config(p)
    assert cfg.supernet.resolution == 48 and cfg.supernet.sampler == "tunas" and cfg.supernet.epochs == 30
