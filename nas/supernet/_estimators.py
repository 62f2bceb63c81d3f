"""Accuracy estimators behind one protocol, and the registry the search command resolves names with.

An estimator scores architectures (higher = better) and states what its number means. Names:

* ``zen[@R]`` (default, R = 64 px) — Zen-score, training-free (Lin et al., ICCV 2021);
* ``naswot[@R]`` — NASWOT log-determinant of ReLU codes, training-free (Mellor et al., ICML 2021);
* ``params`` — log10 of the parameter count (a capacity baseline, instant);
* ``supernet:PATH`` — accuracy of the subnet inherited from a trained supernet checkpoint;
* ``supernet+macs:PATH`` — that accuracy and the MAC count combined by their mean rank in a fixed
  reference sample of the supernet's space (reads as an accuracy; see ``nas.supernet._rank_mean``).

Every estimator caches its scores per canonical arch string.
"""

from __future__ import annotations

import importlib
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from nas.errors import NasError
from nas.spec import ArchSpec

if TYPE_CHECKING:
    import torch
    from torch import nn

    from nas.model import Net
    from nas.space import SearchSpace
    from nas.supernet._gaussian import GaussianPool, ZenModules
    from nas.supernet._tunas import Controller

#: Scores of a batch of architectures (TuNAS's per-step quality).
QualityFn = Callable[[list[ArchSpec]], np.ndarray]


@runtime_checkable
class AccuracyEstimator(Protocol):
    """Scores architectures; higher is better."""

    #: Short identifier written next to every score (e.g. ``zen@64``, ``supernet:ckpt.pt``).
    name: str
    #: One sentence saying what the number means (shown in results and summaries).
    meaning: str

    def score(self, archs: Sequence[ArchSpec]) -> np.ndarray:
        """Scores of ``archs`` (float64, same order)."""
        ...


@runtime_checkable
class SpaceEstimator(AccuracyEstimator, Protocol):
    """An estimator that scores the members of one search space only: it was trained or fitted there
    (``supernet:``, ``supernet+macs:``, ``predictor:``). A search runs in that space."""

    @property
    def search_space(self) -> SearchSpace:
        """The space it scores (at the resolution it reports)."""
        ...


@runtime_checkable
class TunasEstimator(SpaceEstimator, Protocol):
    """A supernet-backed estimator that can drive TuNAS: a cheap per-step quality in [0, 1] and the
    controller trained jointly with its weights, if any."""

    def tunas_quality(self, batch_size: int = 256, seed: int = 0) -> QualityFn:
        """Per-step quality of a batch of architectures (accuracy scale)."""
        ...

    def controller(self) -> Controller | None:
        """The TuNAS controller trained with the weights (``sampler = tunas``), else None."""
        ...


@runtime_checkable
class TrainedOnData(Protocol):
    """An estimator that learnt from data; its checkpoint metadata names it (``data``, ``classes``,
    ``resolution``)."""

    meta: dict[str, Any]


@runtime_checkable
class WrappingEstimator(Protocol):
    """An estimator built on another one (``supernet+macs`` on a supernet)."""

    base: AccuracyEstimator


class CachedEstimator(ABC):
    """Base class: per-arch-string cache around :meth:`_score_one`."""

    name = "abstract"
    meaning = ""

    def __init__(self) -> None:
        self._cache: dict[str, float] = {}

    @abstractmethod
    def _score_one(self, arch: ArchSpec) -> float:
        """Score of one architecture (subclasses define what it means)."""

    def score(self, archs: Sequence[ArchSpec]) -> np.ndarray:
        """Scores of ``archs``; each distinct architecture is scored once per estimator instance."""
        out = np.empty(len(archs), dtype=np.float64)
        for i, a in enumerate(archs):
            key = a.arch
            if key not in self._cache:
                self._cache[key] = float(self._score_one(a))
            out[i] = self._cache[key]
        return out


