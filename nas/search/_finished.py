"""A finished search asked for again: its request (what its results depend on), the record that
lets a rerun with an equal request rewrite the results without searching, and that rewrite."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pandas as pd

from nas.search._evaluate import Evaluator, TargetBudget
from nas.search._plan import Plan
from nas.search._protocols import LatencyPredictor, Reporter
from nas.search._record import RunDir, file_stamp, normalized
from nas.search._results import RESULT_FILES, Reference, SearchOutcome, make_outcome, write_results
from nas.search._settings import SearchSettings
from nas.search._storage import open_storage
from nas.search._trials import completed_trials, trials_frame
from nas.spec import parse_arch


def request(settings: SearchSettings, catalog: dict[str, Any]) -> dict[str, Any]:
    """Everything a finished run's results depend on, as given (before any estimator is built): a rerun
    with an equal request rewrites the results from the record instead of searching. Files read (a
    supernet checkpoint, every target's latency table) enter with their size and mtime."""
    from nas.latency import find_table

    names = (
        "targets",
        "budgets",
        "space",
        "estimator",
        "coarse_estimator",
        "one_stage",
        "trials",
        "coarse_trials",
        "fine_trials",
        "coarse_top",
        "pareto",
        "seed",
        "study",
        "fallback",
        "tables_dir",
        "engine",
        "beta",
        "references",
    )
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


def finished_record(
    settings: SearchSettings,
    plan: Plan,
    outcome: SearchOutcome,
    info: dict[str, Any],
    best_stages: list[str] | None,
    **extra: Any,
) -> dict[str, Any]:
    """The ``finished`` entry of run.json: the request, and what rebuilding the outcome needs."""
    return normalized(
        {
            "request": request(settings, plan.catalog),
            "info": info,
            "references": [{"name": r.name, "score": r.score, "latency_ms": r.latency_ms} for r in outcome.references],
            "best_stages": best_stages,
            "best": {"arch": outcome.best.arch, "score": outcome.best_score},
            "all_latency_ms": outcome.all_latency_ms,
            "trials_sha256": sha256_file(outcome.out_dir / "trials.csv"),
            **extra,
        }
    )


def rewrite_finished(
    run: RunDir,
    settings: SearchSettings,
    budgets: list[TargetBudget],
    predictors: dict[str, LatencyPredictor],
    catalog: dict[str, Any],
    rep: Reporter,
) -> SearchOutcome | None:
    """The outcome of a finished run asked for again with the same request, from its record: the trials
    from the optuna storage (TuNAS: its trials.csv, checked against the recorded hash), the rest from
    run.json; the result files are rewritten only when one is missing or was written from other trials.
    None when the run must (re)run."""
    from nas.zoo import get_spec

    rec = (run.previous or {}).get("finished")
    if not isinstance(rec, dict) or rec.get("request") != request(settings, catalog):
        return None
    evaluator = Evaluator(predictors, budgets, None)
    chosen = None
    if rec.get("chosen"):
        trials = read_trials(run.path / "trials.csv", rec.get("trials_sha256"))
        chosen = (parse_arch(rec["chosen"]["arch"]), float(rec["chosen"]["score"]))
    else:
        trials = trials_from_storage(settings, run.path, rec["stages"], evaluator)
    if trials is None:
        return None
    refs = [Reference(r["name"], get_spec(r["name"]), r["score"], r["latency_ms"]) for r in rec["references"]]
    rep.note(
        f"{run.path}: this search is finished ({len(trials)} trials); results from its record "
        "(raise the trial counts to search on)"
    )
    text = trials.to_csv(index=False)
    if all((run.path / n).is_file() for n in RESULT_FILES) and sha256_text(text) == rec.get("trials_sha256"):
        # The files were written from these very trials: rebuild the outcome, rewrite nothing.
        best = (parse_arch(rec["best"]["arch"]), float(rec["best"]["score"]))
        everywhere = {t: (v[0], v[1]) for t, v in rec["all_latency_ms"].items()}
        return make_outcome(run.path, trials, evaluator, best, everywhere, rec["info"], refs, rec["best_stages"])
    outcome = write_results(
        run.path,
        trials,
        evaluator,
        all_targets=list(catalog),
        settings=rec["info"],
        references=refs,
        fallback=settings.fallback,
        tables_dir=settings.tables_dir,
        chosen=chosen,
        stages=rec["best_stages"],
    )
    fresh = {
        **rec,
        "best": {"arch": outcome.best.arch, "score": outcome.best_score},
        "all_latency_ms": outcome.all_latency_ms,
        "trials_sha256": sha256_file(run.path / "trials.csv"),
    }
    run.write_record({**(run.previous or {}), "finished": normalized(fresh)})
    return outcome


def trials_from_storage(settings: SearchSettings, out: Path, stages: list[list[str]], evaluator: Evaluator) -> Any:
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


def read_trials(path: Path, sha: str | None) -> Any:
    """A TuNAS run's trials.csv when it is the one recorded (same SHA-256), else None."""
    if sha is None or not path.is_file() or sha256_file(path) != sha:
        return None
    return pd.read_csv(path)


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes (hex)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sha256_text(text: str) -> str:
    """SHA-256 of a text's UTF-8 bytes (hex)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


__all__ = [
    "finished_record",
    "read_trials",
    "request",
    "rewrite_finished",
    "sha256_file",
    "sha256_text",
    "trials_from_storage",
]
