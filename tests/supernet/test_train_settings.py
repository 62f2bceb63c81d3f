"""``train_supernet_from_settings``: the ``supernet train`` workflow as a library call (options over
nas.toml's defaults, checks before anything loads, the reporter's calls, the summary)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nas.config import Config, SupernetConfig
from nas.errors import NasError
from nas.supernet import SupernetTrainSettings, train_supernet_from_settings


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def note(self, text: str) -> None:
        self.calls.append(("note", text))

    def start(self, checkpoint: Path) -> None:
        self.calls.append(("start", checkpoint))

    def stop(self) -> None:
        self.calls.append(("stop", None))

    def shot(self, k: int, n: int, label: str, checkpoint: Path) -> None:
        self.calls.append(("shot", label))

    def step(self, s: dict[str, Any]) -> None:
        self.calls.append(("step", s["step"]))

    def epoch(self, h: dict[str, Any]) -> None:
        self.calls.append(("epoch", h["epoch"]))


def _config(space: Path, tmp_path: Path) -> Config:
    sc = SupernetConfig(space=str(space), data="builtin:12", epochs=1, batch_size=20, checkpoint=str(tmp_path / "d.pt"))
    return Config(supernet=sc)


def test_defaults_come_from_the_config_and_the_reporter_hears_everything(conv_space_path, tmp_path):
    rec = Recorder()
    out = train_supernet_from_settings(SupernetTrainSettings(max_steps=2), _config(conv_space_path, tmp_path), rec)
    assert out.checkpoint == tmp_path / "d.pt" and out.checkpoint.exists() and not out.coarse
    kinds = [k for k, _ in rec.calls]
    assert kinds[:3] == ["note", "note", "start"] and kinds[-2:] == ["epoch", "stop"] and kinds.count("step") == 2
    assert rec.calls[0][1].startswith("data: builtin:12") and "checkpoint " + str(tmp_path / "d.pt") in rec.calls[1][1]
    s = out.summary()
    assert s["checkpoint"] == str(tmp_path / "d.pt") and s["epochs_done"] == 1 and s["resumed_from_epoch"] == 0


@pytest.mark.parametrize(
    "kw, msg",
    [
        ({"target": "pixel8-edgetpu"}, "--target/--budget apply to --sampler tunas"),
        ({"out": "x.json"}, "names a few-shot manifest; add --split DECISION"),
        ({"split": "stage1.channels", "sampler": "tunas"}, "few-shot supernets train with --sampler sandwich"),
        ({"threads": 0}, "--threads must be at least 1"),
        ({"phase": "fine"}, "--phase must be one of joint, coarse"),
    ],
)
def test_bad_settings_fail_before_anything_starts(conv_space_path, tmp_path, kw, msg):
    rec = Recorder()
    if "out" in kw:
        kw = {**kw, "out": str(tmp_path / kw["out"])}
    with pytest.raises(NasError, match=msg):
        train_supernet_from_settings(SupernetTrainSettings(**kw), _config(conv_space_path, tmp_path), rec)
    assert rec.calls == [] and not any(tmp_path.iterdir())
