"""``--estimator predictor:PRED``: a learned model of a supernet's accuracy (after Once-for-All's
accuracy predictor, Cai et al., ICLR 2020).

:func:`fit_predictor` samples N distinct members of a trained supernet's space, scores them with the
supernet estimator (held-out accuracy, BatchNorm recalibrated) and fits a small model on their
features; a random ``holdout`` share of the N is kept out of that fit and reported (Kendall τ,
Spearman ρ, RMSE against the supernet's own scores), then the model is refitted on all N.

**Features** of a member (:class:`Features`): the space's encoding one-hot — one column per option of
every decision (:func:`nas.space.decisions`), all zero for a decision that does not apply to the
member (a block beyond the chosen depth) — plus ln(MACs) and ln(parameters) at the space's
resolution, each column standardised over the fitted members. Encodings are found without building
anything, and MACs/parameters come from per-slot tables gathered over a batch of encodings, so a
batch of candidates is scored with a few array operations (tens of thousands per second).

**Models**: ``ridge`` (default): linear least squares with an L2 penalty chosen by 5-fold
cross-validation on the fitted members; ``mlp`` (Once-for-All's choice, fitted there on 16,000
members): the mean of 5 small ReLU networks (two hidden layers of 64), each trained with AdamW on a
random 80 % of the members and stopped where the other 20 % fit best. With hundreds of members the
linear model ranked held-out members better, also on synthetic targets with interactions
(``benchmarks/README.md``).

**File**: one JSON document (weights as nested lists): the space definition and its decisions, the
supernet it came from (path, creation time, epochs), N, the held-out fit, the feature definition and
standardisation, the model, and the scored members themselves. Loading checks the format, version,
every field's type, shape and finiteness, and that the recorded decisions are those of the recorded
space (one-line errors); ``mnv4-nas search`` then refuses a ``--space`` other than that one, as it
does for a supernet. Predictions read as the supernet's held-out accuracy (fraction 0-1), so TuNAS's
absolute reward can use them as its per-step quality. A predictor scores members of its space in that
space's phase; a two-stage search's coarse members are members of the joint space when the space's
coarse block is one of its fine variants (true of every shipped space), otherwise they need a
``--coarse-estimator``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from scipy import stats

from nas._io import write_text_atomic
from nas.cost import block_ops, head_ops
from nas.errors import NasError
from nas.inputs import InputError, check_finite, check_int, read_json
from nas.space import (
    Decision,
    SearchSpace,
    Slot,
    Stage,
    active_mask,
    decisions,
    encode,
    sample_distinct,
    slots,
    space_from_meta,
    space_meta,
)
from nas.spec import ArchSpec, parse_key

PREDICTOR_FORMAT = "mnv4-nas-accuracy-predictor"
PREDICTOR_VERSION = 1
MODELS = ("mlp", "ridge")
#: Fewest members a predictor is fitted on (and held out of its fit).
MIN_MEMBERS, MIN_HELDOUT = 10, 3
#: Members scored by the supernet per progress report.
_CHUNK = 64


class ScoredSpace(Protocol):
    """What a predictor is fitted from: a supernet estimator (``supernet:CKPT``)."""

    name: str
    meaning: str
    path: Path
    meta: dict[str, Any]

    @property
    def search_space(self) -> SearchSpace:
        """The space whose members are sampled and scored."""
        ...

    def score(self, archs: Sequence[ArchSpec]) -> np.ndarray:
        """Scores of ``archs`` (held-out accuracies)."""
        ...


# ----------------------------------------------------------------------------------------------
# features
# ----------------------------------------------------------------------------------------------


class Features:
    """The feature map of one space (module docstring): one-hot decisions, ln MACs, ln parameters."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.decisions: tuple[Decision, ...] = decisions(space)
        radix = np.asarray([d.radix for d in self.decisions], dtype=np.int64)
        self._offsets = np.concatenate([[0], np.cumsum(radix)[:-1]]).astype(np.int64)
        self.names = [f"{d.name}={c}" for d in self.decisions for c in d.choices] + ["ln_macs", "ln_params"]
        self.dim = len(self.names)
        self._index = {(d.kind, d.stage, d.index): n for n, d in enumerate(self.decisions)}
        self._tables = [_slot_table(s) for s in slots(space)]
        self._lookups = {i: lk for i, st in enumerate(space.stages) if (lk := st.lookups(space, i)) is not None}

    def encode(self, archs: Sequence[ArchSpec]) -> np.ndarray:
        """Canonical encodings (n × decisions) of members of the space, as :func:`nas.space.encode`
        gives them (a non-member is its one-line :class:`SpecError`). Members at another resolution or
        class count (e.g. the supernet's training resolution) are read at the space's."""
        out = np.zeros((len(archs), len(self.decisions)), dtype=np.int64)
        for i, a in enumerate(archs):
            if a.resolution != self.space.resolution or a.num_classes != self.space.num_classes:
                a = dataclasses.replace(a, resolution=self.space.resolution, num_classes=self.space.num_classes)
            if not self._fast_encode(a, out[i]):
                out[i] = encode(self.space, a)
        return out

    def _fast_encode(self, arch: ArchSpec, vec: np.ndarray) -> bool:
        """Fill ``vec`` by dictionary lookups of the blocks; False when anything is unexpected (then
        :func:`nas.space.encode` decides, and says why a non-member is not one)."""
        sp = self.space
        if arch.stem != sp.stem or arch.head != sp.head:
            return False
        blocks, pos = arch.blocks, 0
        for i, st in enumerate(sp.stages):
            fixed = st.constant_blocks
            if fixed is not None:
                if blocks[pos : pos + len(fixed)] != fixed:
                    return False
                pos += len(fixed)
                continue
            first, rest, mqa = self._lookups[i]
            hit = first.get(blocks[pos]) if pos < len(blocks) else None
            if hit is None:
                return False
            c_idx, variants, n_uib, prev_mqa, slots_at = hit[0], [hit[1]], 1, False, []
            pos += 1
            while pos < len(blocks):
                b = blocks[pos]
                got = rest.get(b)
                if got is not None and got[0] == c_idx:
                    variants.append(got[1])
                    n_uib, prev_mqa = n_uib + 1, False
                elif mqa.get(b) == c_idx and not prev_mqa:
                    slots_at.append(n_uib)
                    prev_mqa = True
                else:
                    break
                pos += 1
            # encode() would take a further stride-1 block of this stage's kind and width into the
            # stage (and refuse it): leave such a member to it
            if pos < len(blocks) and isinstance(blocks[pos], st.RUN_TYPES) and blocks[pos].stride == 1:
                if blocks[pos].out_channels == sp.widths(i)[0][c_idx]:
                    return False
            if prev_mqa or not self._put_stage(vec, i, st, c_idx, variants, slots_at):
                return False
        return pos == len(blocks)

    def _put_stage(
        self, vec: np.ndarray, i: int, st: Stage, c_idx: int, variants: list[int], mqa_before: list[int]
    ) -> bool:
        depths = self.space.widths(i)[1]
        d = len(variants)
        if d not in depths:
            return False
        for kind, index, value in (("channels", -1, c_idx), ("depth", -1, depths.index(d))):
            n = self._index.get((kind, i, index))
            if n is not None:
                vec[n] = value
        for j, v in enumerate(variants):
            n = self._index.get(("uib", i, j))
            if n is not None:
                vec[n] = v
        if mqa_before:
            allowed = st.mqa_positions(d)
            for u in mqa_before:
                if u not in allowed:
                    return False
                n = self._index.get(("mqa", i, st.mqa_slot(u, d)))
                if n is not None:
                    vec[n] = 1
        return True

    def __call__(self, vecs: np.ndarray) -> np.ndarray:
        """Raw (unstandardised) features of canonical encodings (n × :attr:`dim`)."""
        vecs = np.atleast_2d(np.asarray(vecs, dtype=np.int64))
        n, k = vecs.shape
        x = np.zeros((n, self.dim), dtype=np.float64)
        if k:
            cols = self._offsets[None, :] + vecs
            rows = np.repeat(np.arange(n), k)
            x[rows, cols.ravel()] = active_mask(self.space, vecs).ravel()
        macs, params = self.costs(vecs)
        x[:, -2] = np.log(macs)
        x[:, -1] = np.log(params)
        return x

    def costs(self, vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(MACs, parameters) of canonical encodings, summed from per-slot tables (as :mod:`nas.cost`
        counts them at the space's resolution)."""
        vecs = np.atleast_2d(np.asarray(vecs, dtype=np.int64))
        macs = np.zeros(len(vecs))
        params = np.zeros(len(vecs))
        for deps, strides, t_macs, t_params in self._tables:
            flat = vecs[:, deps] @ strides if len(deps) else np.zeros(len(vecs), dtype=np.int64)
            macs += t_macs[flat]
            params += t_params[flat]
        return macs, params


def _slot_table(slot: Slot) -> _Table:
    """(decision columns, mixed-radix strides, MACs and parameters per combination) of one slot."""
    radices = [int(r) for r in slot.radices]
    strides = np.asarray([int(np.prod(radices[k + 1 :])) for k in range(len(radices))], dtype=np.int64)
    return list(slot.deps), strides, *_costs([key for _, key in slot.keys()])


def _costs(keys: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """MACs and parameters of layer keys (0 for an absent layer)."""
    macs, params = np.zeros(len(keys)), np.zeros(len(keys))
    for k, key in enumerate(keys):
        if key is None:
            continue
        spec, shape = parse_key(key)
        ops = head_ops(spec[0], shape, spec[1]) if isinstance(spec, tuple) else block_ops(spec, shape)
        macs[k] = sum(o.macs for o in ops)
        params[k] = sum(o.params for o in ops)
    return macs, params


_Table = tuple[list[int], np.ndarray, np.ndarray, np.ndarray]


# ----------------------------------------------------------------------------------------------
# models
# ----------------------------------------------------------------------------------------------


class _Model(Protocol):
    kind: str

    def predict(self, x: np.ndarray) -> np.ndarray: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclasses.dataclass
class _Ridge:
    """Linear model with an L2 penalty (standardised features and target)."""

    weight: np.ndarray
    bias: float
    alpha: float
    kind: str = "ridge"

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> _Ridge:
        """Penalty by 5-fold cross-validation over a log grid, then the fit on all rows."""
        alphas = 10.0 ** np.arange(-3, 4)
        folds = rng.permutation(len(y)) % min(5, len(y))
        errs = [
            np.mean(
                [
                    np.mean((_ridge(x[folds != f], y[folds != f], a).predict(x[folds == f]) - y[folds == f]) ** 2)
                    for f in np.unique(folds)
                ]
            )
            for a in alphas
        ]
        return _ridge(x, y, float(alphas[int(np.argmin(errs))]))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return x @ self.weight + self.bias

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "alpha": self.alpha, "weight": self.weight.tolist(), "bias": self.bias}


def _ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> _Ridge:
    xm, ym = x.mean(0), float(y.mean())
    xc = x - xm
    w = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (y - ym))
    return _Ridge(w, ym - float(xm @ w), alpha)


@dataclasses.dataclass
class _MLP:
    """Mean of an ensemble of ReLU networks (layers as (weight, bias) pairs, weight in × out)."""

    nets: list[list[tuple[np.ndarray, np.ndarray]]]
    kind: str = "mlp"

    #: hidden units per layer, ensemble members, most AdamW steps (full batch), learning rate, weight
    #: decay, share of the rows each member keeps out to stop on, steps between those checks
    HIDDEN, MEMBERS, STEPS, LR, DECAY, VAL, EVERY = (64, 64), 5, 2000, 3e-3, 1e-2, 0.2, 25

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> _MLP:
        """Each member on its own random 80 % of the rows, stopped where the other 20 % fit best."""
        import torch

        old = torch.get_num_threads()
        torch.set_num_threads(1)  # matrices of a few hundred rows: threads only add overhead
        try:
            return cls([cls._member(x, y, rng) for _ in range(cls.MEMBERS)])
        finally:
            torch.set_num_threads(old)

    @classmethod
    def _member(cls, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
        import torch

        g = torch.Generator().manual_seed(int(rng.integers(2**31)))
        order = rng.permutation(len(y))
        n_val = max(1, round(cls.VAL * len(y)))
        xv, xt = (torch.as_tensor(x[i], dtype=torch.float32) for i in (order[:n_val], order[n_val:]))
        yv, yt = (torch.as_tensor(y[i], dtype=torch.float32) for i in (order[:n_val], order[n_val:]))
        sizes = [x.shape[1], *cls.HIDDEN, 1]
        params = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            params += [
                (torch.randn(a, b, generator=g) * math.sqrt(2.0 / a)).requires_grad_(),
                torch.zeros(b, requires_grad=True),
            ]
        opt = torch.optim.AdamW(params, lr=cls.LR, weight_decay=cls.DECAY)
        best, kept = math.inf, [p.detach().clone() for p in params]
        for step in range(cls.STEPS):
            opt.zero_grad()
            torch.mean((_forward_torch(params, xt) - yt) ** 2).backward()
            opt.step()
            if step % cls.EVERY == cls.EVERY - 1:
                with torch.no_grad():
                    loss = float(torch.mean((_forward_torch(params, xv) - yv) ** 2))
                if loss < best:
                    best, kept = loss, [p.detach().clone() for p in params]
        return [(kept[k].double().numpy(), kept[k + 1].double().numpy()) for k in range(0, len(kept), 2)]

    def predict(self, x: np.ndarray) -> np.ndarray:
        out = np.zeros(len(x))
        for layers in self.nets:
            h = x
            for k, (w, b) in enumerate(layers):
                h = h @ w + b
                if k < len(layers) - 1:
                    np.maximum(h, 0.0, out=h)
            out += h[:, 0]
        return out / len(self.nets)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "hidden": [len(b) for _, b in self.nets[0][:-1]],
            "nets": [[{"weight": w.tolist(), "bias": b.tolist()} for w, b in layers] for layers in self.nets],
        }


def _forward_torch(params: list[Any], x: Any) -> Any:
    for k in range(0, len(params), 2):
        x = x @ params[k] + params[k + 1]
        if k < len(params) - 2:
            x = x.clamp_min(0.0)
    return x[:, 0]


_FITTERS: dict[str, Callable[[np.ndarray, np.ndarray, np.random.Generator], _Model]] = {
    "mlp": _MLP.fit,
    "ridge": _Ridge.fit,
}


# ----------------------------------------------------------------------------------------------
# the predictor
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Scaling:
    """Standardisation of the features (per column) and of the target."""

    mean: np.ndarray
    std: np.ndarray
    y_mean: float
    y_std: float

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray) -> _Scaling:
        std = x.std(0)
        return cls(x.mean(0), np.where(std > 1e-12, std, 1.0), float(y.mean()), float(y.std()) or 1.0)


