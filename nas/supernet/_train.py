"""Supernet training: the sandwich rule with in-place distillation, uniform single-path sampling
(SPOS-style), or TuNAS (REINFORCE controller trained jointly with the shared weights, op and filter
warm-up, absolute reward).

One function, :func:`train_supernet`, runs unchanged in one process or under ``torchrun``. The loop
itself is :class:`nas.train.Engine` (the one stand-alone training uses: schedule, augmentation,
mixed precision on CUDA, gradient averaging over ranks); this module supplies the per-step subnet
sampling as a :class:`nas.train.StepStrategy`. It writes a checkpoint after every epoch (atomically)
and, when the output file already holds a compatible checkpoint, resumes after its last finished
epoch. All randomness of an epoch (data order, augmentation, sampled subnets) is derived from
``(seed, epoch)``, so a resumed run continues exactly as the uninterrupted one would have.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nas.data import Dataset, DatasetSource, TrainSource
from nas.errors import NasError
from nas.space import SearchSpace, canonical, contains, decisions, decode, sample_vectors, space_from_meta, space_meta
from nas.spec import ArchSpec
from nas.supernet._checkpoint import load_checkpoint, save_checkpoint
from nas.supernet._evaluate import BatchQuality, calibration_batches, source_calibration_batches, subnet_accuracy
from nas.supernet._reward import TUNAS_BETA, abs_reward
from nas.supernet._supernet import Supernet, check_inheritable, extreme_vector
from nas.supernet._tunas import Controller, QualityFn, TunasResult
from nas.train import (
    OPTIMIZERS,
    SEED_RL,
    SEED_SUBNETS,
    DistInfo,
    Engine,
    EpochStats,
    Recipe,
    StepBatch,
    StepContext,
    StepOutput,
    epoch_seed,
    init_distributed,
    mean_over_ranks,
)
from nas.train import make_optimizer as _make_optimizer
from nas.units import utc_timestamp

SANDWICH_OPS: tuple[str, ...] = ("extreme", "random")
SAMPLERS: tuple[str, ...] = ("sandwich", "uniform", "tunas")
COSTS: tuple[str, ...] = ("macs", "params", "latency")
CostFn = Callable[[list[ArchSpec]], np.ndarray]
HISTORY_POINTS = 1000


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of a supernet training (all JSON-able; stored in the checkpoint)."""

    epochs: int = 30
    batch_size: int = 128  #: per process
    optimizer: str = "adamw"  #: adamw, or sgd (Nesterov momentum)
    lr: float = 2e-3  #: peak learning rate (linear warm-up, then cosine to 0)
    momentum: float = 0.9  #: sgd only
    weight_decay: float = 0.01  #: on conv/linear weights only (decoupled for adamw)
    lr_warmup: float = 0.025  #: fraction of training with a linear learning-rate ramp, then cosine
    label_smoothing: float = 0.1
    grad_clip: float = 5.0  #: global gradient-norm clip (0 = off)
    sampler: str = "sandwich"
    #: sandwich: uniformly sampled subnets per step besides the largest and the smallest; uniform: all
    #: the subnets of a step (SPOS-style, hard labels, no largest/smallest)
    random_subnets: int = 2
    distill: bool = True  #: sandwich: in-place distillation from the largest subnet
    #: sandwich: the block variants (DW presence/kernel, expansion) of the pinned largest and smallest
    #: members: "extreme" (largest/smallest of each) or "random" (uniform each step, so only widths and
    #: depths are pinned, no variant is trained more often than another, and the distillation teacher is
    #: the widest, deepest member with that step's variants)
    sandwich_ops: str = "extreme"
    #: Once-for-All kernel transformation: a 3×3 depthwise kernel is the centre of the 5×5 one times a
    #: learned 9×9 matrix per depthwise conv (identity at start) instead of the bare centre
    kernel_transform: bool = False
    op_warmup: float = 0.25  #: tunas: fraction of training over which op warm-up decays from 1 to 0
    filter_warmup: float = 0.25  #: tunas: same for filter (width) warm-up
    rl_lr: float = 0.01  #: tunas: controller Adam learning rate (grows ×rl_lr_growth over the RL phase)
    rl_lr_growth: float = 10.0
    rl_delay: float = 0.25  #: tunas: fraction of training before the controller learns
    rl_batch_multiplier: float = 2.0  #: tunas: held-out batch for Q = this × batch_size
    baseline_momentum: float = 0.95
    beta: float = TUNAS_BETA
    cost: str = "macs"  #: tunas: T of the reward: macs, params or latency (needs ``target``)
    target: str | None = None
    budget: float | None = None  #: tunas: T0 (ms, MACs or params); default: the reference model's cost
    seed: int = 0
    eval_every: int = 1  #: evaluate largest/smallest (or the controller's choice) every n epochs (0 = never)
    calib_batches: int = 8  #: BatchNorm recalibration batches of 64 training images for evaluations

    def check(self) -> None:
        """Raise NasError on an invalid value."""
        for name in ("lr", "momentum", "weight_decay", "label_smoothing", "grad_clip", "beta", "rl_lr", "rl_lr_growth"):
            if not math.isfinite(getattr(self, name)):
                raise NasError(f"{name} must be a finite number (got {getattr(self, name)})")
        if self.budget is not None and not math.isfinite(self.budget):
            raise NasError(f"budget must be a finite number (got {self.budget})")
        if not 0 <= self.seed < 2**32:
            raise NasError(f"seed must be in [0, 2**32 - 1] (got {self.seed})")
        if self.epochs < 1:
            raise NasError(f"epochs must be at least 1 (got {self.epochs})")
        if self.batch_size < 2:
            raise NasError(f"batch size must be at least 2 (got {self.batch_size})")
        if not self.lr > 0:
            raise NasError(f"learning rate must be positive (got {self.lr})")
        if self.optimizer not in OPTIMIZERS:
            raise NasError(f"optimizer must be one of {', '.join(OPTIMIZERS)} (got {self.optimizer!r})")
        if self.sampler not in SAMPLERS:
            raise NasError(f"sampler must be one of {', '.join(SAMPLERS)} (got {self.sampler!r})")
        if self.sandwich_ops not in SANDWICH_OPS:
            raise NasError(f"sandwich_ops must be one of {', '.join(SANDWICH_OPS)} (got {self.sandwich_ops!r})")
        if self.cost not in COSTS:
            raise NasError(f"cost must be one of {', '.join(COSTS)} (got {self.cost!r})")
        if self.cost == "latency" and not self.target:
            raise NasError("cost 'latency' needs a target (--target)")
        if self.beta > 0:
            raise NasError(f"beta must be negative (got {self.beta})")
        for name in ("op_warmup", "filter_warmup", "rl_delay", "lr_warmup"):
            if not 0 <= getattr(self, name) < 1:
                raise NasError(f"{name} must be in [0, 1) (got {getattr(self, name)})")
        least = 1 if self.sampler == "uniform" else 0
        if self.random_subnets < least:
            raise NasError(f"random_subnets must be >= {least} with sampler {self.sampler} (got {self.random_subnets})")
        if self.budget is not None and not self.budget > 0:
            raise NasError(f"budget must be positive (got {self.budget})")

    def recipe(self) -> Recipe:
        """The shared training recipe of these settings (crop-flip augmentation, no weight EMA: members
        are scored with inherited, BatchNorm-recalibrated weights)."""
        return Recipe(
            epochs=self.epochs,
            batch_size=self.batch_size,
            optimizer=self.optimizer,
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            lr_warmup=self.lr_warmup,
            label_smoothing=self.label_smoothing,
            grad_clip=self.grad_clip,
            augment="crop-flip",
            ema=False,
            seed=self.seed,
        )


