"""Supernet training: the sandwich rule with in-place distillation, uniform single-path sampling
(SPOS-style), or TuNAS (REINFORCE controller trained jointly with the shared weights, op and filter
warm-up, absolute reward).

One function, :func:`train_supernet`, runs unchanged in one process or under ``torchrun`` (see
:mod:`nas.supernet._ddp`). It writes a checkpoint after every epoch (atomically) and, when the output
file already holds a compatible checkpoint, resumes after its last finished epoch. All randomness of
an epoch (data order, augmentation, sampled subnets) is derived from ``(seed, epoch)``, so a resumed
run continues exactly as the uninterrupted one would have.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nas.data import Dataset, batches
from nas.errors import NasError
from nas.space import SearchSpace, canonical, contains, decisions, decode, sample_vectors
from nas.spec import ArchSpec
from nas.supernet._checkpoint import load_checkpoint, save_checkpoint, space_from_meta, space_meta
from nas.supernet._ddp import DistInfo, average_gradients, barrier, init_distributed, mean_over_ranks, sum_over_ranks
from nas.supernet._evaluate import calibration_batches, subnet_accuracy
from nas.supernet._reward import TUNAS_BETA, abs_reward
from nas.supernet._supernet import Supernet, check_inheritable, extreme_vector
from nas.supernet._tunas import Controller, TunasResult

SANDWICH_OPS: tuple[str, ...] = ("extreme", "random")
SAMPLERS: tuple[str, ...] = ("sandwich", "uniform", "tunas")
OPTIMIZERS: tuple[str, ...] = ("adamw", "sgd")
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
    try:
        from nas.latency import load_predictor
    except ImportError:  # pragma: no cover - latency package absent
        raise NasError("latency tables are not available in this installation; use --cost macs or --cost params") from None
    predictor = load_predictor(target)
    return lambda archs: np.asarray(predictor.predict_archs(list(archs)).latency_ms, dtype=np.float64)


_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9}


def parse_budget(text: str | float | None, unit: str) -> float | None:
    """``"4ms"``/``"4"`` (latency) or ``"300M"``/``"1.2G"``/``"3e8"`` (MACs, params) → a number."""
    if text is None or isinstance(text, (int, float)):
        return None if text is None else float(text)
    t = text.strip().lower().replace("_", "")
    if unit == "ms":
        m = re.fullmatch(r"([0-9.]+(?:e-?\d+)?)\s*(ms)?", t)
        scale = 1.0
    else:
        m = re.fullmatch(r"([0-9.]+(?:e\d+)?)\s*([kmg]?)", t)
        scale = _SUFFIX[m.group(2)] if m else 1.0
    try:
        value = float(m.group(1)) * scale if m else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        example = "4ms" if unit == "ms" else "300M"
        raise NasError(f"budget must be a positive number of {unit}, e.g. {example} (got {text!r})")
    return value


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


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint32)[0])


def _lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    warm = int(cfg.lr_warmup * total)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * t))


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    skip = getattr(model, "no_weight_decay", lambda: set())()
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() > 1 and name not in skip else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW or SGD (Nesterov) with weight decay on conv/linear weights only."""
    groups = _param_groups(model, cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.999))


