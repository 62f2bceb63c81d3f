"""``--estimator supernet+macs:CKPT``: the supernet's accuracy and the MAC count, ranked together.

On the ranking benchmark the supernet and the MAC count err in opposite directions (the supernet
over-rates 5×5 / expansion-4 / start-depthwise members and under-rates wide stages; the MAC count the
reverse), and the mean of their two ranks ranks members better than either (``benchmarks/README.md``,
"How well does it rank?"). A search does not score a fixed set of members, so ranks are taken against a fixed
**reference sample** of the supernet's space (``n_ref`` members drawn with a fixed seed): each
candidate's supernet accuracy and log-MAC count become positions in the reference distributions
(mid-rank empirical CDFs, linear between reference points and continued with the end slopes beyond
them, so candidates outside the sample's range still order), the two positions are averaged with
equal weights, and the mean is mapped back through the reference accuracies' quantile function. The
score therefore reads as a supernet accuracy (what TuNAS's absolute reward expects next to its
latency penalty), but orders members by the combined rank. Nothing is fitted to stand-alone results.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from nas.cost import count_macs
from nas.errors import NasError
from nas.space import SearchSpace, sample_distinct
from nas.spec import ArchSpec
from nas.supernet._estimators import AccuracyEstimator, CachedEstimator
from nas.supernet._few_shot import FewShotEstimator
from nas.supernet._load_estimator import load_supernet_estimator
from nas.supernet._supernet_estimator import SupernetEstimator
from nas.supernet._tunas import Controller

#: Reference members per estimator: 64 supernet evaluations (about 40 s on 2 CPU threads at 32 px).
DEFAULT_REFERENCE = 64


def _knots(ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct reference values, their mid-rank CDF positions in (0, 1))."""
    xs = np.sort(np.asarray(ref, dtype=np.float64))
    ps = (np.arange(len(xs)) + 0.5) / len(xs)
    ux, inv = np.unique(xs, return_inverse=True)
    return ux, np.bincount(inv, ps) / np.bincount(inv)


def _linear(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Piecewise-linear through (xp, fp), continued with the end segments' slopes (strictly increasing)."""
    x = np.asarray(x, dtype=np.float64)
    if len(xp) == 1:  # a constant reference: everything sits at its one position
        return np.full_like(x, fp[0])
    y = np.interp(x, xp, fp)
    lo, hi = x < xp[0], x > xp[-1]
    y[lo] = fp[0] + (x[lo] - xp[0]) * (fp[1] - fp[0]) / (xp[1] - xp[0])
    y[hi] = fp[-1] + (x[hi] - xp[-1]) * (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
    return y


class RankMean:
    """Maps (accuracy, MACs) pairs to the combined score, given the reference sample's values."""

    def __init__(self, ref_acc: np.ndarray, ref_macs: np.ndarray) -> None:
        self._acc = _knots(ref_acc)
        self._macs = _knots(np.log(np.asarray(ref_macs, dtype=np.float64)))

    def __call__(self, acc: np.ndarray, macs: np.ndarray) -> np.ndarray:
        """Scores (accuracy scale) of members with supernet accuracies ``acc`` and MAC counts ``macs``."""
        p = (_linear(acc, *self._acc) + _linear(np.log(np.asarray(macs, dtype=np.float64)), *self._macs)) / 2
        return _linear(p, self._acc[1], self._acc[0])


class SupernetMacsEstimator(CachedEstimator):
    """Supernet accuracy and MAC count combined by their mean rank in a reference sample (module docstring)."""

    def __init__(
        self,
        path: str | Path,
        *,
        n_ref: int = DEFAULT_REFERENCE,
        seed: int = 0,
        supernet: SupernetEstimator | FewShotEstimator | None = None,
    ) -> None:
        super().__init__()
        if n_ref < 2:
            raise NasError(f"supernet+macs: the reference sample needs at least 2 members (got {n_ref})")
        self.base = supernet if supernet is not None else load_supernet_estimator(path)
        self.n_ref, self.seed = n_ref, seed
        self._map: RankMean | None = None
        self.name = f"supernet+macs:{self.base.path}"
        self.meaning = (
            f"mean of two ranks in a reference sample of {n_ref} members of the supernet's space (seed {seed}), "
            f"the supernet's score [{self.base.meaning}] and the MAC count, mapped back through the reference "
            "accuracies' quantiles: reads as a supernet accuracy, orders by the combined rank"
        )

    @property
    def search_space(self) -> SearchSpace:
        """The space the supernet was trained on (at its own resolution)."""
        return self.base.search_space

    def reference(self) -> list[ArchSpec]:
        """The reference sample: ``n_ref`` distinct members of the supernet's space (fixed seed)."""
        return sample_distinct(self.base.search_space, np.random.default_rng(self.seed), self.n_ref)

    def _macs(self, archs: list[ArchSpec]) -> np.ndarray:
        # At the supernet's resolution, like the reference: a search hands in members at the space's
        # deployment resolution, whose MAC counts would all sit above the reference range.
        return np.asarray([count_macs(self.base.normalize(a)) for a in archs], dtype=np.float64)

    def _mapping(self) -> RankMean:
        if self._map is None:
            ref = self.reference()
            self._map = RankMean(self.base.score(ref), self._macs(ref))
        return self._map

    def _score_one(self, arch: ArchSpec) -> float:
        return float(self._mapping()(self.base.score([arch]), self._macs([arch]))[0])

    def tunas_quality(self, batch_size: int = 256, seed: int = 0) -> Callable[[list[ArchSpec]], np.ndarray]:
        """TuNAS per-step quality: the one-batch supernet accuracy combined with the MAC count."""
        batch = self.base.tunas_quality(batch_size, seed)
        mapping = self._mapping()

        def quality(archs: list[ArchSpec]) -> np.ndarray:
            return mapping(batch(archs), self._macs(archs))

        return quality

    def controller(self) -> Controller | None:
        """The TuNAS controller trained jointly with the weights (``sampler = tunas``), else None."""
        return self.base.controller()


def make_supernet_macs_estimator(arg: str | None) -> AccuracyEstimator:
    """Registry factory of ``supernet+macs:PATH``."""
    if not arg:
        raise NasError("estimator 'supernet+macs' needs a checkpoint: supernet+macs:PATH")
    return SupernetMacsEstimator(arg)


__all__ = ["RankMean", "SupernetMacsEstimator", "make_supernet_macs_estimator"]