@dataclass
class TrainResult:
    """What a training run produced."""

    checkpoint: Path
    epochs_done: int
    history: list[dict[str, Any]]  #: per epoch: loss, train accuracy, evaluations, images/s, seconds
    resumed_from: int  #: epochs already done when this call started
    tunas: TunasResult | None = None  #: sampler tunas: the controller's choice
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def images_per_second(self) -> float:
        """Training throughput of the epochs run by this call (images of the data set per second)."""
        runs = [h for h in self.history[self.resumed_from :] if h.get("images_per_s")]
        return float(np.mean([h["images_per_s"] for h in runs])) if runs else float("nan")


# ----------------------------------------------------------------------------------------------
# costs for the TuNAS reward
# ----------------------------------------------------------------------------------------------


def cost_function(kind: str, target: str | None = None) -> tuple[CostFn, str]:
    """``(fn, unit)``: T of the TuNAS reward. ``latency`` uses the target's latency table predictor."""
    from nas.cost import count_macs, count_params

    if kind == "macs":
        return (lambda archs: np.asarray([count_macs(a) for a in archs], dtype=np.float64)), "MACs"
    if kind == "params":
        return (lambda archs: np.asarray([count_params(a) for a in archs], dtype=np.float64)), "params"
    if kind == "latency":
        if not target:
            raise NasError("latency cost needs a target")
        return latency_function(target), "ms"
    raise NasError(f"cost must be one of {', '.join(COSTS)} (got {kind!r})")


