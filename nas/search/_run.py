"""Orchestration of ``mnv4-nas search``: targets and budgets, space choice, feasibility checks,
the two-stage (coarse → fine) or one-stage flow, resume, and the result folder."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from nas.errors import NasError
from nas.search._evaluate import Evaluator, TargetBudget, min_latency
from nas.search._optuna_engine import (
    StageSpec,
    completed_trials,
    multi_objective,
    n_complete,
    run_local,
    run_ray,
    trial_score,
)
from nas.search._record import RUN_FILE, RunDir, check_identity, check_run_dir, file_stamp, normalized, open_run_dir
from nas.search._results import RESULT_FILES, Reference, SearchOutcome, make_outcome, trials_frame, write_results
from nas.search._storage import OpenedStorage, check_rdb_url, open_storage
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
from nas.units import parse_latency_ms, utc_stamp, utc_timestamp

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
        out.append(TargetBudget(t, parse_latency_ms(b), b.replace(" ", "")))
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


def _fitting_spaces(space: SearchSpace, b: TargetBudget, pred: Any, two_stage: bool) -> list[str]:
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


def check_space(space: SearchSpace, budgets: list[TargetBudget], predictors: dict[str, Any], *,
                two_stage: bool = False) -> dict[str, float]:  # fmt: skip
    """Refuse hardware the space cannot run on, and budgets that the search cannot meet, before any
    trial: no member of the space reaches them, or (``two_stage``) no member of its coarse stage does —
    the coarse stage fixes every block to an IB, so its smallest latency lies above the space's.
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


def _run_name(budgets: list[TargetBudget]) -> str:
    stamp = utc_stamp()
    return "+".join(f"{b.target}-{b.text}" for b in budgets) + f"-{stamp}"


def _identity(
    settings: SearchSettings, budgets: list[TargetBudget], space: SearchSpace, estimator: str
) -> dict[str, Any]:
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


def _request(settings: SearchSettings, catalog: dict[str, Any]) -> dict[str, Any]:
    """Everything a finished run's results depend on, as given (before any estimator is built): a rerun
    with an equal request rewrites the results from the record instead of searching. Files read (a
    supernet checkpoint, every target's latency table) enter with their size and mtime."""
    from nas.latency import find_table

    names = ("targets", "budgets", "space", "estimator", "coarse_estimator", "one_stage", "trials", "coarse_trials",
             "fine_trials", "coarse_top", "pareto", "seed", "study", "fallback", "tables_dir", "engine", "beta",
             "references")  # fmt: skip
    req: dict[str, Any] = {n: getattr(settings, n) for n in names}
    # a hash, not the URL: run.json must not keep a database password
    req["storage"] = None if settings.storage is None else hashlib.sha256(settings.storage.encode()).hexdigest()[:16]
    est_files = [
        text.split(":", 1)[1] for text in (settings.estimator, settings.coarse_estimator) if text and ":" in text
    ]
    req["files"] = [file_stamp(f) for f in est_files] + [
        file_stamp(find_table(t, settings.tables_dir)) for t in sorted(catalog)
    ]
    return normalized(req)


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


class _TrainedMeta(Protocol):
    """A trained estimator's checkpoint metadata (supernet, few-shot supernet)."""

    meta: dict[str, Any]


def estimator_data(estimator: object) -> dict[str, Any] | None:
    """The data a trained estimator learnt (``data``, ``classes``, ``resolution``); None for proxies.

    A supernet+macs estimator wraps a supernet (``base``)."""
    for obj in (estimator, getattr(estimator, "base", None)):
        meta = getattr(obj, "meta", None)
        if isinstance(meta, dict) and "classes" in meta and "resolution" in meta:
            return _data_of(cast(_TrainedMeta, obj).meta)
    return None


def _data_of(meta: dict[str, Any]) -> dict[str, Any]:
    data = meta.get("data")
    return {
        "data": str(data.get("spec")) if isinstance(data, dict) else "?",
        "classes": len(meta["classes"]),
        "resolution": int(meta["resolution"]),
    }


