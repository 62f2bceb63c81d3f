"""The one training loop: stand-alone training and supernet training both run :class:`Engine`.

The engine reads a :class:`~nas.data.TrainSource` (un-augmented images in [0, 1]), augments each batch
with the recipe (kornia, seeded per step), normalises it with the source's statistics and hands it to a
:class:`StepStrategy`, which runs the forward and backward passes of one step (one model, or the
supernet's sampled subnets). The engine owns everything around that: learning-rate schedule, mixed
precision and its gradient scaler, gradient averaging over ranks, clipping, the optimizer step, the
EMA of the weights, per-epoch metrics and the state a checkpoint must hold.

Every random draw of an epoch (data order, augmentation, whatever the strategy samples) is seeded from
``(seed, epoch, …)`` (:func:`epoch_seed`), so a run resumed after its last finished epoch continues
exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nas.data import Batch, TrainSource, make_augment
from nas.errors import NasError
from nas.train._ddp import DistInfo, average_buffers, average_gradients, barrier, sum_over_ranks
from nas.train._ema import ModelEma
from nas.train._losses import soft_cross_entropy
from nas.train._recipe import Recipe, amp_dtype, lr_at, make_optimizer

#: seed streams of an epoch (:func:`epoch_seed`); strategies use their own numbers from 16 on
SEED_DATA, SEED_SUBNETS, SEED_RL, SEED_AUGMENT = 1, 2, 3, 4


def epoch_seed(seed: int, *parts: int) -> int:
    """A 32-bit seed derived from ``(seed, *parts)`` (e.g. ``(seed, epoch, stream, step)``)."""
    return int(np.random.SeedSequence([seed, *parts]).generate_state(1, dtype=np.uint32)[0])


@dataclass(frozen=True)
class StepBatch:
    """One step's data on the training device."""

    x01: torch.Tensor  #: augmented images in [0, 1] (what an online teacher sees)
    x: torch.Tensor  #: the same, normalised with the source's statistics (what the model sees)
    y: torch.Tensor  #: hard labels
    soft: torch.Tensor | None  #: the source's target probabilities (a distillation store), else None


@dataclass(frozen=True)
class StepContext:
    """Where a step sits in the run."""

    epoch: int
    step: int  #: within the epoch
    steps: int  #: steps per epoch
    global_step: int
    total_steps: int
    lr: float

    @property
    def frac(self) -> float:
        """Fraction of the training done before this step."""
        return self.global_step / self.total_steps


@dataclass(frozen=True)
class StepOutput:
    """What a step reports: the loss and logits of its (first) model, detached."""

    loss: torch.Tensor
    logits: torch.Tensor


class StepStrategy(Protocol):
    """The forward and backward passes of one training step (between the batch and the optimizer)."""

    def begin_epoch(self, epoch: int) -> None:
        """Reseed whatever the strategy draws (from :func:`epoch_seed`)."""
        ...

    def step(self, engine: Engine, batch: StepBatch, ctx: StepContext) -> StepOutput:
        """Run forward passes under ``engine.autocast()`` and ``engine.backward(loss)`` for each loss."""
        ...

    def after_step(self, ctx: StepContext) -> dict[str, Any]:
        """Work after the optimizer step (e.g. a controller update); returns fields for progress."""
        ...


@dataclass
class EpochStats:
    """Metrics of one epoch over all ranks."""

    loss: float
    train_acc: float
    images: int
    seconds: float
    lr_end: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def images_per_s(self) -> float:
        """Training images per second (all ranks together)."""
        return self.images / self.seconds if self.seconds > 0 else float("nan")

    def entry(self, epoch: int) -> dict[str, Any]:
        """The history row of this epoch (1-based ``epoch``)."""
        return {
            "epoch": epoch,
            "loss": self.loss,
            "train_acc": self.train_acc,
            "seconds": self.seconds,
            "images_per_s": self.images_per_s,
            "lr_end": self.lr_end,
        }


ProgressFn = Callable[[dict[str, Any]], None]