def latency_function(target: str) -> CostFn:
    """``list[ArchSpec] -> ms`` from the latency table of ``target`` (:func:`nas.latency.load_predictor`)."""
    from nas.latency import load_predictor

    predictor = load_predictor(target)
    return lambda archs: np.asarray(predictor.predict_archs(list(archs)).latency_ms, dtype=np.float64)


def default_budget(space: SearchSpace, cost: CostFn, seed: int = 0) -> tuple[float, str]:
    """T0 when none is given: the space's reference model's cost, else the median of 256 samples."""
    if space.reference:
        from nas.zoo import get_spec

        try:
            ref = get_spec(space.reference)
        except NasError:
            ref = None
        if ref is not None and contains(space, ref):
            return float(cost([ref])[0]), f"cost of the reference {space.reference}"
    rng = np.random.default_rng(seed)
    archs = [decode(space, v) for v in sample_vectors(space, rng, 256)]
    return float(np.median(cost(archs))), "median cost of 256 random members"


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def subnets_per_step(cfg: TrainConfig) -> int:
    """Subnets a training step runs forward and backward (per process)."""
    return {"sandwich": 2 + cfg.random_subnets, "uniform": cfg.random_subnets}.get(cfg.sampler, 1)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW or SGD (Nesterov) with weight decay on conv/linear weights only (:func:`nas.train.make_optimizer`)."""
    return _make_optimizer(model, cfg.recipe())


def _thin(history: list[dict[str, Any]], n: int = HISTORY_POINTS) -> list[dict[str, Any]]:
    if len(history) <= n:
        return history
    keep = np.unique(np.linspace(0, len(history) - 1, n).round().astype(int))
    return [history[i] for i in keep]


def data_meta(source: TrainSource, val: Dataset, spec: str, val_fraction: float, split_seed: int) -> dict[str, Any]:
    """How to reload the same data (and its statistics) from a checkpoint."""
    src = spec
    if not spec.startswith("builtin"):
        src = str(Path(spec).expanduser().resolve())
    return {
        "spec": src,
        "val_fraction": val_fraction,
        "split_seed": split_seed,
        "train_images": source.train_size(),
        "val_images": len(val.val_y),
        "mean": list(source.mean),
        "std": list(source.std),
        "source": source.identity(),
    }


def _as_source(data: Dataset | TrainSource, val_data: Dataset | None) -> tuple[TrainSource, Dataset]:
    """(what to train on, held-out data): a Dataset is both; a TrainSource needs ``val_data``."""
    if isinstance(data, Dataset):
        return DatasetSource(data), val_data if val_data is not None else data
    if val_data is None:
        raise NasError(f"{data.describe()}: a training source needs held-out data to evaluate on (val_data)")
    return data, val_data


# ----------------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------------


StepFn = Callable[[dict[str, Any]], None]


def _new_supernet(space: SearchSpace, source: TrainSource, cfg: TrainConfig, dev: torch.device) -> Supernet:
    return Supernet(
        space,
        resolution=source.resolution,
        num_classes=len(source.classes),
        seed=cfg.seed,
        kernel_transform=cfg.kernel_transform,
    ).to(dev)


def _new_controller(space: SearchSpace, cfg: TrainConfig) -> Controller | None:
    """TuNAS's controller, trained with the weights (``sampler = tunas``), else None."""
    if cfg.sampler != "tunas":
        return None
    return Controller(space, lr=cfg.rl_lr, baseline_momentum=cfg.baseline_momentum)


def _rl_quality(supernet: Supernet, cfg: TrainConfig, val: Dataset, info: DistInfo, dev: torch.device) -> BatchQuality:
    """The controller's reward signal: held-out accuracy of one batch (this process's shard)."""
    rl_bs = max(2, int(round(cfg.batch_size * cfg.rl_batch_multiplier)))
    return BatchQuality(supernet, _val_shard(val, info), rl_bs, 0, dev)


