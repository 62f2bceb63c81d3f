"""Orchestration of ``mnv4-nas search``: targets and budgets, space choice, feasibility checks,
the two-stage (coarse → fine) or one-stage flow, resume, and the result folder."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from nas.errors import NasError
from nas.search._budget import format_ms, parse_budget
from nas.search._evaluate import Evaluator, TargetBudget, min_latency
from nas.search._optuna_engine import StageSpec, completed_trials, multi_objective, run_local, run_ray, trial_score
from nas.search._results import Reference, SearchOutcome, trials_frame, write_results
from nas.search._storage import open_storage
from nas.space import (
    SearchSpace,
    coarse_space,
    contains,
    decisions,
    distinct_blocks,
    fix_coarse,
    list_spaces,
    load_space,
)
from nas.spec import ArchSpec, parse_arch
from nas.supernet._reward import TUNAS_BETA

RUN_FORMAT = "mnv4-nas/search-run-v1"
ENGINES = ("optuna", "tunas")
REFERENCE_MODELS = (
    "mnv4-conv-small",
    "mnv4-conv-medium",
    "mnv4-conv-large",
    "mnv4-hybrid-medium",
    "mnv4-hybrid-large",
)


class Reporter(Protocol):
    """Progress sink (the CLI draws rich progress bars; tests use :class:`SilentReporter`)."""

    def note(self, text: str) -> None: ...
    def stage_start(self, label: str, total: int, done: int) -> None: ...
    def trial_done(self, label: str, feasible: bool, score: float | None) -> None: ...
    def stage_end(self, label: str) -> None: ...


class SilentReporter:
    """Collects notes, draws nothing."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        self.notes.append(text)

    def stage_start(self, label: str, total: int, done: int) -> None:
        pass

    def trial_done(self, label: str, feasible: bool, score: float | None) -> None:
        pass

    def stage_end(self, label: str) -> None:
        pass


@dataclass
class SearchSettings:
    """Everything a search run needs (the CLI fills it from options and ``nas.toml``)."""

    targets: Sequence[str]
    budgets: Sequence[str]
    space: str | None = None
    estimator: str | None = None
    coarse_estimator: str | None = None  # scores the coarse stage of a two-stage search (default: ``estimator``)
    one_stage: bool = False
    trials: int = 100
    coarse_trials: int = 40
    fine_trials: int = 60
    coarse_top: int = 1
    pareto: bool = False
    seed: int = 0
    out: Path | None = None
    output_root: Path = Path("results")
    storage: str | None = None
    study: str | None = None
    ray_address: str | None = None
    workers: int | None = None
    fallback: str | None = None
    tables_dir: Path | None = None
    engine: str = "optuna"
    beta: float = TUNAS_BETA
    references: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


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
        out.append(TargetBudget(t, parse_budget(b), b.replace(" ", "")))
    if len({b.target for b in out}) != len(out):
        raise NasError("each --target may be given once")
    return out


def _reference_latency(name: str, predictors: dict[str, Any]) -> dict[str, float] | None:
    from nas.zoo import get_spec

    try:
        arch = get_spec(name)
        return {t: float(p.predict_archs([arch]).latency_ms[0]) for t, p in predictors.items()}
    except NasError:
        return None


def choose_space(budgets: list[TargetBudget], predictors: dict[str, Any]) -> tuple[str, str]:
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


def check_space(space: SearchSpace, budgets: list[TargetBudget], predictors: dict[str, Any]) -> dict[str, float]:
    """Refuse hardware the space cannot run on, and budgets no member can meet (before any trial).
    Returns the smallest achievable latency per target."""
    from nas.latency import check_supported

    keys = distinct_blocks(space)
    mins: dict[str, float] = {}
    for b in budgets:
        pred = predictors[b.target]
        check_supported(pred.device, keys, f"search space {space.name}")
        ms, _ = min_latency(space, pred)
        mins[b.target] = ms
        if ms > b.budget_ms:
            fits = []
            for other in list_spaces():
                if other == space.name:
                    continue
                try:
                    osp = load_space(other)
                    check_supported(pred.device, distinct_blocks(osp), other)
                    oms, _ = min_latency(osp, pred)
                except NasError:
                    continue
                if oms <= b.budget_ms:
                    fits.append(f"{other} (from {oms:.3g} ms)")
            hint = f"; spaces that fit: {', '.join(fits)}" if fits else "; no shipped space fits this budget"
            raise NasError(
                f"budget {b.text} on {b.target} is below the smallest latency any architecture of {space.name} "
                f"reaches ({ms:.3g} ms){hint}"
            )
    return mins