def _fmt(x: float | None) -> str:
    return "undefined" if x is None else f"{x:.2f}"


class Predictor:
    """A fitted accuracy predictor; an :class:`~nas.supernet.AccuracyEstimator` (module docstring)."""

    def __init__(
        self,
        space: SearchSpace,
        model: _Model,
        scaling: _Scaling,
        record: dict[str, Any],
        path: str | Path | None = None,
    ) -> None:
        self.features = Features(space)
        self.model, self.scaling, self.record = model, scaling, record
        self.path = None if path is None else Path(path)
        self.name = f"predictor:{self.path}" if self.path is not None else "predictor"
        fit, src = record["fit"], record["source"]
        held = fit["heldout"]
        self.meaning = (
            f"predicted {src['estimator']} score (held-out accuracy, fraction 0-1, of the subnet inheriting the "
            f"supernet's weights; {src.get('epochs')} epochs) from a {model.kind} fitted on {fit['n']} members scored by "
            f"it (on {held['n_test']} held out of the fit: Kendall τ {_fmt(held['kendall_tau'])}, RMSE "
            f"{held['rmse']:.4f})"
        )

    @property
    def search_space(self) -> SearchSpace:
        """The space the predictor was fitted on (that of its supernet, at the space's resolution)."""
        return self.features.space

    def score(self, archs: Sequence[ArchSpec]) -> np.ndarray:
        """Predicted accuracies of members of the space (one-line :class:`NasError` for a non-member)."""
        if not archs:
            return np.empty(0)
        return self.score_encoded(self.features.encode(archs))

    def score_encoded(self, vecs: np.ndarray) -> np.ndarray:
        """Predicted accuracies of canonical encodings of the space (rows), e.g. from a population sampler."""
        s = self.scaling
        x = (self.features(vecs) - s.mean) / s.std
        return self.model.predict(x) * s.y_std + s.y_mean

    def tunas_quality(self, batch_size: int = 256, seed: int = 0) -> Callable[[Sequence[ArchSpec]], np.ndarray]:
        """TuNAS per-step quality: the prediction itself (deterministic; it reads as the supernet's accuracy)."""
        return self.score

    def controller(self) -> None:
        """No TuNAS controller comes with a predictor."""
        return None

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of the predictor (module docstring)."""
        s = self.scaling
        return {
            "format": PREDICTOR_FORMAT,
            "version": PREDICTOR_VERSION,
            "space": space_meta(self.search_space),
            "decisions": [{"name": d.name, "choices": [str(c) for c in d.choices]} for d in self.features.decisions],
            "features": {
                "columns": self.features.names,
                "definition": "one-hot per decision option (zero where the decision does not apply), ln MACs, "
                "ln parameters (nas.cost, at the space's resolution); standardised: (x - mean) / std",
                "mean": s.mean.tolist(),
                "std": s.std.tolist(),
            },
            "target": {"mean": s.y_mean, "std": s.y_std},
            "model": self.model.to_dict(),
            **self.record,
        }

    def save(self, path: str | Path) -> Path:
        """Write the predictor as JSON, atomically."""
        import json

        p = Path(path)
        write_text_atomic(p, json.dumps(self.to_dict(), allow_nan=False), "give --out a writable path")
        self.path = p
        self.name = f"predictor:{p}"
        return p


# ----------------------------------------------------------------------------------------------
# fitting
# ----------------------------------------------------------------------------------------------


def fit_predictor(
    estimator: ScoredSpace,
    n: int,
    *,
    model: str = "ridge",
    holdout: float = 0.2,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Predictor:
    """Sample ``n`` distinct members of ``estimator``'s space (fewer if it has fewer), score them with
    it, fit ``model`` on all but a random ``holdout`` share, report that share's fit, refit on all."""
    check_fit_options(n, holdout, model)
    space = estimator.search_space
    rng = np.random.default_rng(seed)
    archs = sample_distinct(space, rng, n)
    n_test = round(holdout * len(archs))
    if len(archs) < MIN_MEMBERS or n_test < MIN_HELDOUT:
        raise NasError(
            f"--n/--holdout: {len(archs)} members with {n_test} held out; a fit needs at least "
            f"{MIN_MEMBERS} members and {MIN_HELDOUT} held out"
        )
    t0 = time.perf_counter()
    y = np.empty(len(archs))
    for s in range(0, len(archs), _CHUNK):
        y[s : s + _CHUNK] = estimator.score(archs[s : s + _CHUNK])
        if progress is not None:
            progress(min(s + _CHUNK, len(archs)), len(archs))
    seconds = time.perf_counter() - t0
    if np.ptp(y) == 0:
        raise NasError(
            f"{estimator.name} gave all {len(y)} sampled members the same score ({y[0]:.4f}): nothing to "
            "fit (train the supernet longer)"
        )
    feats = Features(space)
    x = feats(feats.encode(archs))
    order = rng.permutation(len(archs))
    test, train = order[:n_test], order[n_test:]
    fitted = _fit(x[train], y[train], model, rng)
    pred = fitted[0].predict((x[test] - fitted[1].mean) / fitted[1].std) * fitted[1].y_std + fitted[1].y_mean
    heldout = {"n_train": len(train), "n_test": n_test, **fit_quality(pred, y[test])}
    final, scaling = _fit(x, y, model, rng)
    meta = estimator.meta or {}
    record = {
        "source": {
            "estimator": estimator.name,
            "checkpoint": str(estimator.path),
            "created": meta.get("created"),
            "epochs": meta.get("epochs_done"),
            "meaning": estimator.meaning,
        },
        "fit": {
            "n": len(archs),
            "requested": n,
            "seed": seed,
            "model": model,
            "holdout": holdout,
            "heldout": heldout,
            "scores": {"min": float(y.min()), "max": float(y.max()), "mean": float(y.mean())},
            "scoring_seconds": round(seconds, 3),
            "final_fit": "all members",
        },
        "samples": [[a.arch, float(v)] for a, v in zip(archs, y, strict=True)],
    }
    return Predictor(space, final, scaling, record)