def train_supernet(
    space: SearchSpace,
    data: Dataset | TrainSource,
    out: str | Path,
    cfg: TrainConfig = TrainConfig(),
    *,
    val_data: Dataset | None = None,
    data_spec: str = "builtin",
    val_fraction: float = 0.1,
    split_seed: int = 0,
    resume: bool = True,
    cost_fn: CostFn | None = None,
    on_step: StepFn | None = None,
    on_epoch: StepFn | None = None,
    device: str | None = None,
    max_steps_per_epoch: int | None = None,
    init_from: str | Path | None = None,
) -> TrainResult:
    """Train a supernet over ``space`` on ``data``; checkpoint to ``out`` after every epoch.

    Args:
        space: the search space (its phase decides what is sampled; the weights cover every phase).
        data: a :class:`~nas.data.Dataset` (training and held-out images, :func:`nas.data.load_data`),
            or any :class:`~nas.data.TrainSource` (e.g. a distillation store: its ``soft`` targets
            replace the hard labels of each step's first subnet) with ``val_data`` to evaluate on.
        out: checkpoint path. If it holds a compatible checkpoint and ``resume`` is true, training
            continues after its last finished epoch (an incompatible one is an error; ``resume=False``
            starts over and replaces it).
        cfg: hyper-parameters (:class:`TrainConfig`).
        val_data: held-out images (default: ``data``'s own held-out split).
        data_spec, val_fraction, split_seed: how ``data`` was loaded (stored so that estimators
            reload the same splits).
        cost_fn: TuNAS's T (default from ``cfg.cost``/``cfg.target``); called on architectures at the
            space's own resolution.
        on_step: called on rank 0 after every step with ``{epoch, step, steps, loss, acc, lr, …}``.
        on_epoch: called on rank 0 after every epoch with the epoch's history entry.
        device: ``cpu``/``cuda``/``cuda:N`` (default: CUDA when available; under torchrun, the local GPU).
        max_steps_per_epoch: cap the steps of every epoch (smoke tests).
        init_from: a fresh training starts from this supernet checkpoint's weights instead of a random
            init (:meth:`Supernet.inherit`; its space must contain ``space``, e.g. the one-shot supernet
            a few-shot shot splits off); recorded in the checkpoint. Resuming needs the same one or none
            (the checkpoint's weights are where training goes on from).

    Returns:
        :class:`TrainResult`; with ``cfg.sampler == "tunas"`` its ``tunas`` field holds the
        controller's most likely architecture, its accuracy and cost, and the final probabilities.
    """
    cfg.check()
    source, val = _as_source(data, val_data)
    info = init_distributed(device)
    dev = torch.device(info.device)
    out = Path(out)
    supernet = _new_supernet(space, source, cfg, dev)
    engine = Engine(supernet, cfg.recipe(), source, info, max_steps_per_epoch=max_steps_per_epoch)
    controller = _new_controller(space, cfg)
    meta: dict[str, Any] = {"budget": None, "budget_note": "", "cost_unit": ""}
    if controller is not None:
        cost_fn, _ = _tunas_budget(space, cfg, cost_fn, meta)
    meta.update(
        _new_meta(space, cfg, source, supernet, info, data_meta(source, val, data_spec, val_fraction, split_seed))
    )
    start_epoch = _start(out, resume, init_from, meta, supernet, engine, controller, source)
    budget = meta["budget"]
    calib = _calibration(source, cfg, dev)
    rl_quality = None if controller is None else _rl_quality(supernet, cfg, val, info, dev)
    strategy = _SubnetSteps(supernet, space, cfg, info, controller, rl_quality, cost_fn, budget, meta)
    end_epoch = _EpochEnd(
        out, cfg, info, supernet, engine, strategy, controller, val, calib, dev, cost_fn, meta, on_epoch
    )
    engine.fit(strategy, start_epoch, end_epoch, on_step=on_step if info.is_main else None)
    tunas = None
    if controller is not None and info.is_main:
        assert cost_fn is not None and budget is not None
        tunas = _tunas_result(controller, supernet, val, calib, dev, cost_fn, budget, cfg, meta)
    return TrainResult(out, int(meta["epochs_done"]), list(meta["history"]), start_epoch, tunas, meta)