def _run_name(budgets: list[TargetBudget]) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return "+".join(f"{b.target}-{b.text}" for b in budgets) + f"-{stamp}"


def _identity(settings: SearchSettings, budgets: list[TargetBudget], space: SearchSpace, estimator: str) -> dict[str, Any]:
    """What must not change when a run is resumed."""
    return {
        "targets": [b.target for b in budgets],
        "budget_ms": [b.budget_ms for b in budgets],
        "space": space.name,
        "space_source": space.source,
        "estimator": estimator,
        "coarse_estimator": settings.coarse_estimator,  # absent from older run.json files: .get() reads None
        "mode": "one-stage" if settings.one_stage else "two-stage",
        "pareto": settings.pareto,
        "coarse_top": settings.coarse_top,
        "engine": settings.engine,
    }


def _prepare_run_dir(settings: SearchSettings, budgets: list[TargetBudget], identity: dict[str, Any]) -> tuple[Path, dict[str, Any] | None]:
    out = settings.out or (settings.output_root / _run_name(budgets))
    if out.exists() and not out.is_dir():
        raise NasError(f"--out {out} is a file; give a folder for the run's results")
    run_file = out / "run.json"
    previous = None
    if run_file.exists():
        try:
            previous = json.loads(run_file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise NasError(f"{run_file}: unreadable run record ({exc}); use a new --out folder") from None
        for key, value in identity.items():
            if previous.get("identity", {}).get(key) != value:
                raise NasError(
                    f"{out} holds a search with a different {key} ({previous.get('identity', {}).get(key)!r}, now {value!r}); "
                    "resume with the same settings or pick a new --out"
                )
    elif out.exists() and any(out.iterdir()):
        raise NasError(f"--out {out} exists and is not a search run folder (no run.json)")
    out.mkdir(parents=True, exist_ok=True)
    return out, previous


def _references(estimator: Any, predictors: dict[str, Any]) -> list[Reference]:
    from nas.zoo import get_spec

    refs = []
    for name in REFERENCE_MODELS:
        arch = get_spec(name)
        lat = {}
        for t, p in predictors.items():
            try:
                lat[t] = float(p.predict_archs([arch]).latency_ms[0])
            except NasError:
                continue
        if not lat:
            continue
        try:
            score: float | None = float(estimator.score([arch])[0])
        except NasError:
            score = None  # e.g. a supernet estimator scores only members of its space
        refs.append(Reference(name, arch, score, lat))
    return refs


def _top_feasible(study: Any, evaluator: Evaluator, k: int, space: SearchSpace) -> list[ArchSpec]:
    from nas.space import arch_from_params

    seen, rows = set(), []
    for t in completed_trials(study):
        arch = parse_arch(t.user_attrs["arch"]) if "arch" in t.user_attrs else arch_from_params(space, t.params)
        s = trial_score(t)
        if s is None or arch.arch in seen:
            continue
        if all(v <= 0 for v in evaluator.violations(evaluator.latencies(arch))):
            seen.add(arch.arch)
            rows.append((-s, t.number, arch))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [r[2] for r in rows[:k]]


def _trained_elsewhere(estimator: Any, space: SearchSpace) -> str | None:
    """Name of the space a trained estimator (a supernet) was trained on when that is not ``space``;
    None when it is, or when the estimator needs no training."""
    on = getattr(estimator, "search_space", None)
    return None if on is None or decisions(on.with_phase("joint")) == decisions(space) else on.name


def run_search(settings: SearchSettings, reporter: Reporter | None = None) -> SearchOutcome:
    """Run (or resume) a search and write its result folder."""
    from nas.latency import load_catalog, load_predictor
    from nas.supernet import make_estimator

    rep = reporter or SilentReporter()
    if settings.engine not in ENGINES:
        raise NasError(f"--engine must be one of {', '.join(ENGINES)} (got {settings.engine!r})")
    tunas = settings.engine == "tunas"
    if tunas and (settings.workers or settings.ray_address or settings.storage or settings.study):
        raise NasError("--engine tunas runs in this process; --workers, --ray-address, --storage and --study are for the optuna engine")
    catalog = load_catalog(settings.tables_dir)
    budgets = pair_budgets(settings.targets, settings.budgets, list(catalog))
    predictors = {b.target: load_predictor(b.target, settings.tables_dir, settings.fallback) for b in budgets}
    estimator = make_estimator(settings.estimator)
    coarse_est = None if settings.coarse_estimator is None else make_estimator(settings.coarse_estimator)
    if coarse_est is not None and settings.one_stage:
        raise NasError("--coarse-estimator scores the coarse stage of a two-stage search; drop it or --one-stage")
    if tunas:
        from nas.search._tunas_engine import check_estimator

        check_estimator(estimator)
        if coarse_est is not None:
            check_estimator(coarse_est, "--coarse-estimator")
    trained_on = getattr(estimator, "search_space", None)  # a supernet scores members of its own space only
    if trained_on is not None and trained_on.phase == "coarse":
        raise NasError(
            f"{estimator.name} was trained on the coarse stage only (supernet train --phase coarse): give it as "
            "--coarse-estimator and a supernet of the joint space as --estimator"
        )
    if settings.space:
        space = load_space(settings.space)
        space_note = "given with --space"
        if other := _trained_elsewhere(estimator, space):
            raise NasError(f"{estimator.name} was trained on space {other}; --space must be that space (or omitted)")
    elif trained_on is not None:
        space = trained_on.with_phase("joint")
        space_note = f"the space {estimator.name} was trained on"
        rep.note(f"space {space.name}: {space_note}")
    else:
        name, space_note = choose_space(budgets, predictors)
        space = load_space(name)
        rep.note(f"space {name}: {space_note}")
    if settings.coarse_top < 1:
        raise NasError(f"--coarse-top must be >= 1 (got {settings.coarse_top})")
    for label, n in (("trials", settings.trials), ("coarse-trials", settings.coarse_trials), ("fine-trials", settings.fine_trials)):
        if n < 1:
            raise NasError(f"--{label} must be >= 1 (got {n})")
    if not settings.beta < 0:
        raise NasError(f"--beta must be negative (a latency penalty; got {settings.beta})")
    if coarse_est is not None and (other := _trained_elsewhere(coarse_est, space)):
        raise NasError(f"--coarse-estimator {coarse_est.name} was trained on space {other}, not on {space.name}")
    mins = check_space(space, budgets, predictors)
    multi = multi_objective(Evaluator(predictors, budgets, None), settings.pareto)
    evaluator = Evaluator(predictors, budgets, estimator, score_infeasible=multi)
    coarse_ev = evaluator if coarse_est is None else Evaluator(predictors, budgets, coarse_est, score_infeasible=multi)
    identity = _identity(settings, budgets, space, estimator.name)
    out, previous = _prepare_run_dir(settings, budgets, identity)
    if tunas:
        return _run_tunas(settings, space, space_note, evaluator, estimator, coarse_est, predictors, catalog, out, mins,
                          rep)  # fmt: skip
    opened = open_storage(settings.storage, out)
    study_base = settings.study or (previous or {}).get("study") or out.name
    if previous:
        rep.note(f"resuming {out} (study {study_base})")
    run_record = {
        "format": RUN_FORMAT,
        "identity": identity,
        "study": study_base,
        "storage": opened.url,
        "seed": settings.seed,
        "trials": settings.trials,
        "coarse_trials": settings.coarse_trials,
        "fine_trials": settings.fine_trials,
        "created": (previous or {}).get("created", time.strftime("%Y-%m-%dT%H:%M:%S")),
        "min_latency_ms": mins,
    }
    (out / "run.json").write_text(json.dumps(run_record, indent=2) + "\n")

    def run_stage(stage: StageSpec, seed: int, ev: Evaluator = evaluator) -> Any:
        if settings.workers or settings.ray_address:
            rep.stage_start(stage.label, stage.n_trials, 0)
            study = run_ray(
                stage, ev, opened, multi=multi, seed=seed, workers=settings.workers or 1,
                address=settings.ray_address, run_dir=out,
                on_trial=lambda r: rep.trial_done(stage.label, bool(r.get("feasible")), r.get("score")),
            )  # fmt: skip
        else:
            import optuna

            try:
                done = len(optuna.load_study(study_name=stage.study_name, storage=opened.storage).get_trials(
                    deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))  # fmt: skip
            except KeyError:
                done = 0
            rep.stage_start(stage.label, stage.n_trials, done)
            study = run_local(
                stage, ev, opened, multi=multi, seed=seed,
                on_trial=lambda t: rep.trial_done(stage.label, bool(t.user_attrs.get("feasible")), trial_score(t)),
            )  # fmt: skip
        rep.stage_end(stage.label)
        return study

    studies: list[tuple[str, Any, SearchSpace]] = []
    try:
        if settings.one_stage:
            stage = StageSpec("joint", f"{study_base}:joint", space, settings.trials)
            studies.append(("joint", run_stage(stage, settings.seed), space))
        else:
            cspace = coarse_space(space)
            coarse = StageSpec("coarse", f"{study_base}:coarse", cspace, settings.coarse_trials)
            cstudy = run_stage(coarse, settings.seed, coarse_ev)
            studies.append(("coarse", cstudy, cspace))
            # Several workers share the coarse result through the study, so they all refine the same bases.
            bases_text = cstudy.user_attrs.get("fine_bases")
            if bases_text is None:
                bases = _top_feasible(cstudy, coarse_ev, settings.coarse_top, cspace)
                if not bases:
                    raise NasError(
                        f"no coarse architecture met the budget in {settings.coarse_trials} trials; "
                        "run more --coarse-trials or raise the budget"
                    )
                cstudy.set_user_attr("fine_bases", [b.arch for b in bases])
            else:
                bases = [parse_arch(b) for b in bases_text]
            per_base = max(1, settings.fine_trials // len(bases))
            for k, base in enumerate(bases):
                label = "fine" if len(bases) == 1 else f"fine{k + 1}"
                fspace = fix_coarse(space, base)
                warm = (base,) if contains(fspace, base) else ()
                stage = StageSpec(label, f"{study_base}:{label}", fspace, per_base, warm)
                studies.append((label, run_stage(stage, settings.seed + 1 + k), fspace))
        trials_text = (
            f"{settings.trials} one-stage"
            if settings.one_stage
            else f"{settings.coarse_trials} coarse + {settings.fine_trials} fine"
            + (f" (top {settings.coarse_top} coarse bases)" if settings.coarse_top > 1 else "")
        )
        info = {
            "space": space.name,
            "space_note": space_note,
            "engine": "optuna" + (f" on Ray ({settings.ray_address or f'{settings.workers} local workers'})" if settings.workers or settings.ray_address else ""),
            "mode": ("NSGA-II" if multi else "TPE") + (", one-stage" if settings.one_stage else ", two-stage"),
            "trials_text": trials_text,
            "seed": settings.seed,
            "estimator": estimator.name,
            "estimator_meaning": estimator.meaning + _coarse_note(coarse_est),
            "storage": opened.url,
            "study": study_base,
        }
        refs = _references(estimator, predictors) if settings.references else []
        # Two estimators score on two scales: the coarse stage only chooses the bases the fine stage refines.
        fine_only = None if coarse_est is None else [label for label, _, _ in studies if label != "coarse"]
        return write_results(
            out, trials_frame(studies, evaluator), evaluator, all_targets=list(catalog), settings=info, references=refs,
            fallback=settings.fallback, tables_dir=settings.tables_dir, stages=fine_only,
        )  # fmt: skip
    finally:
        opened.close()


def _run_tunas(
    settings: SearchSettings,
    space: SearchSpace,
    space_note: str,
    evaluator: Evaluator,
    estimator: Any,
    coarse_est: Any,
    predictors: dict[str, Any],
    catalog: dict[str, Any],
    out: Path,
    mins: dict[str, float],
    rep: Reporter,
) -> SearchOutcome:
    """The TuNAS engine's run: no optuna storage (a TuNAS search restarts from scratch when rerun)."""
    from nas.search._tunas_engine import RESCORE_TOP, RESCORED, run_tunas

    trials, arch, score, details = run_tunas(
        space, evaluator, estimator, coarse_estimator=coarse_est, one_stage=settings.one_stage,
        steps=(settings.trials, settings.coarse_trials, settings.fine_trials), seed=settings.seed,
        beta=settings.beta, reporter=rep,
    )  # fmt: skip
    record = {"format": RUN_FORMAT, "identity": _identity(settings, evaluator.budgets, space, estimator.name),
              "seed": settings.seed, "min_latency_ms": mins, "tunas": details,
              "created": time.strftime("%Y-%m-%dT%H:%M:%S")}  # fmt: skip
    (out / "run.json").write_text(json.dumps(record, indent=2) + "\n")
    over = [b for b in evaluator.budgets if evaluator.latencies(arch)[b.target] > b.budget_ms]
    if over:
        rep.note("TuNAS's most likely architecture is over budget on " + ", ".join(
            f"{b.target} ({evaluator.latencies(arch)[b.target]:.3g} ms > {b.text})" for b in over
        ) + ": the absolute reward only penalises the distance to T0; more steps or a more negative --beta tighten it")  # fmt: skip
    steps = (f"{settings.trials} one-stage steps" if settings.one_stage
             else f"{settings.coarse_trials} coarse + {settings.fine_trials} fine steps")  # fmt: skip
    info = {
        "space": space.name,
        "space_note": space_note,
        "engine": f"TuNAS REINFORCE, absolute reward R = Q + β·|T/T0 − 1|, β = {settings.beta}, T0 = the budget",
        "mode": "one-stage" if settings.one_stage else "two-stage",
        "trials_text": steps + " (one sampled architecture per step, scored by one held-out batch; the "
        f"(up to) {RESCORE_TOP} best distinct within-budget samples scored again by the full estimator are the "
        f"`{RESCORED}` rows, and pareto.csv is built from them)",
        "seed": settings.seed,
        "estimator": estimator.name,
        "estimator_meaning": estimator.meaning + _coarse_note(coarse_est),
        "storage": "none (TuNAS runs in one process)",
        "study": "-",
    }
    refs = _references(estimator, predictors) if settings.references else []
    return write_results(out, trials, evaluator, all_targets=list(catalog), settings=info, references=refs,
                         fallback=settings.fallback, tables_dir=settings.tables_dir, chosen=(arch, score),
                         stages=[RESCORED])  # fmt: skip


def _coarse_note(coarse_est: Any) -> str:
    """What the summary adds to the estimator's meaning when the coarse stage had its own."""
    if coarse_est is None:
        return ""
    return (f"; the coarse stage was scored by `{coarse_est.name}` ({coarse_est.meaning}), so best and Pareto "
            "front come from the fine stage")  # fmt: skip


def outcome_json(outcome: SearchOutcome) -> dict[str, Any]:
    """The object ``search --json`` prints (latency on every target that can run the architecture)."""
    return {
        "arch": outcome.best.arch,
        "score": outcome.best_score,
        "estimator": outcome.estimator,
        "latency_ms": {t: ms for t, (ms, _) in outcome.all_latency_ms.items() if ms is not None},
        "budget_ms": outcome.budget_ms,
        "out_dir": str(outcome.out_dir),
    }


__all__ = [
    "REFERENCE_MODELS",
    "Reporter",
    "SearchSettings",
    "SilentReporter",
    "check_space",
    "choose_space",
    "format_ms",
    "outcome_json",
    "pair_budgets",
    "run_search",
]
