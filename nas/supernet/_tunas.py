"""TuNAS (Bender et al., CVPR 2020): the REINFORCE controller and the search engine with the
absolute-value reward ``R(α) = Q(α) + Σ_i β_i·|T_i(α)/T0_i − 1|`` (β < 0, one term per latency target).

The controller is one independent categorical distribution per :class:`~nas.space.Decision`
(TuNAS's ``independent_sample``; logits start at 0, i.e. uniform). Its update is REINFORCE with an
exponential-moving-average baseline: ``loss = −(R − b)·log p(α)``, Adam with β1 = 0, β2 = 0.999,
ε = 1e-8. Only the decisions that matter for a sampled architecture enter ``log p(α)`` (a block's
variant beyond the chosen depth does not), which keeps the estimator unbiased and less noisy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from nas.errors import NasError
from nas.space import SearchSpace, canonical, decisions, decode
from nas.spec import ArchSpec
from nas.supernet._reward import TUNAS_BETA, abs_reward
from nas.supernet._supernet import active_mask, extreme_vector

LatencyFn = Callable[[list[ArchSpec]], np.ndarray]
QualityFn = Callable[[list[ArchSpec]], np.ndarray]


@runtime_checkable
class _Scores(Protocol):
    """Anything that scores architectures (an :class:`~nas.supernet.AccuracyEstimator`)."""

    def score(self, archs: Sequence[ArchSpec]) -> np.ndarray: ...


@runtime_checkable
class _TunasScores(_Scores, Protocol):
    """A scorer with a cheap per-step quality as well (:class:`~nas.supernet.TunasEstimator`)."""

    def tunas_quality(self) -> QualityFn: ...


#: What :func:`tunas_search` takes as its quality.
Quality = QualityFn | _Scores


class Controller:
    """Independent categorical per decision of ``space``, trained by REINFORCE (see module docstring)."""

    def __init__(
        self, space: SearchSpace, *, lr: float = 0.05, baseline_momentum: float = 0.95, entropy_weight: float = 0.0
    ) -> None:
        self.space = space
        self.decisions = decisions(space)
        self.logits = [torch.zeros(d.radix, dtype=torch.float64, requires_grad=True) for d in self.decisions]
        self.optimizer = torch.optim.Adam(self.logits, lr=lr, betas=(0.0, 0.999), eps=1e-8)
        self.baseline_momentum = baseline_momentum
        self.entropy_weight = entropy_weight
        self.baseline: float | None = None
        self.updates = 0

    # -- distribution --------------------------------------------------------------------------

    def probabilities(self) -> list[np.ndarray]:
        """Current probabilities, one array per decision."""
        with torch.no_grad():
            return [torch.softmax(lg, 0).numpy().copy() for lg in self.logits]

    def probability_table(self) -> dict[str, dict[str, float]]:
        """``{decision name: {choice label: probability}}`` (JSON-able)."""
        return {
            d.name: {str(c): round(float(p), 6) for c, p in zip(d.choices, probs, strict=True)}
            for d, probs in zip(self.decisions, self.probabilities(), strict=True)
        }

    def entropy(self) -> float:
        """Sum of the decisions' entropies (nats)."""
        with torch.no_grad():
            return float(sum(-(torch.softmax(lg, 0) * torch.log_softmax(lg, 0)).sum() for lg in self.logits))

    def sample(self, rng: np.random.Generator, n: int = 1) -> np.ndarray:
        """``n`` canonical encodings drawn from the controller."""
        cols = []
        for probs in self.probabilities():
            cdf = np.cumsum(probs)
            cols.append(np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right"), len(probs) - 1))
        if not cols:
            return np.zeros((n, 0), dtype=np.int64)
        return canonical(self.space, np.stack(cols, axis=1).astype(np.int64))

    def most_likely(self) -> np.ndarray:
        """Canonical encoding of the most likely option of every decision."""
        vec = np.asarray([int(np.argmax(p)) for p in self.probabilities()], dtype=np.int64)
        return canonical(self.space, vec)

    def most_likely_arch(self) -> ArchSpec:
        """The architecture of :meth:`most_likely`."""
        return decode(self.space, self.most_likely())

    def log_prob(self, vecs: np.ndarray) -> torch.Tensor:
        """log p of each encoding (only the decisions active for it count)."""
        vecs = np.atleast_2d(vecs)
        mask = torch.from_numpy(active_mask(self.space, vecs))
        idx = torch.from_numpy(vecs)
        total = torch.zeros(len(vecs), dtype=torch.float64)
        for n, lg in enumerate(self.logits):
            lp = torch.log_softmax(lg, 0)[idx[:, n]]
            total = total + torch.where(mask[:, n], lp, torch.zeros_like(lp))
        return total

    # -- learning ------------------------------------------------------------------------------

    def update(self, vecs: np.ndarray, rewards: np.ndarray, lr: float | None = None) -> dict[str, float]:
        """One REINFORCE step on sampled encodings and their rewards; returns step statistics.

        ``lr = 0`` only moves the baseline (TuNAS's RL delay). The baseline starts at the first
        mean reward.
        """
        rewards = np.asarray(rewards, dtype=np.float64)
        mean_r = float(rewards.mean())
        if self.baseline is None:
            self.baseline = mean_r
        adv = torch.from_numpy(rewards - self.baseline)
        if lr is None or lr > 0:
            if lr is not None:
                for g in self.optimizer.param_groups:
                    g["lr"] = lr
            self.optimizer.zero_grad()
            loss = -(adv * self.log_prob(vecs)).mean()
            if self.entropy_weight:
                ent = sum(-(torch.softmax(lg, 0) * torch.log_softmax(lg, 0)).sum() for lg in self.logits)
                loss = loss - self.entropy_weight * ent
            if self.logits:
                loss.backward()
                self.optimizer.step()
            self.updates += 1
        m = self.baseline_momentum
        self.baseline = m * self.baseline + (1 - m) * mean_r
        return {"reward": mean_r, "baseline": self.baseline, "advantage": float(adv.mean()), "entropy": self.entropy()}

    # -- warm-up -------------------------------------------------------------------------------

    def warmup(self, vecs: np.ndarray, rng: np.random.Generator, p_op: float, p_filter: float) -> np.ndarray:
        """TuNAS op and filter warm-up on sampled encodings.

        Each op decision (UIB variant, depth, MQA slot) independently becomes its largest option with
        probability ``p_op``, each filter decision (stage width) its widest with ``p_filter``. With
        nested weight sharing the largest option contains every other option's weights, so this is
        what "enable all ops / all filters" trains.
        """
        if p_op <= 0 and p_filter <= 0:
            return vecs
        big = extreme_vector(self.space, True)
        out = np.array(vecs, copy=True)
        for n, d in enumerate(self.decisions):
            p = p_filter if d.kind == "channels" else p_op
            if p > 0:
                hit = rng.random(len(out)) < p
                out[hit, n] = big[n]
        return canonical(self.space, out)

    # -- state ---------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain values only (``torch.load(weights_only=True)`` reads it back)."""
        return {
            "logits": [lg.detach().clone() for lg in self.logits],
            "optimizer": self.optimizer.state_dict(),
            "baseline": self.baseline,
            "updates": self.updates,
            "decisions": [d.name for d in self.decisions],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (the decisions must be the same)."""
        if list(state["decisions"]) != [d.name for d in self.decisions]:
            raise NasError("controller state belongs to a different search space (decisions differ)")
        with torch.no_grad():
            for lg, saved in zip(self.logits, state["logits"], strict=True):
                lg.copy_(saved)
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline = state["baseline"]
        self.updates = int(state["updates"])


# ----------------------------------------------------------------------------------------------
# the search engine
# ----------------------------------------------------------------------------------------------


@dataclass
class TunasResult:
    """Outcome of a TuNAS search (JSON-able through :meth:`to_dict`)."""

    arch: ArchSpec  #: the controller's most likely architecture at the end
    score: float  #: its quality (the final scorer: full estimator when available)
    latency_ms: list[float]  #: its cost per target, in the order of the latency functions
    reward: float  #: its reward
    budgets: list[float]
    betas: list[float]
    probabilities: dict[str, dict[str, float]]  #: final controller probabilities per decision
    history: list[dict[str, float]] = field(default_factory=list)  #: per step: reward, quality, cost, baseline, …
    steps: int = 0
    samples: int = 0  #: architectures evaluated (with repeats)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return {
            "arch": self.arch.arch,
            "score": self.score,
            "latency_ms": self.latency_ms,
            "reward": self.reward,
            "budgets": self.budgets,
            "betas": self.betas,
            "probabilities": self.probabilities,
            "history": self.history,
            "steps": self.steps,
            "samples": self.samples,
            "seconds": round(self.seconds, 3),
        }


def _as_list(x: Any, n: int, what: str) -> list[Any]:
    if isinstance(x, (list, tuple)):
        if len(x) != n:
            raise NasError(f"{what}: {len(x)} values for {n} latency target(s)")
        return list(x)
    return [x] * n


def _resolve_quality(quality: Quality) -> tuple[QualityFn, QualityFn]:
    """(per-step quality, final scorer). An estimator offering ``tunas_quality()`` (the supernet's)
    gives a cheap one-batch reward for steps and its full score for the final architecture."""
    if isinstance(quality, _TunasScores):
        return quality.tunas_quality(), quality.score
    if isinstance(quality, _Scores):
        return quality.score, quality.score
    if callable(quality):
        return quality, quality
    raise NasError("quality must be a callable list[ArchSpec] -> scores or an accuracy estimator")


def _check_search(
    steps: int,
    samples_per_step: int,
    latency: LatencyFn | Sequence[LatencyFn],
    budget_ms: float | Sequence[float],
    beta: float | Sequence[float],
) -> tuple[list[LatencyFn], list[float], list[float]]:
    """:func:`tunas_search`'s arguments checked: (latency functions, budgets, betas), one per target."""
    if steps < 1:
        raise NasError(f"steps must be at least 1 (got {steps})")
    if samples_per_step < 1:
        raise NasError(f"samples_per_step must be at least 1 (got {samples_per_step})")
    fns: list[LatencyFn] = list(latency) if isinstance(latency, (list, tuple)) else [latency]  # type: ignore[list-item]
    if not fns:
        raise NasError("tunas_search needs at least one latency function")
    budgets = [float(b) for b in _as_list(budget_ms, len(fns), "budget")]
    betas = [float(b) for b in _as_list(beta, len(fns), "beta")]
    if any(not math.isfinite(b) or b <= 0 for b in budgets):
        raise NasError(f"budgets must be positive (got {budgets})")
    if any(b > 0 for b in betas):
        raise NasError(f"beta must be negative (a cost penalty; got {betas})")
    return fns, budgets, betas


def tunas_search(
    space: SearchSpace,
    quality: Quality,
    latency: LatencyFn | Sequence[LatencyFn],
    budget_ms: float | Sequence[float],
    *,
    steps: int,
    beta: float | Sequence[float] = TUNAS_BETA,
    seed: int = 0,
    samples_per_step: int = 1,
    rl_lr: float = 0.05,
    rl_lr_growth: float = 1.0,
    baseline_momentum: float = 0.95,
    entropy_weight: float = 0.0,
    controller: Controller | None = None,
    progress: Callable[[int, dict[str, float]], None] | None = None,
    history_every: int = 1,
) -> TunasResult:
    """REINFORCE search over ``space`` with the TuNAS absolute reward; weights stay fixed.

    Args:
        space: the search space in the phase to search (joint, coarse or a fine space).
        quality: ``list[ArchSpec] -> np.ndarray`` of accuracies in [0, 1] (the reward's Q; its scale
            sets what β means), or an :class:`~nas.supernet.AccuracyEstimator`. The supernet
            estimator (``make_estimator("supernet:CKPT")``) rewards each step with the sampled
            subnet's accuracy on one held-out batch (BatchNorm in batch-statistics mode, as TuNAS)
            and scores the final architecture with its full estimate (BN recalibrated, whole
            held-out split).
        latency: one cost function per target, ``list[ArchSpec] -> ms`` (e.g. a latency table's
            predictor), or a single one.
        budget_ms: T0 per target (same order), or one value for all.
        steps: controller updates.
        beta: β (< 0) per target or one value for all; TuNAS's default is −0.1.
        seed: seeds the controller's sampling.
        samples_per_step: architectures per update (their mean reward is one REINFORCE batch).
        rl_lr: Adam learning rate of the controller (logits start at 0); ``rl_lr_growth`` multiplies it
            exponentially over the search (TuNAS uses 10 with a much smaller starting rate).
        baseline_momentum: EMA momentum of the reward baseline (TuNAS: 0.95).
        entropy_weight: entropy bonus (TuNAS: 0).
        controller: continue from an existing controller (e.g. the one trained jointly with a supernet);
            its space must be ``space``.
        progress: called after every step with ``(step, stats)``; stats has reward, quality,
            ``latency_ms`` (first target), baseline, entropy and ``p_max`` (mean top probability).
        history_every: keep every n-th step's stats in ``history``.

    Returns:
        :class:`TunasResult` with the most likely architecture, its score, latency per target and
        reward, the final probabilities per decision and the reward history.
    """
    import time

    fns, budgets, betas = _check_search(steps, samples_per_step, latency, budget_ms, beta)
    step_q, final_q = _resolve_quality(quality)
    ctl = controller or Controller(space, lr=rl_lr, baseline_momentum=baseline_momentum, entropy_weight=entropy_weight)
    if controller is not None and controller.space != space:
        raise NasError("the controller was built for another search space")
    rng = np.random.default_rng(seed)
    hist: list[dict[str, float]] = []
    t_start = time.perf_counter()
    for step in range(steps):
        vecs = ctl.sample(rng, samples_per_step)
        archs = [decode(space, v) for v in vecs]
        q = np.asarray(step_q(archs), dtype=np.float64)
        costs = [np.asarray(f(archs), dtype=np.float64) for f in fns]
        r = abs_reward(q, costs, budgets, betas)
        lr = rl_lr * rl_lr_growth ** (step / max(1, steps - 1))
        stats = ctl.update(vecs, r, lr)
        stats.update(
            step=step,
            quality=float(q.mean()),
            latency_ms=float(costs[0].mean()),
            lr=lr,
            p_max=float(np.mean([p.max() for p in ctl.probabilities()])) if ctl.decisions else 1.0,
        )
        if step % history_every == 0 or step == steps - 1:
            hist.append(stats)
        if progress is not None:
            progress(step, stats)
    return _final(ctl, final_q, fns, budgets, betas, hist, steps, steps * samples_per_step, t_start)


def _final(
    ctl: Controller,
    final_q: QualityFn,
    fns: list[LatencyFn],
    budgets: list[float],
    betas: list[float],
    hist: list[dict[str, float]],
    steps: int,
    samples: int,
    t_start: float,
) -> TunasResult:
    """The search's result: the controller's most likely architecture, scored in full (``t_start``:
    when the search began, by :func:`time.perf_counter`)."""
    import time

    best = ctl.most_likely_arch()
    score = float(np.asarray(final_q([best]), dtype=np.float64)[0])
    lat = [float(np.asarray(f([best]), dtype=np.float64)[0]) for f in fns]
    reward = float(abs_reward(np.asarray([score]), [np.asarray([v]) for v in lat], budgets, betas)[0])
    return TunasResult(
        arch=best,
        score=score,
        latency_ms=lat,
        reward=reward,
        budgets=budgets,
        betas=betas,
        probabilities=ctl.probability_table(),
        history=hist,
        steps=steps,
        samples=samples,
        seconds=time.perf_counter() - t_start,
    )


__all__ = [
    "Controller",
    "LatencyFn",
    "Quality",
    "QualityFn",
    "TunasResult",
    "tunas_search",
]