def _new_meta(
    space: SearchSpace, cfg: TrainConfig, source: TrainSource, supernet: Supernet, info: DistInfo, data: dict[str, Any]
) -> dict[str, Any]:
    """The checkpoint metadata of a fresh training (no epoch done yet)."""
    return dict(
        space=space_meta(space),
        resolution=source.resolution,
        num_classes=len(source.classes),
        classes=list(source.classes),
        data=data,
        config=dataclasses.asdict(cfg),
        world_size=info.world,
        kernel_transforms=len(supernet.kernel_transforms),
        epochs_done=0,
        history=[],
        rl_history=[],
        created=utc_timestamp(),
        torch=torch.__version__,
    )


def _calibration(source: TrainSource, cfg: TrainConfig, dev: torch.device) -> list[torch.Tensor]:
    """The training images every evaluated subnet recalibrates its BatchNorm on."""
    if isinstance(source, DatasetSource):
        return calibration_batches(source.data, cfg.calib_batches, 64, cfg.seed, dev)
    return source_calibration_batches(source, cfg.calib_batches, 64, cfg.seed, dev)


class _EpochEnd:
    """What ends an epoch of :func:`train_supernet`: evaluation (largest and smallest subnet, or the
    controller's pick), the history entry, the checkpoint (rank 0) and ``on_epoch``."""

    def __init__(
        self,
        out: Path,
        cfg: TrainConfig,
        info: DistInfo,
        supernet: Supernet,
        engine: Engine,
        strategy: _SubnetSteps,
        controller: Controller | None,
        val: Dataset,
        calib: list[torch.Tensor],
        dev: torch.device,
        cost_fn: CostFn | None,
        meta: dict[str, Any],
        on_epoch: StepFn | None,
    ) -> None:
        self.out, self.cfg, self.info, self.supernet, self.engine = out, cfg, info, supernet, engine
        self.largest, self.smallest = strategy.largest, strategy.smallest
        self.controller, self.val, self.calib, self.dev, self.cost_fn = controller, val, calib, dev, cost_fn
        self.meta, self.on_epoch = meta, on_epoch

    def _evaluate(self, entry: dict[str, Any]) -> None:
        supernet, val, calib, dev, controller = self.supernet, self.val, self.calib, self.dev, self.controller
        if controller is None:
            entry["val_acc_largest"] = subnet_accuracy(supernet, self.largest, val, calib, dev)
            entry["val_acc_smallest"] = subnet_accuracy(supernet, self.smallest, val, calib, dev)
        else:
            best = controller.most_likely_arch()
            entry["controller_arch"] = best.arch
            entry["val_acc_controller"] = subnet_accuracy(supernet, best, val, calib, dev)
            entry["controller_cost"] = float(self.cost_fn([best])[0]) if self.cost_fn is not None else None

    def __call__(self, epoch: int, stats: EpochStats) -> None:
        cfg, info, meta, controller = self.cfg, self.info, self.meta, self.controller
        entry = {**stats.entry(epoch + 1), "subnets_per_step": subnets_per_step(cfg)}
        if cfg.eval_every and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs) and info.is_main:
            self._evaluate(entry)
        meta["history"].append(entry)
        meta["epochs_done"] = epoch + 1
        meta["updated"] = utc_timestamp()
        meta["rl_history"] = _thin(meta["rl_history"])
        if info.is_main:
            save_checkpoint(
                self.out,
                meta,
                self.supernet.state_dict(),
                self.engine.optimizer.state_dict(),
                controller.state_dict() if controller is not None else None,
                self.engine.state_dict()["scaler"],
            )
            if self.on_epoch is not None:
                self.on_epoch(entry)


def _tunas_budget(
    space: SearchSpace, cfg: TrainConfig, cost_fn: CostFn | None, meta: dict[str, Any]
) -> tuple[CostFn, float]:
    """TuNAS's cost function and T0; records ``budget``, ``budget_note`` and ``cost_unit`` in ``meta``."""
    if cost_fn is None:
        cost_fn, unit = cost_function(cfg.cost, cfg.target)
    else:
        unit = "ms" if cfg.cost == "latency" else cfg.cost
    if cfg.budget is not None:
        budget, note = float(cfg.budget), "given"
    else:
        budget, note = default_budget(space, cost_fn, cfg.seed)
    meta.update(budget=budget, budget_note=note, cost_unit=unit)
    return cost_fn, budget