class Engine:
    """Optimizer, schedule, precision, EMA and the step loop for one model over one source.

    ``model`` must already be on ``info.device``. ``sync_buffers`` averages BatchNorm statistics over
    ranks after every epoch (stand-alone training; a supernet recalibrates them per subnet instead).
    """

    def __init__(
        self,
        model: nn.Module,
        recipe: Recipe,
        source: TrainSource,
        info: DistInfo,
        *,
        max_steps_per_epoch: int | None = None,
        sync_buffers: bool = False,
    ) -> None:
        self.model, self.recipe, self.source, self.info = model, recipe, source, info
        self.device = torch.device(info.device)
        if recipe.channels_last:  # before the optimizer and the EMA copy see the parameters
            # torch's stub of Module.to lacks its memory_format keyword
            model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(model, recipe)
        self.amp = amp_dtype(recipe, self.device)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp == torch.float16 else None
        self.ema = ModelEma(model, recipe.ema_decay, warmup=recipe.ema_warmup) if recipe.ema else None
        self.augment = make_augment(recipe.augment, source.resolution)
        self.sync_buffers = sync_buffers
        self._mean = torch.tensor(source.mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(source.std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.steps_per_epoch = source.train_size() // info.world // recipe.batch_size
        if self.steps_per_epoch < 1:
            raise NasError(
                f"{source.train_size()} training images are fewer than one batch of {recipe.batch_size} per process "
                f"({info.world} process(es)); lower --batch-size"
            )
        if max_steps_per_epoch is not None:
            self.steps_per_epoch = min(self.steps_per_epoch, max_steps_per_epoch)
        self.total_steps = recipe.epochs * self.steps_per_epoch
        # a progress callback reads the running loss, which waits for the GPU: not on every CUDA step
        self._report_every = 1 if self.device.type == "cpu" else 10

    # -- what strategies call ------------------------------------------------------------------

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Mixed precision for forward passes (a no-op in full precision)."""
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp)

    def loss(self, logits: torch.Tensor, y: torch.Tensor, soft: torch.Tensor | None) -> torch.Tensor:
        """Cross-entropy to ``soft`` probabilities when given (distillation), else to the hard labels
        ``y`` with the recipe's label smoothing."""
        if soft is not None:
            return soft_cross_entropy(logits.float(), soft)
        return F.cross_entropy(logits.float(), y, label_smoothing=self.recipe.label_smoothing)

    def backward(self, loss: torch.Tensor) -> None:
        """Back-propagate ``loss`` (scaled when fp16 mixed precision is on)."""
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def normalize(self, x01: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] → standardised with the source's mean and std (the arithmetic of
        :meth:`nas.data.Dataset.normalize`, so training and evaluation see identical values)."""
        return (x01 - self._mean) / self._std

    # -- the loop ------------------------------------------------------------------------------

    def fit(
        self,
        strategy: StepStrategy,
        start_epoch: int,
        end_epoch: Callable[[int, EpochStats], None],
        *,
        on_step: ProgressFn | None = None,
    ) -> None:
        """Epochs ``start_epoch`` … ``recipe.epochs - 1``; after each, ``end_epoch(epoch, stats)`` (every
        rank: evaluate, record, checkpoint on rank 0), then all ranks meet."""
        for epoch in range(start_epoch, self.recipe.epochs):
            stats = self.run_epoch(epoch, strategy, on_step)
            if self.sync_buffers:
                average_buffers(self.model, self.info)
                if self.ema is not None:
                    average_buffers(self.ema.module, self.info)
            end_epoch(epoch, stats)
            barrier(self.info)

    def run_epoch(self, epoch: int, strategy: StepStrategy, on_step: ProgressFn | None = None) -> EpochStats:
        """One epoch of steps; metrics summed over ranks."""
        r, spe = self.recipe, self.steps_per_epoch
        self.model.train()
        strategy.begin_epoch(epoch)
        it = self.source.epoch_batches(
            epoch_seed(r.seed, epoch, SEED_DATA), r.batch_size, rank=self.info.rank, world=self.info.world
        )
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        seen, lr, done = 0, r.lr, 0
        extra: dict[str, Any] = {}
        t0 = time.perf_counter()
        try:
            for step, batch in zip(range(spe), it, strict=False):
                g = epoch * spe + step
                lr = lr_at(r, g, self.total_steps)
                ctx = StepContext(epoch, step, spe, g, self.total_steps, lr)
                sb = self._prepare(batch, epoch, step)
                out, extra = self._step(strategy, sb, ctx)
                loss_sum += out.loss.detach().double() * len(sb.y)
                correct += (out.logits.argmax(1) == sb.y).sum()
                seen += len(sb.y)
                done = step + 1
                if on_step is not None and (done % self._report_every == 0 or done == spe):
                    s = float(seen)
                    on_step(
                        {
                            "epoch": epoch,
                            "epochs": r.epochs,
                            "step": step,
                            "steps": spe,
                            "lr": lr,
                            "loss": float(loss_sum) / s,
                            "acc": float(correct) / s,
                            **extra,
                        }
                    )
        finally:
            close = getattr(it, "close", None)  # a generator (e.g. over store shards) releases its files
            if close is not None:
                close()
        if done < spe:
            raise NasError(f"{self.source.describe()}: yielded {done} batches, fewer than the {spe} of an epoch")
        seconds = time.perf_counter() - t0
        total_loss, total_correct, total_seen = sum_over_ranks(
            [float(loss_sum), float(correct), float(seen)], self.info
        )
        return EpochStats(total_loss / total_seen, total_correct / total_seen, int(total_seen), seconds, lr, extra)

    def _prepare(self, batch: Batch, epoch: int, step: int) -> StepBatch:
        x01 = batch.x.to(self.device, non_blocking=True)
        x01 = self.augment(x01, epoch_seed(self.recipe.seed, epoch, SEED_AUGMENT, step))
        soft = None if batch.soft is None else batch.soft.to(self.device, non_blocking=True)
        x = self.normalize(x01)
        if self.recipe.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return StepBatch(x01, x, batch.y.to(self.device, non_blocking=True), soft)

    def _step(self, strategy: StepStrategy, sb: StepBatch, ctx: StepContext) -> tuple[StepOutput, dict[str, Any]]:
        for group in self.optimizer.param_groups:
            group["lr"] = ctx.lr
        self.optimizer.zero_grad(set_to_none=True)
        out = strategy.step(self, sb, ctx)
        average_gradients(self.params, self.info)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.recipe.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.recipe.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.ema is not None:
            self.ema.update(ctx.global_step + 1)
        return out, strategy.after_step(ctx)

    # -- checkpoint state ----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Optimizer, EMA and gradient-scaler state (the model's own state is the caller's)."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (missing parts keep their fresh state)."""
        if state.get("optimizer") is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])