@dataclass
class _Plan:
    """A checked search, ready to run: what both engines and the result writer need."""

    space: SearchSpace
    space_note: str
    estimator: Any
    coarse_est: Any
    evaluator: Evaluator
    coarse_ev: Evaluator
    multi: bool
    predictors: dict[str, Any]
    catalog: dict[str, Any]
    mins: dict[str, float]
    identity: dict[str, Any]
    data: dict[str, Any] | None


def _check_settings(settings: SearchSettings) -> None:
    """The checks that need nothing loaded."""
    if settings.engine not in ENGINES:
        raise NasError(f"--engine must be one of {', '.join(ENGINES)} (got {settings.engine!r})")
    if settings.engine == "tunas" and (settings.workers or settings.ray_address or settings.storage or settings.study):
        raise NasError(
            "--engine tunas runs in this process; --workers, --ray-address, --storage and --study are for the optuna engine"
        )
    if settings.coarse_top < 1:
        raise NasError(f"--coarse-top must be >= 1 (got {settings.coarse_top})")
    for label, n in (
        ("trials", settings.trials),
        ("coarse-trials", settings.coarse_trials),
        ("fine-trials", settings.fine_trials),
    ):
        if n < 1:
            raise NasError(f"--{label} must be >= 1 (got {n})")
    if not settings.beta < 0:
        raise NasError(f"--beta must be negative (a latency penalty; got {settings.beta})")
    if settings.storage and "://" in settings.storage:
        check_rdb_url(settings.storage)


def _plan(settings: SearchSettings, budgets: list[TargetBudget], predictors: dict[str, Any], catalog: dict[str, Any],
          rep: Reporter) -> _Plan:  # fmt: skip
    """Build the estimators, choose and check the space (everything that may refuse before a trial)."""
    from nas.supernet import make_estimator

    tunas = settings.engine == "tunas"
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
    if coarse_est is not None and (other := _trained_elsewhere(coarse_est, space)):
        raise NasError(f"--coarse-estimator {coarse_est.name} was trained on space {other}, not on {space.name}")
    mins = check_space(space, budgets, predictors, two_stage=not settings.one_stage)
    multi = multi_objective(Evaluator(predictors, budgets, None), settings.pareto)
    evaluator = Evaluator(predictors, budgets, estimator, score_infeasible=multi)
    coarse_ev = evaluator if coarse_est is None else Evaluator(predictors, budgets, coarse_est, score_infeasible=multi)
    return _Plan(space, space_note, estimator, coarse_est, evaluator, coarse_ev, multi, predictors, catalog, mins,
                 _identity(settings, budgets, space, estimator.name), estimator_data(estimator))  # fmt: skip


def run_search(settings: SearchSettings, reporter: Reporter | None = None) -> SearchOutcome:
    """Run (or resume) a search and write its result folder.

    The run folder is locked for the whole run. A rerun of a finished search with the same request
    returns its outcome from the record at once (no estimator, no Ray, no trial)."""
    from nas.latency import load_catalog, load_predictor

    rep = reporter or SilentReporter()
    _check_settings(settings)
    catalog = load_catalog(settings.tables_dir)
    budgets = pair_budgets(settings.targets, settings.budgets, list(catalog))
    predictors = {b.target: load_predictor(b.target, settings.tables_dir, settings.fallback) for b in budgets}
    out = settings.out or (settings.output_root / _run_name(budgets))
    check_run_dir(out)
    run = open_run_dir(out) if (out / RUN_FILE).exists() else None
    try:
        if run is not None and (done := _rewrite_finished(run, settings, budgets, predictors, catalog, rep)):
            return done
        plan = _plan(settings, budgets, predictors, catalog, rep)
        run = run or open_run_dir(out)  # created only now: a refused search leaves no folder behind
        check_identity(run, plan.identity)
        if settings.engine == "tunas":
            return _run_tunas(settings, plan, run, rep)
        return _run_optuna(settings, plan, run, rep)
    finally:
        if run is not None:
            run.release()


def _run_record(settings: SearchSettings, plan: _Plan, run: RunDir, **extra: Any) -> dict[str, Any]:
    """``run.json`` of a run in progress (no ``finished`` entry)."""
    return {
        "format": RUN_FORMAT,
        "identity": plan.identity,
        **extra,
        "seed": settings.seed,
        "trials": settings.trials,
        "coarse_trials": settings.coarse_trials,
        "fine_trials": settings.fine_trials,
        "created": (run.previous or {}).get("created", utc_timestamp()),
        "min_latency_ms": plan.mins,
        "estimator_data": plan.data,
    }