def _start(
    out: Path,
    resume: bool,
    init_from: str | Path | None,
    meta: dict[str, Any],
    supernet: Supernet,
    engine: Engine,
    controller: Controller | None,
    source: TrainSource,
) -> int:
    """Load a compatible checkpoint at ``out`` (resume) or the ``init_from`` weights; the first epoch to run."""
    parent = None
    if init_from is not None:
        parent = load_init(init_from, source)
        meta["init_from"] = init_record(init_from, parent["meta"])
    if out.exists() and resume:
        ckpt = load_checkpoint(out)
        if init_from is None and ckpt["meta"].get("init_from"):  # resuming: the recorded start already happened
            meta["init_from"] = ckpt["meta"]["init_from"]
        _check_compatible(out, ckpt["meta"], meta)
        supernet.load_state_dict(ckpt["model"])
        engine.load_state_dict({"optimizer": ckpt.get("optimizer"), "scaler": ckpt.get("scaler")})
        if controller is not None and ckpt.get("controller") is not None:
            controller.load_state_dict(ckpt["controller"])
        old = ckpt["meta"]
        meta["epochs_done"] = int(old["epochs_done"])
        for k in ("history", "rl_history", "created", "budget", "budget_note"):
            meta[k] = old.get(k, meta[k])
        return meta["epochs_done"]
    if parent is not None:
        supernet.inherit(parent["model"], str(init_from))
    return 0


class _SubnetSteps:
    """The supernet's :class:`nas.train.StepStrategy`: which subnets each step trains, and TuNAS's
    controller update after the optimizer step."""

    def __init__(
        self,
        supernet: Supernet,
        space: SearchSpace,
        cfg: TrainConfig,
        info: DistInfo,
        controller: Controller | None,
        rl_quality: BatchQuality | None,
        cost_fn: CostFn | None,
        budget: float | None,
        meta: dict[str, Any],
    ) -> None:
        self.supernet, self.space, self.cfg, self.info = supernet, space, cfg, info
        self.controller, self.rl_quality, self.cost_fn, self.budget, self.meta = (
            controller,
            rl_quality,
            cost_fn,
            budget,
            meta,
        )
        self.large_vec, self.small_vec = extreme_vector(space, True), extreme_vector(space, False)
        self.largest, self.smallest = decode(space, self.large_vec), decode(space, self.small_vec)
        self.sandwich = cfg.sampler == "sandwich"
        self.op_cols = _op_columns(space) if self.sandwich and cfg.sandwich_ops == "random" else None
        self.distill = self.sandwich and cfg.distill  # in-place distillation from the largest: sandwich only
        self.rng = np.random.default_rng(0)

    def begin_epoch(self, epoch: int) -> None:
        self.rng = np.random.default_rng(epoch_seed(self.cfg.seed, epoch, SEED_SUBNETS))
        if self.rl_quality is not None:
            self.rl_quality.reseed(epoch_seed(self.cfg.seed, epoch, SEED_RL))

    def _archs(self, frac: float) -> list[ArchSpec]:
        space, rng, cfg = self.space, self.rng, self.cfg
        if self.controller is not None:
            vec = self.controller.sample(rng, 1)
            p_op = max(0.0, 1.0 - frac / cfg.op_warmup) if cfg.op_warmup > 0 else 0.0
            p_filter = max(0.0, 1.0 - frac / cfg.filter_warmup) if cfg.filter_warmup > 0 else 0.0
            return [decode(space, self.controller.warmup(vec, rng, p_op, p_filter)[0])]
        archs = [decode(space, v) for v in sample_vectors(space, rng, cfg.random_subnets)]
        if self.sandwich and self.op_cols is not None:
            ops = sample_vectors(space, rng, 2)[:, self.op_cols]
            return [
                _with_ops(space, self.large_vec, self.op_cols, ops[0]),
                _with_ops(space, self.small_vec, self.op_cols, ops[1]),
                *archs,
            ]
        return [self.largest, self.smallest, *archs] if self.sandwich else archs

    def step(self, engine: Engine, batch: StepBatch, ctx: StepContext) -> StepOutput:
        archs = self._archs(ctx.frac)
        with engine.autocast():
            logits = self.supernet(batch.x, archs[0])
            loss = engine.loss(logits, batch.y, batch.soft)
        engine.backward(loss)
        # the others learn from the first (the largest) in in-place distillation, else from the data
        soft = F.softmax(logits.detach().float(), 1) if self.distill else batch.soft
        for a in archs[1:]:
            with engine.autocast():
                la = engine.loss(self.supernet(batch.x, a), batch.y, soft)
            engine.backward(la)
        return StepOutput(loss.detach(), logits.detach())

    def after_step(self, ctx: StepContext) -> dict[str, Any]:
        if self.controller is None:
            return {}
        assert self.rl_quality is not None and self.cost_fn is not None and self.budget is not None
        extra = _rl_step(
            self.controller,
            self.rl_quality,
            self.cost_fn,
            self.budget,
            self.cfg,
            self.space,
            self.rng,
            ctx.frac,
            self.info,
        )
        if self.info.is_main:
            self.meta["rl_history"].append({"epoch": ctx.epoch, "step": ctx.global_step, **extra})
        return extra