def check_fit_options(n: int, holdout: float, model: str) -> None:
    """One-line errors for options :func:`fit_predictor` cannot use (checked before any work)."""
    check_int(n, "--n", lo=MIN_MEMBERS, hi=1_000_000)
    check_finite(holdout, "--holdout", lo=0.0, hi=0.5, lo_open=True)
    if model not in MODELS:
        raise NasError(f"--model must be one of {', '.join(MODELS)} (got {model!r})")


def _fit(x: np.ndarray, y: np.ndarray, model: str, rng: np.random.Generator) -> tuple[_Model, _Scaling]:
    s = _Scaling.of(x, y)
    return _FITTERS[model]((x - s.mean) / s.std, (y - s.y_mean) / s.y_std, rng), s


def fit_quality(pred: np.ndarray, truth: np.ndarray) -> dict[str, float | None]:
    """Kendall τ, Spearman ρ (None where undefined: constant predictions or scores) and RMSE of
    predictions against the scores they predict."""
    tau = rho = None
    if np.ptp(pred) > 0 and np.ptp(truth) > 0:
        tau = float(stats.kendalltau(pred, truth).statistic)
        rho = float(stats.spearmanr(pred, truth).statistic)
    return {"kendall_tau": tau, "spearman_rho": rho, "rmse": float(np.sqrt(np.mean((pred - truth) ** 2)))}