def _run_optuna(settings: SearchSettings, plan: _Plan, run: RunDir, rep: Reporter) -> SearchOutcome:
    out, space, evaluator = run.path, plan.space, plan.evaluator
    opened = open_storage(settings.storage, out)
    if opened.broken_locks:
        rep.note(f"removed a stale optuna lock left by a killed process ({', '.join(opened.broken_locks)})")
    study_base = settings.study or (run.previous or {}).get("study") or out.name
    if run.previous:
        rep.note(f"resuming {out} (study {study_base})")
    record = _run_record(settings, plan, run, study=study_base, storage=opened.url)
    run.write_record(record)
    ray = bool(settings.workers or settings.ray_address)
    wanted: dict[str, int] = {}

    def run_stage(stage: StageSpec, seed: int, ev: Evaluator = evaluator) -> Any:
        wanted[stage.label] = stage.n_trials
        if ray:
            rep.stage_start(stage.label, stage.n_trials, 0)
            study = run_ray(
                stage, ev, opened, multi=plan.multi, seed=seed, workers=settings.workers or 1,
                address=settings.ray_address, run_dir=out,
                on_trial=lambda r: rep.trial_done(stage.label, bool(r.get("feasible")), r.get("score")),
            )  # fmt: skip
        else:
            rep.stage_start(stage.label, stage.n_trials, stage_progress(stage, opened))
            study = run_local(
                stage, ev, opened, multi=plan.multi, seed=seed,
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
            cstudy = run_stage(coarse, settings.seed, plan.coarse_ev)
            studies.append(("coarse", cstudy, cspace))
            # Several workers share the coarse result through the study, so they all refine the same bases.
            bases_text = cstudy.user_attrs.get("fine_bases")
            if bases_text is None:
                bases = _top_feasible(cstudy, plan.coarse_ev, settings.coarse_top, cspace)
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
            "space_note": plan.space_note,
            "engine": "optuna"
            + (f" on Ray ({settings.ray_address or f'{settings.workers} local workers'})" if ray else ""),
            "mode": ("NSGA-II" if plan.multi else "TPE") + (", one-stage" if settings.one_stage else ", two-stage"),
            "trials_text": trials_text,
            "seed": settings.seed,
            "estimator": plan.estimator.name,
            "estimator_meaning": plan.estimator.meaning + _coarse_note(plan.coarse_est),
            "storage": opened.url,
            "study": study_base,
            "estimator_data": plan.data,
        }
        refs = _references(plan.estimator, plan.predictors) if settings.references else []
        # Two estimators score on two scales: the coarse stage only chooses the bases the fine stage refines.
        fine_only = None if plan.coarse_est is None else [label for label, _, _ in studies if label != "coarse"]
        outcome = write_results(
            out, trials_frame(studies, evaluator), evaluator, all_targets=list(plan.catalog), settings=info,
            references=refs, fallback=settings.fallback, tables_dir=settings.tables_dir, stages=fine_only,
        )  # fmt: skip
    finally:
        opened.close()
    short = [f"{label} {n_complete(st)}/{wanted[label]}" for label, st, _ in studies if n_complete(st) < wanted[label]]
    if short:  # a worker sharing the study died mid-trial, or is still running one
        rep.note(f"stages short of their trials: {', '.join(short)}; rerun the same command to complete them")
        return outcome
    stages = [[label, study.study_name] for label, study, _ in studies]
    record["finished"] = _finished(settings, plan, outcome, info, fine_only, stages=stages)
    run.write_record(record)
    return outcome


