"""Roofline device model: evaluation over primitive ops and least-squares fits.

Per primitive op (from :mod:`nas.cost`) the time is ``max(MACs / (peak · eff[op class]), bytes /
bandwidth)`` — compute and memory traffic overlap, as in the paper's roofline (App. F) — plus a small
per-op overhead; a whole inference adds ``fixed_ms``. Element-wise ops (GELU, softmax, layer scale,
residual adds) and pooling have no MACs, so they cost their memory traffic. Bytes are the op's
weight plus input and output activation bytes in the target's dtype.

Fits minimise squared log-errors (relative errors, like MAPE) weighted by each point's expected
noise — a model error plus, for published values, the 0.1 ms rounding — with weak priors: the
efficiencies toward their class defaults and the ridge point toward the paper's fitted value
(Tab. 16) when the catalog gives one. The free parameters are the device entry's ``free`` list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from nas.cost import OP_CLASSES, Op
from nas.errors import NasError
from nas.latency._catalog import PARAM_NAMES, Device, DeviceModel

#: The efficiency parameter of each op class (None: memory traffic only).
EFF_PARAM: dict[str, str | None] = {
    "conv": "eff_conv",
    "pwconv": "eff_pwconv",
    "dwconv": "eff_dwconv",
    "matmul": "eff_matmul",
    "linear": "eff_linear",
    "elementwise": None,
    "pool": None,
}
_CLASS_INDEX = {c: i for i, c in enumerate(OP_CLASSES)}
#: Relative model error assumed for every fitted point (log scale).
MODEL_ERROR = 0.05
#: Prior widths (natural-log units): efficiencies and ridge point are only nudged toward their defaults.
EFF_PRIOR_TAU = 1.0
RIDGE_PRIOR_TAU = 1.0
_LOG_PARAMS = {"peak_gmacs", "bandwidth_gbs", "eff_conv", "eff_pwconv", "eff_dwconv", "eff_matmul", "eff_linear"}


@dataclass(frozen=True)
class OpBatch:
    """Ops of several samples (layers or models) as flat arrays, for vectorised evaluation."""

    macs: np.ndarray
    nbytes: np.ndarray
    cls: np.ndarray
    group: np.ndarray
    n_groups: int
    n_ops: np.ndarray


def op_batch(samples: Sequence[Sequence[Op]], dtype: str) -> OpBatch:
    """Flatten the ops of ``samples`` (each a list of ops) with their memory traffic in ``dtype``."""
    macs, nbytes, cls, group = [], [], [], []
    for g, ops in enumerate(samples):
        for o in ops:
            macs.append(o.macs)
            nbytes.append(o.weight_bytes(dtype) + o.act_bytes(dtype))
            cls.append(_CLASS_INDEX[o.op_class])
            group.append(g)
    return OpBatch(
        np.asarray(macs, dtype=np.float64),
        np.asarray(nbytes, dtype=np.float64),
        np.asarray(cls, dtype=np.int64),
        np.asarray(group, dtype=np.int64),
        len(samples),
        np.asarray([len(s) for s in samples], dtype=np.float64),
    )


def _eff_vector(model: DeviceModel) -> np.ndarray:
    # Memory-only classes get an infinite efficiency: their compute term is 0.
    return np.array([getattr(model, p) if (p := EFF_PARAM[c]) else np.inf for c in OP_CLASSES])


def batch_ms(model: DeviceModel, batch: OpBatch) -> np.ndarray:
    """Per-sample time (ms) of every op plus the per-op overhead; ``fixed_ms`` is not included."""
    compute = batch.macs / (model.peak_gmacs * 1e9 * _eff_vector(model)[batch.cls])
    memory = batch.nbytes / (model.bandwidth_gbs * 1e9)
    per_op = np.maximum(compute, memory) * 1e3
    return np.bincount(batch.group, per_op, minlength=batch.n_groups) + model.op_overhead_ms * batch.n_ops


def layer_ms(model: DeviceModel, ops: Sequence[Op], dtype: str) -> float:
    """Time (ms) of one layer's ops on the device model (no per-inference cost)."""
    return float(batch_ms(model, op_batch([ops], dtype))[0])


@dataclass(frozen=True)
class FitResult:
    """Outcome of a device-model fit."""

    model: DeviceModel
    free: tuple[str, ...]
    labels: tuple[str, ...]
    measured: np.ndarray
    predicted: np.ndarray
    cv_predicted: np.ndarray | None  # leave-one-out (or k-fold for large data) predictions
    cv: str  # "loo", "10-fold" or "none"

    @property
    def mape_pct(self) -> float:
        """In-sample mean absolute percentage error."""
        return float(np.mean(np.abs(self.predicted - self.measured) / self.measured) * 100)

    @property
    def cv_mape_pct(self) -> float | None:
        """Cross-validated (leave-one-out for small data) MAPE."""
        if self.cv_predicted is None:
            return None
        return float(np.mean(np.abs(self.cv_predicted - self.measured) / self.measured) * 100)