def _soft_ce(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    return -(target_probs * F.log_softmax(logits, 1)).sum(1).mean()


def _thin(history: list[dict[str, Any]], n: int = HISTORY_POINTS) -> list[dict[str, Any]]:
    if len(history) <= n:
        return history
    keep = np.unique(np.linspace(0, len(history) - 1, n).round().astype(int))
    return [history[i] for i in keep]


def data_meta(data: Dataset, spec: str, val_fraction: float, split_seed: int) -> dict[str, Any]:
    """How to reload the same data (and its statistics) from a checkpoint."""
    src = spec
    if not spec.startswith("builtin"):
        src = str(Path(spec).expanduser().resolve())
    return {
        "spec": src,
        "val_fraction": val_fraction,
        "split_seed": split_seed,
        "train_images": len(data.train_y),
        "val_images": len(data.val_y),
        "mean": list(data.mean),
        "std": list(data.std),
    }


# ----------------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------------


StepFn = Callable[[dict[str, Any]], None]


def train_supernet(
    space: SearchSpace,
    data: Dataset,
    out: str | Path,
    cfg: TrainConfig = TrainConfig(),
    *,
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
        data: training and held-out images (:func:`nas.supernet.load_data`).
        out: checkpoint path. If it holds a compatible checkpoint and ``resume`` is true, training
            continues after its last finished epoch (an incompatible one is an error; ``resume=False``
            starts over and replaces it).
        cfg: hyper-parameters (:class:`TrainConfig`).
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
    info = init_distributed(device)
    dev = torch.device(info.device)
    out = Path(out)
    supernet = Supernet(space, resolution=data.resolution, num_classes=data.num_classes, seed=cfg.seed,
                        kernel_transform=cfg.kernel_transform).to(dev)  # fmt: skip
    optimizer = make_optimizer(supernet, cfg)
    controller = Controller(space, lr=cfg.rl_lr, baseline_momentum=cfg.baseline_momentum) if cfg.sampler == "tunas" else None
    cost_unit, budget, budget_note = "", None, ""
    if controller is not None:
        if cost_fn is None:
            cost_fn, cost_unit = cost_function(cfg.cost, cfg.target)
        else:
            cost_unit = "ms" if cfg.cost == "latency" else cfg.cost
        if cfg.budget is not None:
            budget, budget_note = float(cfg.budget), "given"
        else:
            budget, budget_note = default_budget(space, cost_fn, cfg.seed)

    meta: dict[str, Any] = {
        "space": space_meta(space),
        "resolution": data.resolution,
        "num_classes": data.num_classes,
        "classes": list(data.classes),
        "data": data_meta(data, data_spec, val_fraction, split_seed),
        "config": dataclasses.asdict(cfg),
        "world_size": info.world,
        "kernel_transforms": len(supernet.kernel_transforms),
        "epochs_done": 0,
        "history": [],
        "rl_history": [],
        "budget": budget,
        "budget_note": budget_note,
        "cost_unit": cost_unit,
        "created": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "torch": torch.__version__,
    }
    parent = None
    if init_from is not None:
        parent = load_init(init_from, data)
        meta["init_from"] = init_record(init_from, parent["meta"])
    start_epoch = 0
    if out.exists() and resume:
        ckpt = load_checkpoint(out)
        if init_from is None and ckpt["meta"].get("init_from"):  # resuming: the recorded start already happened
            meta["init_from"] = ckpt["meta"]["init_from"]
        _check_compatible(out, ckpt["meta"], meta)
        supernet.load_state_dict(ckpt["model"])
        if ckpt.get("optimizer") is not None:
            optimizer.load_state_dict(ckpt["optimizer"])
        if controller is not None and ckpt.get("controller") is not None:
            controller.load_state_dict(ckpt["controller"])
        old = ckpt["meta"]
        start_epoch = int(old["epochs_done"])
        meta["epochs_done"] = start_epoch
        for k in ("history", "rl_history", "created", "budget", "budget_note"):
            meta[k] = old.get(k, meta[k])
        budget = meta["budget"]
    elif parent is not None:
        supernet.inherit(parent["model"], str(init_from))
    del parent

    per_rank = len(data.train_y) // info.world
    steps_per_epoch = per_rank // cfg.batch_size
    if steps_per_epoch < 1:
        raise NasError(
            f"{len(data.train_y)} training images are fewer than one batch of {cfg.batch_size} per process "
            f"({info.world} process(es)); lower --batch-size"
        )
    if max_steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, max_steps_per_epoch)
    total_steps = cfg.epochs * steps_per_epoch
    calib = calibration_batches(data, cfg.calib_batches, 64, cfg.seed, dev)
    large_vec, small_vec = extreme_vector(space, True), extreme_vector(space, False)
    largest, smallest = decode(space, large_vec), decode(space, small_vec)
    sandwich = cfg.sampler == "sandwich"
    op_cols = _op_columns(space) if sandwich and cfg.sandwich_ops == "random" else None
    distill = sandwich and cfg.distill  # in-place distillation from the largest: sandwich only
    rl_quality = None
    if controller is not None:
        from nas.supernet._evaluate import BatchQuality

        rl_bs = max(2, int(round(cfg.batch_size * cfg.rl_batch_multiplier)))
        rl_quality = BatchQuality(supernet, _val_shard(data, info), rl_bs, 0, dev)

    for epoch in range(start_epoch, cfg.epochs):
        gen = torch.Generator().manual_seed(_seed(cfg.seed, epoch, 1))
        rng = np.random.default_rng(_seed(cfg.seed, epoch, 2))
        if rl_quality is not None:
            rl_quality.reseed(_seed(cfg.seed, epoch, 3))
        supernet.train()
        sums = np.zeros(3)  # loss, correct, seen (this rank, first subnet of each step)
        t0 = time.perf_counter()
        it: Iterator[tuple[torch.Tensor, torch.Tensor]] = batches(
            data, "train", cfg.batch_size, generator=gen, train=True, rank=info.rank, world=info.world, drop_last=True
        )
        for step in range(steps_per_epoch):
            x, y = next(it)
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            g_step = epoch * steps_per_epoch + step
            lr = _lr_at(cfg, g_step, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            frac = g_step / total_steps
            if controller is None:
                archs = [decode(space, v) for v in sample_vectors(space, rng, cfg.random_subnets)]
                if sandwich and op_cols is not None:
                    ops = sample_vectors(space, rng, 2)[:, op_cols]
                    archs = [_with_ops(space, large_vec, op_cols, ops[0]), _with_ops(space, small_vec, op_cols, ops[1]), *archs]
                elif sandwich:
                    archs = [largest, smallest, *archs]
                logits = supernet(x, archs[0])
                loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
                loss.backward()
                soft = F.softmax(logits.detach(), 1) if distill else None
                for a in archs[1:]:
                    out_a = supernet(x, a)
                    la = _soft_ce(out_a, soft) if soft is not None else F.cross_entropy(out_a, y, label_smoothing=cfg.label_smoothing)
                    la.backward()
                extra: dict[str, Any] = {}
            else:
                vec = controller.sample(rng, 1)
                p_op = max(0.0, 1.0 - frac / cfg.op_warmup) if cfg.op_warmup > 0 else 0.0
                p_filter = max(0.0, 1.0 - frac / cfg.filter_warmup) if cfg.filter_warmup > 0 else 0.0
                vec_w = controller.warmup(vec, rng, p_op, p_filter)
                logits = supernet(x, decode(space, vec_w[0]))
                loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
                loss.backward()
                extra = {}
            average_gradients(supernet.parameters(), info)
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(supernet.parameters(), cfg.grad_clip)
            optimizer.step()
            if controller is not None:
                assert rl_quality is not None and cost_fn is not None and budget is not None
                extra = _rl_step(controller, rl_quality, cost_fn, budget, cfg, space, rng, frac, info)
                if info.is_main:
                    meta["rl_history"].append({"epoch": epoch, "step": g_step, **extra})
            with torch.no_grad():
                sums += [float(loss.detach()) * len(y), float((logits.argmax(1) == y).sum()), len(y)]
            if on_step is not None and info.is_main:
                on_step({"epoch": epoch, "epochs": cfg.epochs, "step": step, "steps": steps_per_epoch,
                         "loss": sums[0] / sums[2], "acc": sums[1] / sums[2], "lr": lr, **extra})  # fmt: skip
        seconds = time.perf_counter() - t0
        loss_sum, correct, seen = sum_over_ranks(list(sums), info)
        entry: dict[str, Any] = {
            "epoch": epoch + 1,
            "loss": loss_sum / seen,
            "train_acc": correct / seen,
            "seconds": seconds,
            "images_per_s": seen / seconds,
            "subnets_per_step": subnets_per_step(cfg),
            "lr_end": lr,
        }
        if cfg.eval_every and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs) and info.is_main:
            if controller is None:
                entry["val_acc_largest"] = subnet_accuracy(supernet, largest, data, calib, dev)
                entry["val_acc_smallest"] = subnet_accuracy(supernet, smallest, data, calib, dev)
            else:
                best = controller.most_likely_arch()
                entry["controller_arch"] = best.arch
                entry["val_acc_controller"] = subnet_accuracy(supernet, best, data, calib, dev)
                entry["controller_cost"] = float(cost_fn([best])[0]) if cost_fn is not None else None
        meta["history"].append(entry)
        meta["epochs_done"] = epoch + 1
        meta["updated"] = datetime.now(UTC).replace(microsecond=0).isoformat()
        meta["rl_history"] = _thin(meta["rl_history"])
        if info.is_main:
            save_checkpoint(out, meta, supernet.state_dict(), optimizer.state_dict(),
                            controller.state_dict() if controller is not None else None)  # fmt: skip
            if on_epoch is not None:
                on_epoch(entry)
        barrier(info)

    tunas = None
    if controller is not None and info.is_main:
        assert cost_fn is not None and budget is not None
        best = controller.most_likely_arch()
        acc = subnet_accuracy(supernet, best, data, calib, dev)
        cost = float(cost_fn([best])[0])
        tunas = TunasResult(
            arch=best, score=acc, latency_ms=[cost],
            reward=float(abs_reward(np.asarray([acc]), [np.asarray([cost])], [budget], [cfg.beta])[0]),
            budgets=[budget], betas=[cfg.beta], probabilities=controller.probability_table(),
            history=list(meta["rl_history"]), steps=controller.updates, samples=len(meta["rl_history"]),
            seconds=float(sum(h["seconds"] for h in meta["history"])),
        )  # fmt: skip
    return TrainResult(out, int(meta["epochs_done"]), list(meta["history"]), start_epoch, tunas, meta)


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


def _rl_step(controller: Controller, quality: Any, cost_fn: CostFn, budget: float, cfg: TrainConfig,
             space: SearchSpace, rng: np.random.Generator, frac: float, info: DistInfo) -> dict[str, Any]:  # fmt: skip
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


def load_init(path: str | Path, data: Dataset, space: SearchSpace | None = None) -> dict[str, Any]:
    """The supernet checkpoint a training starts from (``init_from``), checked to have ``data``'s class
    count and, given ``space``, to hold every tensor of a supernet over it (one-line NasError otherwise)."""
    ckpt = load_checkpoint(path)
    n = int(ckpt["meta"]["num_classes"])
    if n != data.num_classes:
        raise NasError(f"--init-from: {path} was trained on {n} classes, the data has {data.num_classes}")
    if space is not None:
        with torch.device("meta"):  # shapes only
            shapes = Supernet(space, resolution=data.resolution, num_classes=data.num_classes).state_dict()
        check_inheritable(shapes, ckpt["model"], str(path))
    return ckpt


def init_record(path: str | Path, parent_meta: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint records of the supernet its training started from (``meta["init_from"]``)."""
    return {"checkpoint": str(path), "created": parent_meta.get("created"), "epochs_done": parent_meta.get("epochs_done"),
            "space": parent_meta["space"]["definition"].get("name"), "phase": parent_meta["space"]["phase"]}  # fmt: skip


def init_id(meta: dict[str, Any]) -> tuple[Any, Any] | None:
    """Which checkpoint a training started from, independent of where that file lies now."""
    init = meta.get("init_from")
    return None if not init else (init.get("created"), init.get("epochs_done"))


def _check_compatible(path: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    why = None
    if old["space"]["definition"] != new["space"]["definition"] or old["space"]["phase"] != new["space"]["phase"]:
        why = f"space {old['space']['definition'].get('name')} ({old['space']['phase']})"
    elif old["resolution"] != new["resolution"]:
        why = f"resolution {old['resolution']}"
    elif old["classes"] != new["classes"] or old["data"]["spec"] != new["data"]["spec"]:
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
        net = Supernet(space, resolution=int(meta["resolution"]), num_classes=int(meta["num_classes"]),
                       seed=int(meta["config"]["seed"]), kernel_transform=bool(stored_config(meta)["kernel_transform"]))  # fmt: skip
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


def train_model(
    model: torch.nn.Module,
    data: Dataset,
    cfg: TrainConfig,
    *,
    device: str = "cpu",
    on_epoch: StepFn | None = None,
    zero_classifier: bool = True,
) -> dict[str, Any]:
    """Train a stand-alone model with the supernet's recipe (``cfg``'s optimizer, schedule, batch,
    label smoothing, clipping, augmentation; sampler fields ignored; like the supernet's, the
    classifier starts at zero unless ``zero_classifier`` is false); returns
    ``{val_acc, history, seconds, images_per_s}``. Deterministic in ``cfg.seed``."""
    from nas.supernet._evaluate import accuracy

    cfg.check()
    epochs, batch_size, seed = cfg.epochs, cfg.batch_size, cfg.seed
    label_smoothing, grad_clip = cfg.label_smoothing, cfg.grad_clip
    dev = torch.device(device)
    model = model.to(dev)
    classifier = getattr(getattr(model, "head", None), "classifier", None)
    if zero_classifier and isinstance(classifier, torch.nn.Linear):
        with torch.no_grad():
            classifier.weight.zero_()
            classifier.bias.zero_()
    opt = make_optimizer(model, cfg)
    spe = len(data.train_y) // batch_size
    if spe < 1:
        raise NasError(f"{len(data.train_y)} training images are fewer than one batch of {batch_size}")
    total = epochs * spe
    history: list[dict[str, Any]] = []
    t_all = 0.0
    for epoch in range(epochs):
        gen = torch.Generator().manual_seed(_seed(seed, epoch, 1))
        model.train()
        sums = np.zeros(3)
        t0 = time.perf_counter()
        for step, (x, y) in enumerate(batches(data, "train", batch_size, generator=gen, train=True, drop_last=True)):
            x, y = x.to(dev), y.to(dev)
            for g in opt.param_groups:
                g["lr"] = _lr_at(cfg, epoch * spe + step, total)
            opt.zero_grad(set_to_none=True)
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
            loss.backward()
            if grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            sums += [float(loss.detach()) * len(y), float((logits.argmax(1) == y).sum()), len(y)]
        dt = time.perf_counter() - t0
        t_all += dt
        entry = {"epoch": epoch + 1, "loss": sums[0] / sums[2], "train_acc": sums[1] / sums[2], "seconds": dt,
                 "images_per_s": sums[2] / dt}  # fmt: skip
        history.append(entry)
        if on_epoch is not None:
            on_epoch(entry)
    model.eval()
    val = accuracy(model, data, "val", device=dev)
    seen = sum(h["images_per_s"] * h["seconds"] for h in history)
    return {"val_acc": val, "history": history, "seconds": t_all, "images_per_s": seen / max(t_all, 1e-9)}