def stage_progress(stage: StageSpec, opened: OpenedStorage) -> int:
    """Trials of ``stage`` already completed (what its progress bar starts from)."""
    import optuna

    try:
        study = optuna.load_study(study_name=stage.study_name, storage=opened.storage)
    except KeyError:
        return 0
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def _finished(settings: SearchSettings, plan: _Plan, outcome: SearchOutcome, info: dict[str, Any],
              best_stages: list[str] | None, **extra: Any) -> dict[str, Any]:  # fmt: skip
    """The ``finished`` entry of run.json: the request, and what rebuilding the outcome needs."""
    return normalized({
        "request": _request(settings, plan.catalog),
        "info": info,
        "references": [{"name": r.name, "score": r.score, "latency_ms": r.latency_ms} for r in outcome.references],
        "best_stages": best_stages,
        "best": {"arch": outcome.best.arch, "score": outcome.best_score},
        "all_latency_ms": outcome.all_latency_ms,
        "trials_sha256": _sha256(outcome.out_dir / "trials.csv"),
        **extra,
    })  # fmt: skip


def _rewrite_finished(run: RunDir, settings: SearchSettings, budgets: list[TargetBudget], predictors: dict[str, Any],
                      catalog: dict[str, Any], rep: Reporter) -> SearchOutcome | None:  # fmt: skip
    """The outcome of a finished run asked for again with the same request, from its record: the trials
    from the optuna storage (TuNAS: its trials.csv, checked against the recorded hash), the rest from
    run.json; the result files are rewritten only when one is missing or was written from other trials.
    None when the run must (re)run."""
    from nas.zoo import get_spec

    rec = (run.previous or {}).get("finished")
    if not isinstance(rec, dict) or rec.get("request") != _request(settings, catalog):
        return None
    evaluator = Evaluator(predictors, budgets, None)
    chosen = None
    if rec.get("chosen"):
        trials = _read_trials(run.path / "trials.csv", rec.get("trials_sha256"))
        chosen = (parse_arch(rec["chosen"]["arch"]), float(rec["chosen"]["score"]))
    else:
        trials = _trials_from_storage(settings, run.path, rec["stages"], evaluator)
    if trials is None:
        return None
    refs = [Reference(r["name"], get_spec(r["name"]), r["score"], r["latency_ms"]) for r in rec["references"]]
    rep.note(f"{run.path}: this search is finished ({len(trials)} trials); results from its record "
             "(raise the trial counts to search on)")  # fmt: skip
    text = trials.to_csv(index=False)
    if all((run.path / n).is_file() for n in RESULT_FILES) and _sha256_text(text) == rec.get("trials_sha256"):
        # The files were written from these very trials: rebuild the outcome, rewrite nothing.
        best = (parse_arch(rec["best"]["arch"]), float(rec["best"]["score"]))
        everywhere = {t: (v[0], v[1]) for t, v in rec["all_latency_ms"].items()}
        return make_outcome(run.path, trials, evaluator, best, everywhere, rec["info"], refs, rec["best_stages"])
    outcome = write_results(run.path, trials, evaluator, all_targets=list(catalog), settings=rec["info"],
                            references=refs, fallback=settings.fallback, tables_dir=settings.tables_dir,
                            chosen=chosen, stages=rec["best_stages"])  # fmt: skip
    fresh = {
        **rec,
        "best": {"arch": outcome.best.arch, "score": outcome.best_score},
        "all_latency_ms": outcome.all_latency_ms,
        "trials_sha256": _sha256(run.path / "trials.csv"),
    }
    run.write_record({**(run.previous or {}), "finished": normalized(fresh)})
    return outcome


def _trials_from_storage(settings: SearchSettings, out: Path, stages: list[list[str]], evaluator: Evaluator) -> Any:
    """The trials table of a finished optuna run from its storage; None when a trial lacks its arch
    (Ray trials of older runs: rebuilding them needs the space, so the run takes the normal path)."""
    import optuna

    opened = open_storage(settings.storage, out)
    try:
        studies = [(label, optuna.load_study(study_name=name, storage=opened.storage), None) for label, name in stages]
        if any("arch" not in t.user_attrs for _, st, _ in studies for t in completed_trials(st)):
            return None
        return trials_frame(studies, evaluator)
    except KeyError:  # a study is gone (another --storage)
        return None
    finally:
        opened.close()