class ParamsEstimator(CachedEstimator):
    """log10(parameters): the capacity baseline every proxy should beat."""

    name = "params"
    meaning = "log10 of the parameter count (capacity baseline; not an accuracy)"

    def _score_one(self, arch: ArchSpec) -> float:
        from nas.cost import count_params

        return math.log10(count_params(arch))


class _TorchProxy(CachedEstimator):
    """Shared set-up of training-free proxies: the network at a reduced resolution, fixed seed, 1 class."""

    def __init__(self, resolution: int = 64, batch: int = 8, seed: int = 0, threads: int | None = None):
        super().__init__()
        if not 16 <= resolution <= 1024:
            raise NasError(f"proxy resolution must be in [16, 1024] (got {resolution})")
        self.resolution, self.batch, self.seed, self.threads = resolution, batch, seed, threads

    def _model(self, arch: ArchSpec) -> Net:
        from nas.model import build_model

        # The classifier is irrelevant to the proxies; one class keeps the build cheap.
        small = ArchSpec(self.resolution, arch.stem, arch.blocks, arch.head, 1)
        return build_model(small, seed=self.seed)

    def _inputs(self, n: int = 1) -> list[torch.Tensor]:
        import torch

        g = torch.Generator().manual_seed(self.seed + 1)
        return [torch.randn(self.batch, 3, self.resolution, self.resolution, generator=g) for _ in range(n)]

    def _threads(self):
        import torch

        class _Threads:
            def __enter__(s) -> None:
                s.old = torch.get_num_threads()
                if self.threads:
                    torch.set_num_threads(self.threads)

            def __exit__(s, *exc: object) -> None:
                torch.set_num_threads(s.old)

        return _Threads()