# ----------------------------------------------------------------------------------------------
# loading
# ----------------------------------------------------------------------------------------------


def load_predictor(path: str | Path) -> Predictor:
    """Read a predictor file (one-line :class:`~nas.inputs.InputError` for anything malformed)."""
    p = Path(path)
    doc = read_json(p, "accuracy predictor")
    src = str(p)
    if not isinstance(doc, dict) or doc.get("format") != PREDICTOR_FORMAT:
        raise InputError(f"{src}: not an mnv4-nas accuracy predictor (format must be {PREDICTOR_FORMAT!r})")
    if doc.get("version") != PREDICTOR_VERSION:
        raise InputError(
            f"{src}: predictor version {doc.get('version')!r} is not supported (this is {PREDICTOR_VERSION})"
        )
    space = _space(doc, src)
    feats = Features(space)
    want = [{"name": d.name, "choices": [str(c) for c in d.choices]} for d in feats.decisions]
    if doc.get("decisions") != want:
        raise InputError(
            f"{src}: field decisions: not the decisions of the recorded space {space.name} "
            "(fitted on another version of it?)"
        )
    f = _get(doc, "features", dict, src)
    if _get(f, "columns", list, src, "features.columns") != feats.names:
        raise InputError(f"{src}: field features.columns: not the feature columns of space {space.name}")
    mean = _array(f.get("mean"), (feats.dim,), src, "features.mean")
    std = _array(f.get("std"), (feats.dim,), src, "features.std")
    if np.any(std <= 0):
        raise InputError(f"{src}: field features.std: every value must be positive")
    t = _get(doc, "target", dict, src)
    y_mean = _number(t.get("mean"), src, "target.mean")
    y_std = _number(t.get("std"), src, "target.std")
    model = _model(_get(doc, "model", dict, src), feats.dim, src)
    record = {"source": _get(doc, "source", dict, src), "fit": _get(doc, "fit", dict, src)}
    _check_record(record, src)
    if "samples" in doc:
        record["samples"] = _get(doc, "samples", list, src)
    return Predictor(space, model, _Scaling(mean, std, y_mean, y_std), record, p)