def _read_trials(path: Path, sha: str | None) -> Any:
    """A TuNAS run's trials.csv when it is the one recorded (same SHA-256), else None."""
    import pandas as pd

    if sha is None or not path.is_file() or _sha256(path) != sha:
        return None
    return pd.read_csv(path)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _run_tunas(settings: SearchSettings, plan: _Plan, run: RunDir, rep: Reporter) -> SearchOutcome:
    """The TuNAS engine's run: no optuna storage (a TuNAS search restarts from scratch when rerun
    before it finished)."""
    from nas.search._tunas_engine import RESCORE_TOP, RESCORED, run_tunas

    evaluator = plan.evaluator
    record = _run_record(settings, plan, run)
    run.write_record(record)
    trials, arch, score, details = run_tunas(
        plan.space, evaluator, plan.estimator, coarse_estimator=plan.coarse_est, one_stage=settings.one_stage,
        steps=(settings.trials, settings.coarse_trials, settings.fine_trials), seed=settings.seed,
        beta=settings.beta, reporter=rep,
    )  # fmt: skip
    record["tunas"] = details
    over = [b for b in evaluator.budgets if evaluator.latencies(arch)[b.target] > b.budget_ms]
    if over:
        rep.note("TuNAS's most likely architecture is over budget on " + ", ".join(
            f"{b.target} ({evaluator.latencies(arch)[b.target]:.3g} ms > {b.text})" for b in over
        ) + ": the absolute reward only penalises the distance to T0; more steps or a more negative --beta tighten it")  # fmt: skip
    steps = (f"{settings.trials} one-stage steps" if settings.one_stage
             else f"{settings.coarse_trials} coarse + {settings.fine_trials} fine steps")  # fmt: skip
    info = {
        "space": plan.space.name,
        "space_note": plan.space_note,
        "engine": f"TuNAS REINFORCE, absolute reward R = Q + β·|T/T0 − 1|, β = {settings.beta}, T0 = the budget",
        "mode": "one-stage" if settings.one_stage else "two-stage",
        "trials_text": steps + " (one sampled architecture per step, scored by one held-out batch; the "
        f"(up to) {RESCORE_TOP} best distinct within-budget samples scored again by the full estimator are the "
        f"`{RESCORED}` rows, and pareto.csv is built from them)",
        "seed": settings.seed,
        "estimator": plan.estimator.name,
        "estimator_meaning": plan.estimator.meaning + _coarse_note(plan.coarse_est),
        "storage": "none (TuNAS runs in one process)",
        "study": "-",
        "estimator_data": plan.data,
    }
    refs = _references(plan.estimator, plan.predictors) if settings.references else []
    outcome = write_results(run.path, trials, evaluator, all_targets=list(plan.catalog), settings=info,
                            references=refs, fallback=settings.fallback, tables_dir=settings.tables_dir,
                            chosen=(arch, score), stages=[RESCORED])  # fmt: skip
    record["finished"] = _finished(
        settings, plan, outcome, info, [RESCORED], chosen={"arch": arch.arch, "score": score}
    )
    run.write_record(record)
    return outcome


def _coarse_note(coarse_est: Any) -> str:
    """What the summary adds to the estimator's meaning when the coarse stage had its own."""
    if coarse_est is None:
        return ""
    return (f"; the coarse stage was scored by `{coarse_est.name}` ({coarse_est.meaning}), so best and Pareto "
            "front come from the fine stage")  # fmt: skip


def outcome_json(outcome: SearchOutcome) -> dict[str, Any]:
    """The object ``search --json`` prints (latency on every target that can run the architecture).

    ``within_budget`` is false when the engine's pick exceeds a budget (TuNAS may report one);
    ``estimator_data`` names the data a trained estimator learnt (classes, resolution), while
    ``classes``/``resolution`` are the best architecture's own (its deployment head and input)."""
    return {
        "arch": outcome.best.arch,
        "score": outcome.best_score,
        "estimator": outcome.estimator,
        "latency_ms": {t: ms for t, (ms, _) in outcome.all_latency_ms.items() if ms is not None},
        "budget_ms": outcome.budget_ms,
        "within_budget": outcome.within_budget,
        "classes": outcome.best.num_classes,
        "resolution": outcome.best.resolution,
        "estimator_data": outcome.estimator_data,
        "out_dir": str(outcome.out_dir),
    }


__all__ = [
    "REFERENCE_MODELS",
    "Reporter",
    "SearchSettings",
    "SilentReporter",
    "check_space",
    "choose_space",
    "outcome_json",
    "pair_budgets",
    "run_search",
]
