"""``mnv4-nas supernet train`` as one library call: the options as given, resolved against the
``[supernet]`` defaults of nas.toml and checked before anything loads, the data loaded, one supernet
(or a few-shot set of them) trained, and the summary the command prints.

:func:`train_supernet_from_settings` reports through a :class:`SupernetReporter` (setup lines,
progress); the CLI supplies one that draws rich progress bars.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from nas.config import Config
from nas.data import TrainSource, is_store, load_training_data, open_store
from nas.errors import NasError
from nas.inputs import check_device, check_finite, check_name, check_output_file, check_seed
from nas.space import SearchSpace, coarse_space, load_space
from nas.supernet._few_shot import FewShotResult, Shot, check_few_shot, train_few_shot
from nas.supernet._reward import TUNAS_BETA
from nas.supernet._train import CostFn, TrainConfig, TrainResult, cost_function, train_supernet
from nas.units import parse_budget

#: The phases a supernet trains on (``--phase``).
_PHASES: tuple[str, ...] = ("joint", "coarse")


@dataclass(frozen=True)
class SupernetTrainSettings:
    """A supernet training as ``mnv4-nas supernet train`` states it. ``None`` means the option was not
    given and nas.toml's default applies (``[supernet]``, ``project.seed`` for ``seed``); 0 or ``""`` is
    checked, never replaced by the default."""

    space: str | None = None
    data: str | None = None
    epochs: int | None = None
    resolution: int | None = None  #: default: a distillation store's own, else ``supernet.resolution``
    out: str | None = None  #: default: ``supernet.checkpoint`` (as ``.json`` with ``split``)
    sampler: str | None = None
    phase: str = "joint"  #: joint, or coarse (the coarse stage of the space)
    split: str | None = None  #: few-shot: the width/depth decision(s) to split on
    init_from: str | None = None
    batch_size: int | None = None
    lr: float | None = None
    random_subnets: int = 2
    distill: bool = True
    sandwich_ops: str = "extreme"
    kernel_transform: bool = False
    cost: str = "macs"  #: TuNAS: T of the reward (``latency`` when ``target`` is given)
    target: str | None = None
    budget: str | None = None  #: TuNAS: T0 as a ``--budget`` text (default: the reference model's cost)
    beta: float = TUNAS_BETA
    seed: int | None = None
    resume: bool = True
    threads: int | None = None  #: torch CPU threads of this process
    device: str | None = None
    max_steps: int | None = None  #: cap on the steps of every epoch (smoke tests)


class SupernetReporter(Protocol):
    """What :func:`train_supernet_from_settings` tells while it works."""

    def note(self, text: str) -> None:
        """A line about the setup (data, space and sampler, few-shot shots), before training starts."""

    def start(self, checkpoint: Path) -> None:
        """Training into ``checkpoint`` (the few-shot manifest with a split) starts; the data is loaded."""

    def stop(self) -> None:
        """Training ended, also by an error."""

    def shot(self, k: int, n: int, label: str, checkpoint: Path) -> None:
        """Few-shot: shot ``k`` of ``n`` starts training into ``checkpoint``."""

    def step(self, s: dict[str, Any]) -> None:
        """After every step (rank 0): ``{epoch, epochs, step, steps, loss, acc, …}``."""

    def epoch(self, h: dict[str, Any]) -> None:
        """After every epoch (rank 0): the epoch's history entry; its checkpoint is saved."""


@dataclass(frozen=True)
class SupernetTrainOutcome:
    """What :func:`train_supernet_from_settings` did: one supernet (``result``) or a few-shot set (``few_shot``)."""

    checkpoint: Path  #: the checkpoint, or the few-shot manifest
    coarse: bool  #: trained on the coarse phase (scores the coarse stage only)
    result: TrainResult | None = None
    few_shot: FewShotResult | None = None

    def summary(self) -> dict[str, Any]:
        """The JSON summary of ``mnv4-nas supernet train --json``."""
        if self.few_shot is not None:
            return _few_shot_summary(self.few_shot)
        assert self.result is not None
        r = self.result
        out: dict[str, Any] = {
            "checkpoint": str(r.checkpoint),
            "epochs_done": r.epochs_done,
            "resumed_from_epoch": r.resumed_from,
            "images_per_s": _rate(r.images_per_second),
            "history": r.history,
        }
        if r.tunas is not None:
            out["tunas"] = {k: v for k, v in r.tunas.to_dict().items() if k != "history"}
            out["tunas"]["cost_unit"] = r.meta.get("cost_unit")
        return out


def _rate(x: float) -> float | None:
    return None if np.isnan(x) else round(x, 1)


def _few_shot_summary(few: FewShotResult) -> dict[str, Any]:
    return {
        "manifest": str(few.manifest),
        "split": few.split,
        "images_per_s": _rate(few.images_per_second),
        "shots": [
            {
                "shot": v,
                "checkpoint": str(r.checkpoint),
                "epochs_done": r.epochs_done,
                "resumed_from_epoch": r.resumed_from,
                "images_per_s": _rate(r.images_per_second),
            }
            for v, r in few.shots.items()
        ],
    }


def _check_options(s: SupernetTrainSettings) -> None:
    """The options in range before the space or the data load; then the thread count is set."""
    if s.phase not in _PHASES:
        raise NasError(f"--phase must be one of {', '.join(_PHASES)} (got {s.phase!r})")
    for name, v in (("--space", s.space), ("--data", s.data), ("--target", s.target), ("--init-from", s.init_from)):
        if v is not None:
            check_name(v, name)
    if s.out is not None:
        check_output_file(s.out, "--out")
    if s.lr is not None:
        check_finite(s.lr, "--lr", lo=0, lo_open=True, hi=10)
    check_finite(s.beta, "--beta", hi=0)
    if s.seed is not None:
        check_seed(s.seed)
    if s.device is not None:
        check_device(s.device)
    if s.threads is not None:
        import torch

        if s.threads < 1:
            raise NasError(f"--threads must be at least 1 (got {s.threads})")
        torch.set_num_threads(s.threads)