def _space(doc: dict[str, Any], src: str) -> SearchSpace:
    meta = _get(doc, "space", dict, src)
    try:
        return space_from_meta(meta)
    except (NasError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"{src}: field space: not a valid space definition ({' '.join(str(exc).split())})") from None


def _get(doc: dict[str, Any], key: str, kind: type, src: str, name: str | None = None) -> Any:
    value = doc.get(key)
    if not isinstance(value, kind):
        raise InputError(f"{src}: field {name or key} must be a JSON {'object' if kind is dict else 'array'}")
    return value


def _number(value: Any, src: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{src}: field {name} must be a finite number")
    return float(value)


def _array(value: Any, shape: tuple[int, ...], src: str, name: str) -> np.ndarray:
    """A nested list of finite numbers of exactly ``shape``."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{src}: field {name} must be an array of numbers of shape {list(shape)}") from None
    if arr.shape != shape:
        raise InputError(f"{src}: field {name} must have shape {list(shape)} (got {list(arr.shape)})")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{src}: field {name} must hold finite numbers only")
    return arr


def _model(m: dict[str, Any], dim: int, src: str) -> _Model:
    kind = m.get("kind")
    if kind == "ridge":
        return _Ridge(
            _array(m.get("weight"), (dim,), src, "model.weight"),
            _number(m.get("bias"), src, "model.bias"),
            _number(m.get("alpha"), src, "model.alpha"),
        )
    if kind != "mlp":
        raise InputError(f"{src}: field model.kind must be one of {', '.join(MODELS)} (got {kind!r})")
    nets = _get(m, "nets", list, src, "model.nets")
    if not nets:
        raise InputError(f"{src}: field model.nets must hold at least one network")
    return _MLP([_layers(layers, dim, src, f"model.nets[{k}]") for k, layers in enumerate(nets)])


def _layers(layers: Any, dim: int, src: str, where: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weight, bias) pairs of one network: ``dim`` inputs, any hidden widths, one output."""
    if not isinstance(layers, list) or not layers:
        raise InputError(f"{src}: field {where} must be a non-empty array of layers")
    out, width = [], dim
    for j, layer in enumerate(layers):
        name = f"{where}[{j}]"
        if not isinstance(layer, dict) or not isinstance(layer.get("weight"), list) or not layer["weight"]:
            raise InputError(f"{src}: field {name} must be an object with a non-empty weight array")
        first = layer["weight"][0]
        cols = 1 if j == len(layers) - 1 else (len(first) if isinstance(first, list) else 0)
        if cols < 1:
            raise InputError(f"{src}: field {name}.weight must be an array of rows")
        out.append(
            (
                _array(layer["weight"], (width, cols), src, f"{name}.weight"),
                _array(layer.get("bias"), (cols,), src, f"{name}.bias"),
            )
        )
        width = cols
    return out


def _check_record(record: dict[str, Any], src: str) -> None:
    fit, source = record["fit"], record["source"]
    held = _get(fit, "heldout", dict, src, "fit.heldout")
    _number(held.get("rmse"), src, "fit.heldout.rmse")
    for key in ("kendall_tau", "spearman_rho"):
        if held.get(key) is not None:
            _number(held.get(key), src, f"fit.heldout.{key}")
    for key in ("n_test",):
        if isinstance(held.get(key), bool) or not isinstance(held.get(key), int):
            raise InputError(f"{src}: field fit.heldout.{key} must be an integer")
    if isinstance(fit.get("n"), bool) or not isinstance(fit.get("n"), int):
        raise InputError(f"{src}: field fit.n must be an integer")
    if not isinstance(source.get("estimator"), str):
        raise InputError(f"{src}: field source.estimator must be a string")


def make_predictor_estimator(arg: str | None) -> Predictor:
    """Registry factory of ``predictor:PATH``."""
    if not arg:
        raise NasError(
            "estimator 'predictor' needs a file: predictor:PATH (fit one with 'mnv4-nas supernet fit-predictor')"
        )
    return load_predictor(arg)


__all__ = [
    "MODELS",
    "Features",
    "Predictor",
    "check_fit_options",
    "fit_predictor",
    "fit_quality",
    "load_predictor",
    "make_predictor_estimator",
]
