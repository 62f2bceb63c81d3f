"""Targets, budgets and the search space: pairing ``--target``/``--budget``, choosing a shipped
space when none is given, and refusing spaces and budgets a search cannot meet before any trial."""

from __future__ import annotations

from collections.abc import Sequence

from nas.errors import NasError
from nas.search._evaluate import TargetBudget, min_latency
from nas.search._protocols import LatencyPredictor
from nas.space import SearchSpace, coarse_space, distinct_blocks, list_spaces, load_space
from nas.units import parse_latency_ms


def pair_budgets(targets: Sequence[str], budgets: Sequence[str], known: Sequence[str]) -> list[TargetBudget]:
    """Validate ``--target``/``--budget`` pairs (same count, known targets, parseable budgets)."""
    if not targets:
        raise NasError("give at least one --target (known: " + ", ".join(known) + ")")
    if len(targets) != len(budgets):
        raise NasError(f"each --target needs one --budget ({len(targets)} targets, {len(budgets)} budgets)")
    out = []
    for t, b in zip(targets, budgets, strict=True):
        if t not in known:
            raise NasError(f"unknown target {t!r} (known: {', '.join(known)})")
        out.append(TargetBudget(t, parse_latency_ms(b), b.replace(" ", "")))
    if len({b.target for b in out}) != len(out):
        raise NasError("each --target may be given once")
    return out


def _reference_latency(name: str, predictors: dict[str, LatencyPredictor]) -> dict[str, float] | None:
    from nas.zoo import get_spec

    try:
        arch = get_spec(name)
        return {t: float(p.predict_archs([arch]).latency_ms[0]) for t, p in predictors.items()}
    except NasError:
        return None


def choose_space(budgets: list[TargetBudget], predictors: dict[str, LatencyPredictor]) -> tuple[str, str]:
    """The shipped space whose reference model fits the budgets best: the largest reference within every
    budget (by its worst latency/budget ratio); if none fits, the smallest one. Returns (name, reason)."""
    scored = []
    for name in list_spaces():
        sp = load_space(name)
        if not sp.reference:
            continue
        lat = _reference_latency(sp.reference, predictors)
        if lat is None:  # cannot run there, or the table does not cover it
            continue
        ratio = max(lat[b.target] / b.budget_ms for b in budgets)
        scored.append((ratio, name, sp.reference, lat))
    if not scored:
        raise NasError("no shipped search space can be predicted on these targets; pass --space")
    fitting = [s for s in scored if s[0] <= 1.0]
    ratio, name, ref, lat = max(fitting) if fitting else min(scored)
    where = ", ".join(f"{lat[b.target]:.3g} ms on {b.target} (budget {b.text})" for b in budgets)
    verdict = "the largest reference within budget" if fitting else "no reference fits, so the smallest"
    return name, f"auto-selected: its reference {ref} predicts {where}; {verdict}"


def _fitting_spaces(space: SearchSpace, b: TargetBudget, pred: LatencyPredictor, two_stage: bool) -> list[str]:
    """Other shipped spaces that can meet ``b`` (noting those whose coarse stage cannot)."""
    from nas.latency import check_supported

    fits = []
    for other in list_spaces():
        if other == space.name:
            continue
        try:
            osp = load_space(other)
            check_supported(pred.device, distinct_blocks(osp), other)
            oms, _ = min_latency(osp, pred)
            coarse_ms = min_latency(coarse_space(osp), pred)[0] if two_stage else oms
        except NasError:
            continue
        if oms <= b.budget_ms:
            fits.append(f"{other} (from {oms:.3g} ms{'' if coarse_ms <= b.budget_ms else ', with --one-stage'})")
    return fits


def check_space(
    space: SearchSpace, budgets: list[TargetBudget], predictors: dict[str, LatencyPredictor], *, two_stage: bool = False
) -> dict[str, float]:
    """Refuse hardware the space cannot run on, and budgets that the search cannot meet, before any
    trial: no member of the space reaches them, or (``two_stage``) no member of its coarse stage does —
    the coarse stage fixes every block to an IB, so its smallest latency lies above the space's.
    Returns the smallest achievable latency per target."""
    from nas.latency import check_supported

    mins: dict[str, float] = {}
    for b in budgets:
        pred = predictors[b.target]
        if pred.device is not None and pred.device.unsupported:  # the keys take a while to list
            check_supported(pred.device, distinct_blocks(space), f"search space {space.name}")
        ms, _ = min_latency(space, pred)
        mins[b.target] = ms
        if ms > b.budget_ms:
            fits = _fitting_spaces(space, b, pred, two_stage)
            hint = f"; spaces that fit: {', '.join(fits)}" if fits else "; no shipped space fits this budget"
            raise NasError(
                f"budget {b.text} on {b.target} is below the smallest latency any architecture of {space.name} "
                f"reaches ({ms:.3g} ms){hint}"
            )
        if two_stage and (coarse_ms := min_latency(coarse_space(space), pred)[0]) > b.budget_ms:
            raise NasError(
                f"budget {b.text} on {b.target}: the coarse stage of {space.name} (every block an IB) cannot go "
                f"below {coarse_ms:.3g} ms, though the space reaches {ms:.3g} ms; search it with --one-stage, or "
                f"raise the budget to at least {coarse_ms:.3g} ms"
            )
    return mins


__all__ = ["check_space", "choose_space", "pair_budgets"]