def _train_config(s: SupernetTrainSettings, config: Config) -> tuple[TrainConfig, CostFn | None]:
    """The hyper-parameters (options over ``[supernet]``) and TuNAS's cost function, checked."""
    sc = config.supernet
    sampler = s.sampler if s.sampler is not None else sc.sampler
    cost = "latency" if s.target is not None else s.cost
    cost_fn = unit = None
    if sampler == "tunas":
        cost_fn, unit = cost_function(cost, s.target)
    elif s.target is not None or s.budget is not None:
        raise NasError("--target/--budget apply to --sampler tunas")
    cfg = TrainConfig(
        epochs=_given(s.epochs, sc.epochs),
        batch_size=_given(s.batch_size, sc.batch_size),
        lr=_given(s.lr, sc.lr),
        sampler=sampler,
        random_subnets=s.random_subnets,
        distill=s.distill,
        sandwich_ops=s.sandwich_ops,
        kernel_transform=s.kernel_transform,
        cost=cost,
        target=s.target,
        budget=parse_budget(s.budget, unit or "") if s.budget is not None else None,
        beta=s.beta,
        seed=config.project.seed if s.seed is None else s.seed,
    )
    cfg.check()
    return cfg, cost_fn


def _checkpoint(s: SupernetTrainSettings, config: Config, space: SearchSpace, sampler: str) -> tuple[Path, list[Shot]]:
    """The checkpoint (a ``.json`` manifest with ``split``) and the few-shot shots, checked before the data loads."""
    ckpt = Path(_given(s.out, config.supernet.checkpoint))
    shots: list[Shot] = []
    if s.split is not None:
        if s.out is None:
            ckpt = ckpt.with_suffix(".json")
        shots = check_few_shot(space, s.split, sampler, ckpt)
    elif s.out is not None and Path(s.out).suffix.lower() == ".json":
        raise NasError(
            f"--out: {s.out} is a .json path, which names a few-shot manifest; add --split DECISION or give a .pt path"
        )
    check_output_file(ckpt, "--out")
    return ckpt, shots


def _given(value: Any, default: Any) -> Any:
    """``value`` unless the option was not given (None): 0 or "" is checked, never the default."""
    return default if value is None else value


def train_supernet_from_settings(
    settings: SupernetTrainSettings, config: Config, reporter: SupernetReporter
) -> SupernetTrainOutcome:
    """Train the supernet ``settings`` describe (``config``: nas.toml, for the options not given).

    Every option is checked, the space loaded and the checkpoint path checked before the data loads;
    then one supernet trains (:func:`~nas.supernet.train_supernet`), or with ``settings.split`` one per
    shot (:func:`~nas.supernet.train_few_shot`). Both checkpoint every epoch and resume a rerun.
    """
    s = settings
    _check_options(s)
    space = load_space(config.supernet.space if s.space is None else s.space)
    if s.phase == "coarse":
        space = coarse_space(space)
    cfg, cost_fn = _train_config(s, config)
    data_spec = _given(s.data, config.supernet.data)
    # a distillation store fixes the resolution: its images were augmented and labelled at it
    res = _given(s.resolution, open_store(data_spec).resolution if is_store(data_spec) else config.supernet.resolution)
    ckpt, shots = _checkpoint(s, config, space, cfg.sampler)
    source, held_out = load_training_data(data_spec, res, seed=cfg.seed)
    _describe(reporter, source, space, cfg, ckpt, shots if s.split is not None else None)
    run_kw: dict[str, Any] = dict(
        val_data=held_out,
        data_spec=data_spec,
        resume=s.resume,
        on_step=reporter.step,
        on_epoch=reporter.epoch,
        device=s.device,
        max_steps_per_epoch=s.max_steps,
        init_from=s.init_from,
    )
    coarse = space.phase == "coarse"
    reporter.start(ckpt)
    try:
        if s.split is not None:
            few = train_few_shot(space, source, ckpt, cfg, split=s.split, on_shot=reporter.shot, **run_kw)
            return SupernetTrainOutcome(ckpt, coarse, few_shot=few)
        result = train_supernet(space, source, ckpt, cfg, cost_fn=cost_fn, **run_kw)
        return SupernetTrainOutcome(ckpt, coarse, result=result)
    finally:
        reporter.stop()


def _describe(
    reporter: SupernetReporter,
    source: TrainSource,
    space: SearchSpace,
    cfg: TrainConfig,
    ckpt: Path,
    shots: list[Shot] | None,
) -> None:
    """The setup lines: data, space and sampler, few-shot shots."""
    reporter.note(f"data: {source.describe()}")
    kt = "; kernel transform" if cfg.kernel_transform else ""
    reporter.note(
        f"space: {space}; sampler {cfg.sampler}{kt}; {cfg.epochs} epochs; batch {cfg.batch_size}; checkpoint {ckpt}"
    )
    if shots is not None:
        reporter.note(f"few-shot: {len(shots)} supernets: {', '.join(sh.label for sh in shots)}")


__all__ = [
    "SupernetReporter",
    "SupernetTrainOutcome",
    "SupernetTrainSettings",
    "train_supernet_from_settings",
]