def _tunas_result(
    controller: Controller,
    supernet: Supernet,
    val: Dataset,
    calib: list[torch.Tensor],
    dev: torch.device,
    cost_fn: CostFn,
    budget: float,
    cfg: TrainConfig,
    meta: dict[str, Any],
) -> TunasResult:
    """The controller's choice, scored on the held-out data."""
    best = controller.most_likely_arch()
    acc = subnet_accuracy(supernet, best, val, calib, dev)
    cost = float(cost_fn([best])[0])
    return TunasResult(
        arch=best,
        score=acc,
        latency_ms=[cost],
        reward=float(abs_reward(np.asarray([acc]), [np.asarray([cost])], [budget], [cfg.beta])[0]),
        budgets=[budget],
        betas=[cfg.beta],
        probabilities=controller.probability_table(),
        history=list(meta["rl_history"]),
        steps=controller.updates,
        samples=len(meta["rl_history"]),
        seconds=float(sum(h["seconds"] for h in meta["history"])),
    )


def _op_columns(space: SearchSpace) -> np.ndarray:
    """Encoding columns of the per-block variant decisions (what ``sandwich_ops = random`` draws)."""
    return np.asarray([n for n, d in enumerate(decisions(space)) if d.kind == "uib"], dtype=np.int64)


def _with_ops(space: SearchSpace, vec: np.ndarray, cols: np.ndarray, ops: np.ndarray) -> ArchSpec:
    """The member ``vec`` with its block-variant decisions replaced by ``ops``."""
    v = np.array(vec, copy=True)
    v[cols] = ops
    return decode(space, canonical(space, v))


def _val_shard(data: Dataset, info: DistInfo) -> Dataset:
    if not info.distributed:
        return data
    sl = slice(info.rank, None, info.world)
    return dataclasses.replace(data, val_x=data.val_x[sl], val_y=data.val_y[sl])


def _rl_step(
    controller: Controller,
    quality: QualityFn,
    cost_fn: CostFn,
    budget: float,
    cfg: TrainConfig,
    space: SearchSpace,
    rng: np.random.Generator,
    frac: float,
    info: DistInfo,
) -> dict[str, Any]:
    """One controller update: sample, Q on a held-out batch (mean over ranks), reward, REINFORCE."""
    vec = controller.sample(rng, 1)
    arch = decode(space, vec[0])
    q = mean_over_ranks([float(quality([arch])[0])], info)[0]
    cost = float(cost_fn([arch])[0])
    r = abs_reward(np.asarray([q]), [np.asarray([cost])], [budget], [cfg.beta])
    if frac < cfg.rl_delay:
        lr = 0.0
    else:
        lr = cfg.rl_lr * cfg.rl_lr_growth ** ((frac - cfg.rl_delay) / max(1e-9, 1 - cfg.rl_delay))
    stats = controller.update(vec, r, lr)
    return {"quality": q, "cost": cost, "rl_lr": lr, **stats}