class ZenScore(_TorchProxy):
    """Zen-score (Lin et al., "Zen-NAS", ICCV 2021), as in the authors' ``compute_zen_score``.

    Gaussian-initialised weights, BN in training mode; score = log E|f(x) − f(x + γ·ε)| on the
    pre-pooling feature map + Σ log sqrt(mean BN running variance), γ = 0.01.

    The authors run both inputs through one network, so every BatchNorm's running variance ends as
    0.81 + 0.09·v₁ + 0.1·v₂ (momentum 0.1, batch variances v₁ of the first pass and v₂ of the
    second). In training mode a pass normalises with its own batch statistics, so the two passes do
    not depend on each other: here they run at the same time on two copies of the network that
    share its weights, and the running variances are combined afterwards — the same numbers up to
    float rounding, about 1.3x faster on two cores than one network on two torch threads.
    """

    def __init__(
        self, resolution: int = 64, batch: int = 8, seed: int = 0, gamma: float = 1e-2, threads: int | None = None
    ):
        super().__init__(resolution, batch, seed, threads)
        self.gamma = gamma
        self.name = f"zen@{resolution}"
        self.meaning = (
            f"Zen-score (Lin et al. 2021) of the untrained network at {resolution} px, seed {seed}: log expressivity; "
            "higher ranks higher; a training-free ranking signal, not an accuracy"
        )

    def __getstate__(self) -> dict[str, Any]:
        # the weight pool, the kept modules and the worker threads are rebuilt where it is unpickled
        return {k: v for k, v in self.__dict__.items() if k not in ("_pool", "_modules", "_workers", "_zen_inputs")}

    def _score_one(self, arch: ArchSpec) -> float:
        import torch

        (first, second), (bns_first, bns_second) = self._gaussian_models(arch)
        x, eps = self._inputs_once()
        out, mixed = self._forward_pair((first, second), (x, x + self.gamma * eps))
        with torch.no_grad():
            delta = torch.sum(torch.abs(out - mixed), dim=[1, 2, 3]).mean()
            log_bn = _log_bn_scale(bns_first, bns_second)
        if not torch.isfinite(delta) or delta <= 0:
            return -math.inf
        return float(torch.log(delta)) + log_bn

    def _inputs_once(self) -> tuple[torch.Tensor, torch.Tensor]:
        """x and ε (the same for every candidate), channels-last: oneDNN convolutions instead of the
        slow NCHW path (3x faster on CPU)."""
        import torch

        if "_zen_inputs" not in self.__dict__:
            x, eps = self._inputs(2)
            cl = torch.channels_last
            self._zen_inputs = (x.contiguous(memory_format=cl), eps.contiguous(memory_format=cl))
        return self._zen_inputs

    def _forward_pair(self, models: tuple[Net, Net], inputs: tuple[torch.Tensor, torch.Tensor]) -> list[torch.Tensor]:
        """Both passes, in two threads of half the torch threads each when there are two or more."""
        import torch

        threads = self.threads or torch.get_num_threads()
        if threads < 2:
            with self._threads():
                return [_features(m, x) for m, x in zip(models, inputs, strict=True)]
        workers = self.__dict__.get("_workers")
        if workers is None:
            from nas._threads import idle_pool

            # torch's thread count is per thread: each worker sets its own once
            workers = self._workers = idle_pool(2, torch.set_num_threads, (threads // 2,))
        futures = [workers.submit(_features, m, x) for m, x in zip(models, inputs, strict=True)]
        return [f.result() for f in futures]

    def _kit(self) -> ZenModules:
        from nas.supernet._gaussian import ZenModules

        if "_modules" not in self.__dict__:
            self._modules = ZenModules()
        return self._modules

    def _gaussian_pool(self) -> GaussianPool:
        from nas.supernet._gaussian import GaussianPool

        if "_pool" not in self.__dict__:
            self._pool = GaussianPool(self.seed)
        return self._pool

    def _draws(self, offset: int, n: int) -> torch.Tensor:
        """Draws ``offset`` to ``offset + n`` of this estimator's Gaussian sequence (a view)."""
        return self._gaussian_pool().draws(offset, n)

    def _gaussian_models(self, arch: ArchSpec) -> tuple[tuple[Net, Net], tuple[list[nn.BatchNorm2d], ...]]:
        """Two copies of the network with Zen's initialisation and the same weights (see
        :mod:`nas.supernet._gaussian`), and their BatchNorms; the second copy's BatchNorms have
        momentum 1, so its running variance is its pass's batch variance (see the class doc).
        Modules are kept from earlier candidates; every weight is a view into the seed's Gaussian
        pool, filled in module order from its start, so each candidate reads the same draws
        whatever came before."""
        import torch

        from nas.model import Net

        small = ArchSpec(self.resolution, arch.stem, arch.blocks, arch.head, 1)
        kit = self._kit()
        with torch.device("meta"):
            first = Net(small, block_builder=kit.builder(), head_builder=kit.head_builder())
        bns_first = kit.fill(first, self._gaussian_pool())
        second, bns_second = kit.twin(first)
        return (first, second), (bns_first, bns_second)


def _features(model: Net, x: torch.Tensor) -> torch.Tensor:
    """The training-mode feature map of ``x`` (grad mode is per thread: set here)."""
    import torch

    with torch.no_grad():
        return model.train().forward_features(x)


def _log_bn_scale(first: Sequence[nn.BatchNorm2d], second: Sequence[nn.BatchNorm2d]) -> float:
    """Σ log sqrt(mean running variance) over the BatchNorms, as one network would hold them after
    the two passes: 0.9·(first's running variance) + 0.1·(second's batch variance)."""
    import torch

    means = [
        torch.mean(0.9 * a.running_var + 0.1 * b.running_var)
        for a, b in zip(first, second, strict=True)
        if a.running_var is not None and b.running_var is not None
    ]
    return float(torch.log(torch.sqrt(torch.stack(means).double())).sum()) if means else 0.0


class NASWOT(_TorchProxy):
    """NASWOT (Mellor et al., "Neural Architecture Search without Training", ICML 2021).

    Binary codes of every activation's sign pattern over a batch; score = log|K_H| with
    K_H[i, j] = number of units where inputs i and j agree.
    """

    def __init__(self, resolution: int = 64, batch: int = 16, seed: int = 0, threads: int | None = None):
        super().__init__(resolution, batch, seed, threads)
        self.name = f"naswot@{resolution}"
        self.meaning = (
            f"NASWOT score (Mellor et al. 2021) at {resolution} px, batch {batch}, seed {seed}: log-determinant of "
            "the activation-pattern kernel; higher ranks higher; training-free, not an accuracy"
        )

    def _score_one(self, arch: ArchSpec) -> float:
        import torch
        from torch import nn

        model = self._model(arch).eval()
        n = self.batch
        k = torch.zeros(n, n, dtype=torch.float64)

        def hook(_m: nn.Module, _inp: object, out: torch.Tensor) -> None:
            codes = (out.detach().flatten(1) > 0).to(torch.float64)
            k.add_(codes @ codes.T + (1 - codes) @ (1 - codes).T)

        handles = [
            m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.ReLU, nn.ReLU6, nn.GELU))
        ]
        try:
            with torch.no_grad(), self._threads():
                model.forward_features(self._inputs(1)[0])
        finally:
            for h in handles:
                h.remove()
        sign, logdet = torch.linalg.slogdet(k)
        return float(logdet) if sign > 0 else -math.inf