class _Problem:
    """Least-squares residuals over the free parameters of one device model."""

    def __init__(
        self,
        device: Device,
        free: tuple[str, ...],
        batch: OpBatch,
        y: np.ndarray,
        with_fixed: np.ndarray,
        sigma: np.ndarray,
    ):
        self.base = device.model
        self.free = free
        self.batch, self.y, self.with_fixed, self.sigma = batch, y, with_fixed.astype(np.float64), sigma
        self.ridge = device.ridge_point_ref
        self.eff_prior = {n: np.log(getattr(DeviceModel(), n)) for n in free if n.startswith("eff_")}

    def to_model(self, x: np.ndarray) -> DeviceModel:
        values = {n: float(np.exp(v)) if n in _LOG_PARAMS else float(v) for n, v in zip(self.free, x)}
        return replace(self.base, **values)

    def to_x(self, model: DeviceModel) -> np.ndarray:
        return np.array(
            [np.log(getattr(model, n)) if n in _LOG_PARAMS else getattr(model, n) for n in self.free], dtype=float
        )

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lo = [np.log(1e-3) if n in _LOG_PARAMS else 0.0 for n in self.free]
        hi = [np.log(1e6) if n in _LOG_PARAMS else 1e4 for n in self.free]
        return np.array(lo), np.array(hi)

    def predict(self, model: DeviceModel, batch: OpBatch, with_fixed: np.ndarray) -> np.ndarray:
        return batch_ms(model, batch) + model.fixed_ms * with_fixed

    def residuals(self, x: np.ndarray, idx: np.ndarray) -> np.ndarray:
        model = self.to_model(x)
        pred = self.predict(model, self.batch, self.with_fixed)[idx]
        r = (np.log(np.maximum(pred, 1e-9)) - np.log(self.y[idx])) / self.sigma[idx]
        prior = [(np.log(getattr(model, n)) - mu) / EFF_PRIOR_TAU for n, mu in self.eff_prior.items()]
        if self.ridge and {"peak_gmacs", "bandwidth_gbs"} & set(self.free):
            prior.append((np.log(model.ridge_point) - np.log(self.ridge)) / RIDGE_PRIOR_TAU)
        return np.concatenate([r, np.asarray(prior, dtype=float)])

    def solve(self, idx: np.ndarray, starts: list[np.ndarray]) -> np.ndarray:
        from scipy.optimize import least_squares  # 0.4 s to import: only fits need it, not predictions

        lo, hi = self.bounds()
        best = None
        for x0 in starts:
            res = least_squares(self.residuals, np.clip(x0, lo, hi), args=(idx,), bounds=(lo, hi), x_scale="jac")
            if best is None or res.cost < best.cost:
                best = res
        assert best is not None
        return best.x


def _starts(problem: _Problem, y: np.ndarray, batch: OpBatch) -> list[np.ndarray]:
    """Start points: the current parameters, and a grid of peaks and ridge points."""
    base = problem.base
    starts = [problem.to_x(base)]
    if "peak_gmacs" in problem.free:
        macs = np.bincount(batch.group, batch.macs, minlength=batch.n_groups)
        peak = float(np.median(macs / (y * 1e-3))) / 1e9 or base.peak_gmacs
        rp = problem.ridge or base.ridge_point
        # A start deep in the memory-bound (or compute-bound) regime has a zero gradient in the other
        # parameter: start from a grid of peaks and ridge points around the MACs-only estimate.
        rps = (rp / 10, rp, rp * 10) if "bandwidth_gbs" in problem.free else (rp,)
        for scale in (0.3, 1.0, 3.0):
            for r in rps:
                m = replace(base, peak_gmacs=peak * scale)
                if "bandwidth_gbs" in problem.free:
                    m = replace(m, bandwidth_gbs=peak * scale / r)
                starts.append(problem.to_x(m))
    return starts


def fit_device_model(
    device: Device,
    samples: Sequence[Sequence[Op]],
    latency_ms: Sequence[float],
    *,
    with_fixed: Sequence[bool],
    labels: Sequence[str],
    rounding_std_ms: float = 0.0,
    free: Sequence[str] | None = None,
    cross_validate: bool = True,
) -> FitResult:
    """Fit ``device``'s free parameters to measured latencies.

    ``samples`` are op lists (a whole model, or one layer); ``with_fixed`` says which samples include
    the per-inference cost. Cross-validation is leave-one-out up to 50 samples, 10-fold beyond.
    """
    y = np.asarray(latency_ms, dtype=np.float64)
    if len(y) != len(samples) or len(samples) == 0:
        raise NasError("device-model fit needs at least one measured latency")
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise NasError("device-model fit: every latency must be a positive number")
    fixed_mask = np.asarray(with_fixed, dtype=bool)
    names = tuple(free if free is not None else device.free)
    if not fixed_mask.any():
        names = tuple(n for n in names if n != "fixed_ms")  # not identifiable from single layers
    unknown = [n for n in names if n not in PARAM_NAMES]
    if unknown:
        raise NasError(f"unknown device-model parameter {unknown[0]!r}")
    batch = op_batch(samples, device.dtype)
    sigma = np.sqrt(MODEL_ERROR**2 + (rounding_std_ms / y) ** 2)
    problem = _Problem(device, names, batch, y, fixed_mask, sigma)
    every = np.arange(len(y))
    if not names:
        model = device.model
    else:
        model = problem.to_model(problem.solve(every, _starts(problem, y, batch)))
    predicted = problem.predict(model, batch, fixed_mask.astype(float))
    cv_pred: np.ndarray | None = None
    cv = "none"
    if cross_validate and names and len(y) >= 3:
        x_full = problem.to_x(model)
        cv_pred = np.empty_like(y)
        if len(y) <= 50:
            folds = [np.array([i]) for i in range(len(y))]
            cv = "loo"
        else:
            rng = np.random.default_rng(0)
            folds = np.array_split(rng.permutation(len(y)), 10)
            cv = "10-fold"
        for held in folds:
            train = np.setdiff1d(every, held)
            m = problem.to_model(problem.solve(train, [x_full]))
            cv_pred[held] = problem.predict(m, batch, fixed_mask.astype(float))[held]
    return FitResult(model, names, tuple(labels), y, predicted, cv_pred, cv)


__all__ = ["EFF_PARAM", "FitResult", "OpBatch", "batch_ms", "fit_device_model", "layer_ms", "op_batch"]