def stored_config(meta: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's training configuration, with the fields it predates at :class:`TrainConfig`'s
    defaults (what it was trained with before those fields existed)."""
    return {**dataclasses.asdict(TrainConfig()), **meta["config"]}


_COMPAT_KEYS = ("sampler", "seed", "batch_size", "cost", "target", "budget", "beta", "kernel_transform")


def load_init(path: str | Path, data: Dataset | TrainSource, space: SearchSpace | None = None) -> dict[str, Any]:
    """The supernet checkpoint a training starts from (``init_from``), checked to have ``data``'s class
    count and, given ``space``, to hold every tensor of a supernet over it (one-line NasError otherwise)."""
    ckpt = load_checkpoint(path)
    n, have = int(ckpt["meta"]["num_classes"]), len(data.classes)
    if n != have:
        raise NasError(f"--init-from: {path} was trained on {n} classes, the data has {have}")
    if space is not None:
        with torch.device("meta"):  # shapes only
            shapes = Supernet(space, resolution=data.resolution, num_classes=have).state_dict()
        check_inheritable(shapes, ckpt["model"], str(path))
    return ckpt


def init_record(path: str | Path, parent_meta: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint records of the supernet its training started from (``meta["init_from"]``)."""
    return {
        "checkpoint": str(path),
        "created": parent_meta.get("created"),
        "epochs_done": parent_meta.get("epochs_done"),
        "space": parent_meta["space"]["definition"].get("name"),
        "phase": parent_meta["space"]["phase"],
    }


def init_id(meta: dict[str, Any]) -> tuple[Any, Any] | None:
    """Which checkpoint a training started from, independent of where that file lies now."""
    init = meta.get("init_from")
    return None if not init else (init.get("created"), init.get("epochs_done"))


def _changed_source(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether the training source's identity changed (sizes, kind; checkpoints before it was recorded: no).
    Its ``source`` text is left out: the resolved ``data.spec`` already names where the data lies."""
    a, b = old["data"].get("source"), new["data"].get("source")
    if a is None or b is None:
        return False
    return {k: v for k, v in a.items() if k != "source"} != {k: v for k, v in b.items() if k != "source"}


def _check_compatible(path: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    why = None
    if old["space"]["definition"] != new["space"]["definition"] or old["space"]["phase"] != new["space"]["phase"]:
        why = f"space {old['space']['definition'].get('name')} ({old['space']['phase']})"
    elif old["resolution"] != new["resolution"]:
        why = f"resolution {old['resolution']}"
    elif old["classes"] != new["classes"] or old["data"]["spec"] != new["data"]["spec"] or _changed_source(old, new):
        why = f"data {old['data']['spec']}"
    elif init_id(old) != init_id(new):
        init = old.get("init_from")
        why = f"--init-from {init['checkpoint']} at {init['epochs_done']} epochs" if init else "no --init-from"
    else:
        was = stored_config(old)
        for k in _COMPAT_KEYS:
            if was[k] != new["config"][k]:
                why = f"{k} = {was[k]!r}"
                break
    if why is not None:
        raise NasError(
            f"{path} holds a checkpoint trained with {why}; pass --no-resume to start over there, or another --out"
        )


def load_supernet(path: str | Path, device: str = "cpu") -> tuple[Supernet, dict[str, Any], dict[str, Any]]:
    """(supernet with the checkpoint's weights, metadata, raw checkpoint) from a checkpoint file."""
    ckpt = load_checkpoint(path)
    meta = ckpt["meta"]
    try:
        space = space_from_meta(meta["space"])
        net = Supernet(
            space,
            resolution=int(meta["resolution"]),
            num_classes=int(meta["num_classes"]),
            seed=int(meta["config"]["seed"]),
            kernel_transform=bool(stored_config(meta)["kernel_transform"]),
        )
        net.load_state_dict(ckpt["model"])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise NasError(f"{path}: checkpoint does not match its own space definition ({type(exc).__name__})") from None
    return net.to(device).eval(), meta, ckpt


def controller_from_checkpoint(ckpt: dict[str, Any], space: SearchSpace) -> Controller | None:
    """The jointly trained TuNAS controller of a checkpoint (None for sandwich trainings)."""
    if ckpt.get("controller") is None:
        return None
    cfg = ckpt["meta"]["config"]
    c = Controller(space, lr=cfg["rl_lr"], baseline_momentum=cfg["baseline_momentum"])
    c.load_state_dict(ckpt["controller"])
    return c


__all__ = [
    "COSTS",
    "HISTORY_POINTS",
    "SAMPLERS",
    "SANDWICH_OPS",
    "CostFn",
    "StepFn",
    "TrainConfig",
    "TrainResult",
    "controller_from_checkpoint",
    "cost_function",
    "data_meta",
    "default_budget",
    "init_id",
    "init_record",
    "latency_function",
    "load_init",
    "load_supernet",
    "make_optimizer",
    "stored_config",
    "subnets_per_step",
    "train_supernet",
]