def _proxy_factory(cls: Callable[..., AccuracyEstimator]) -> Callable[[str | None], AccuracyEstimator]:
    def make(arg: str | None) -> AccuracyEstimator:
        if arg is None:
            return cls()
        if not re.fullmatch(r"\d+", arg):
            raise NasError(f"estimator resolution must be an integer, e.g. zen@64 (got {arg!r})")
        return cls(resolution=int(arg))

    return make


def _params(arg: str | None) -> AccuracyEstimator:
    if arg:
        raise NasError("estimator 'params' takes no argument")
    return ParamsEstimator()


#: name → factory(argument). ``name@ARG`` and ``name:ARG`` both pass ARG. Entries given as
#: ``"module:function"`` strings are imported on first use (the supernet estimator needs training code).
ESTIMATORS: dict[str, Callable[[str | None], AccuracyEstimator] | str] = {
    "zen": _proxy_factory(ZenScore),
    "naswot": _proxy_factory(NASWOT),
    "params": _params,
    "supernet": "nas.supernet._load_estimator:make_supernet_estimator",
    "supernet+macs": "nas.supernet._rank_mean:make_supernet_macs_estimator",
    "predictor": "nas.supernet._predictor:make_predictor_estimator",
}
DEFAULT_ESTIMATOR = "zen"


def make_estimator(text: str | None = None) -> AccuracyEstimator:
    """Estimator from its name (``zen``, ``zen@96``, ``naswot``, ``params``, ``supernet:PATH``,
    ``supernet+macs:PATH``)."""
    text = (text or DEFAULT_ESTIMATOR).strip()
    m = re.fullmatch(r"([a-z_+]+)(?:[@:](.+))?", text)
    if m is None or m.group(1) not in ESTIMATORS:
        raise NasError(
            f"unknown estimator {text!r} (allowed: zen[@RES], naswot[@RES], params, supernet:CKPT, supernet+macs:CKPT, "
            "predictor:PRED)"
        )
    factory = ESTIMATORS[m.group(1)]
    if isinstance(factory, str):
        mod, fn = factory.split(":")
        try:
            factory = getattr(importlib.import_module(mod), fn)
        except (ImportError, AttributeError):
            raise NasError(f"estimator {m.group(1)!r} is not available in this installation") from None
    return factory(m.group(2))


__all__ = [
    "DEFAULT_ESTIMATOR",
    "ESTIMATORS",
    "NASWOT",
    "AccuracyEstimator",
    "CachedEstimator",
    "ParamsEstimator",
    "QualityFn",
    "SpaceEstimator",
    "TrainedOnData",
    "TunasEstimator",
    "WrappingEstimator",
    "ZenScore",
    "make_estimator",
]
