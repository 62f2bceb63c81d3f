"""Project configuration: built-in defaults, overridden by ``./nas.toml`` or ``--config PATH``.

Each section is a frozen dataclass; the loader checks every key against it, so a typo, a wrong
type or a value out of range (a negative seed, 0 trials, a NaN learning rate) is a one-line
:class:`~nas.errors.ConfigError` naming the file and the key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from nas.errors import ConfigError
from nas.inputs import as_error, check_finite, check_int, check_seed, path_exists, read_toml

DEFAULT_CONFIG_NAME = "nas.toml"
#: Largest config file read.
MAX_CONFIG_BYTES = 2**20


@dataclass(frozen=True)
class ProjectConfig:
    """``[project]``: where results go and the default seed."""

    output_dir: str = "results"
    seed: int = 0


@dataclass(frozen=True)
class SearchConfig:
    """``[search]``: defaults of ``mnv4-nas search``."""

    target: str = "pixel8-edgetpu"
    budget: str = "4ms"
    estimator: str = "zen"
    coarse_estimator: str = ""  # "" = ``estimator`` scores both stages; used by two-stage searches only
    coarse_trials: int = 40
    fine_trials: int = 60
    trials: int = 100
    tunas_coarse_steps: int = 200
    tunas_fine_steps: int = 300
    tunas_steps: int = 500


@dataclass(frozen=True)
class LatencyConfig:
    """``[latency]``: where latency tables live and how ``mnv4-nas latency profile/validate`` time graphs."""

    tables_dir: str = ""  # the user's tables (merged over the shipped ones); "" = $MNV4NAS_TABLES or ~/.local/share/…
    threads: int = 1
    runs: int = 30
    sessions: int = 3
    warmup: int = 5
    flush_mib: float = 4.0  # memory written before each timed run of a single layer (caches as inside a model)
    guard: float = 1.15  # re-time a session when a reference graph ran this much slower than its best (0 = off)


@dataclass(frozen=True)
class SupernetConfig:
    """``[supernet]``: defaults of ``mnv4-nas supernet train``."""

    space: str = "mnv4-conv-small"
    data: str = "builtin"
    resolution: int = 32
    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.002
    sampler: str = "sandwich"
    checkpoint: str = "supernet.pt"


@dataclass(frozen=True)
class TrainingConfig:
    """``[train]``: defaults of ``mnv4-nas train`` (the recipe; see ``nas.train.Recipe``)."""

    data: str = "builtin"
    resolution: int = 32
    epochs: int = 30
    batch_size: int = 128
    optimizer: str = "adamw"
    lr: float = 0.002
    weight_decay: float = 0.01
    warmup: float = 0.025  # fraction of the training steps with a linear learning-rate ramp
    label_smoothing: float = 0.1
    grad_clip: float = 5.0  # 0 = off
    ema: bool = True
    ema_decay: float = 0.9998
    aug: str = "crop-flip"
    amp: str = "auto"


@dataclass(frozen=True)
class Config:
    """All sections. ``source`` says where the values came from (a path or ``built-in defaults``)."""

    project: ProjectConfig = field(default_factory=ProjectConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    supernet: SupernetConfig = field(default_factory=SupernetConfig)
    train: TrainingConfig = field(default_factory=TrainingConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    source: str = "built-in defaults"


def _type_ok(default: Any, value: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, (list, tuple)):
        return isinstance(value, list)
    return True


def _type_name(default: Any) -> str:
    for t, name in ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string")):
        if isinstance(default, t):
            return name
    return "a list" if isinstance(default, (list, tuple)) else type(default).__name__


def _non_empty(value: str, name: str) -> str:
    if not value.strip():
        raise ConfigError(f"{name} must not be empty")
    return value


_positive = partial(check_int, lo=1)
#: Range of each value that has one (``section.key`` → check(value, name)); "" and 0 never mean "default".
_RULES: dict[str, Callable[[Any, str], object]] = {
    "project.output_dir": _non_empty,
    "project.seed": check_seed,
    "search.target": _non_empty,
    "search.budget": _non_empty,
    "search.estimator": _non_empty,
    **{
        f"search.{k}": _positive
        for k in ("trials", "coarse_trials", "fine_trials", "tunas_steps", "tunas_coarse_steps", "tunas_fine_steps")
    },
    "latency.threads": _positive,
    "latency.runs": _positive,
    "latency.sessions": _positive,
    "latency.warmup": partial(check_int, lo=0),
    "latency.flush_mib": partial(check_finite, lo=0, hi=4096),
    "latency.guard": partial(check_finite, lo=0, hi=10),
    "supernet.space": _non_empty,
    "supernet.data": _non_empty,
    "supernet.resolution": partial(check_int, lo=8, hi=1024),
    "supernet.epochs": _positive,
    "supernet.batch_size": partial(check_int, lo=2),
    "supernet.lr": partial(check_finite, lo=0, lo_open=True, hi=10),
    "supernet.sampler": _non_empty,
    "supernet.checkpoint": _non_empty,
}


def config_from_dict(data: dict[str, Any], source: str) -> Config:
    """Validate a parsed TOML document against the schema and merge it over the defaults."""
    sections = {f.name: f for f in dataclasses.fields(Config) if f.name != "source"}
    values: dict[str, Any] = {}
    for name, table in data.items():
        if name not in sections:
            raise ConfigError(f"{source}: unknown section [{name}] (allowed: {', '.join(sections)})")
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{name}] must be a table")
        factory = sections[name].default_factory
        assert callable(factory)  # every section field has a default_factory
        cls = factory()
        allowed = {f.name: getattr(cls, f.name) for f in dataclasses.fields(cls)}
        for key, value in table.items():
            if key not in allowed:
                raise ConfigError(f"{source}: unknown key {name}.{key} (allowed: {', '.join(allowed)})")
            if not _type_ok(allowed[key], value):
                raise ConfigError(f"{source}: key {name}.{key} must be {_type_name(allowed[key])} (got {value!r})")
            if rule := _RULES.get(f"{name}.{key}"):
                with as_error(ConfigError):
                    rule(value, f"{source}: key {name}.{key}")
        values[name] = dataclasses.replace(cls, **table)
    return Config(**values, source=source)


def load_config(path: str | Path | None = None, cwd: str | Path | None = None) -> Config:
    """Load ``path`` if given, else ``<cwd>/nas.toml`` if it exists, else the built-in defaults."""
    if path is None:
        candidate = Path(cwd or Path.cwd()) / DEFAULT_CONFIG_NAME
        if not path_exists(candidate):  # a ./nas.toml that is a FIFO or a folder is refused below
            return Config()
        path = candidate
    p = Path(path)
    with as_error(ConfigError):
        data = read_toml(p, "config file", MAX_CONFIG_BYTES)
    return config_from_dict(data, str(p))
