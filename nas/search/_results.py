"""The result folder of a search: ``best.json``, ``best.timm.txt``, ``trials.csv``, ``pareto.csv``,
``pareto.png``, ``summary.md`` (next to the optuna storage and ``run.json``).

Everything here is derived from the studies (the record of the search), so a resumed or a
multi-worker search writes the same files from the shared storage.
"""

from __future__ import annotations

import io
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from nas._io import write_atomic, write_text_atomic
from nas.cost import count_macs, count_params
from nas.errors import NasError
from nas.search._evaluate import Evaluator, pareto_mask
from nas.spec import ArchSpec, parse_arch, to_json

#: ends the one-line error of a result file that cannot be written
OUT_HINT = "give --out a writable folder"


@dataclass
class Reference:
    """A zoo model drawn on the plots and compared in the summary."""

    name: str
    arch: ArchSpec
    score: float | None
    latency_ms: dict[str, float]


@dataclass
class SearchOutcome:
    """What a finished search found."""

    out_dir: Path
    best: ArchSpec
    best_score: float
    best_latency_ms: dict[str, float]  # searched targets
    all_latency_ms: dict[str, tuple[float | None, str]]  # every catalog target: (ms or None, provenance)
    trials: pd.DataFrame
    pareto: pd.DataFrame
    estimator: str = ""  # the estimator's name (what produced the scores)
    budget_ms: dict[str, float] = field(default_factory=dict)
    references: list[Reference] = field(default_factory=list)
    #: the data a trained estimator (a supernet) learnt: ``{"data", "classes", "resolution"}``, else None
    estimator_data: dict[str, Any] | None = None

    @property
    def within_budget(self) -> bool:
        """Whether the best architecture meets every budget (TuNAS may report one that does not)."""
        return all(self.best_latency_ms[t] <= ms for t, ms in self.budget_ms.items())

    @property
    def over_budget(self) -> dict[str, float]:
        """Searched targets whose budget the best architecture exceeds, with its latency there."""
        return {t: self.best_latency_ms[t] for t, ms in self.budget_ms.items() if self.best_latency_ms[t] > ms}


def pareto_frame(trials: pd.DataFrame, evaluator: Evaluator) -> pd.DataFrame:
    """Feasible, scored trials not dominated in (score ↑, latency per searched target ↓), unique archs."""
    lat_cols = [f"latency_ms[{b.target}]" for b in evaluator.budgets]
    ok = trials[trials["feasible"] & trials["score"].notna()].drop_duplicates("arch")
    if ok.empty:
        return ok
    mask = pareto_mask(ok["score"].to_numpy(float), ok[lat_cols].to_numpy(float))
    return ok[mask].sort_values("score", ascending=False).reset_index(drop=True)


@lru_cache(maxsize=64)
def _predictor(target: str, tables_dir: Path | None, fallback: str | None) -> Any:
    from nas.latency import load_predictor

    return load_predictor(target, tables_dir, fallback)


def provenance_table(
    arch: ArchSpec, targets: Sequence[str], strict: set[str], fallback: str | None, tables_dir: Path | None = None
) -> dict[str, tuple[float | None, str]]:
    """Latency of ``arch`` on every target with where the number comes from.

    Searched targets (``strict``) use the same predictors as the search; other targets fall back to
    their device model for missing entries (marked ``+roofline-fallback``); unsupported ops are
    reported as such, never as a number.
    """
    out: dict[str, tuple[float | None, str]] = {}
    for t in targets:
        try:
            pred = _predictor(t, tables_dir, fallback if t in strict else "roofline")
            p = pred.predict_archs([arch])
            out[t] = (float(p.latency_ms[0]), p.source)
        except NasError as exc:
            msg = str(exc)
            out[t] = (
                None,
                "cannot run: " + msg.split("cannot run ", 1)[1].split(" (")[0]
                if "cannot run" in msg
                else "n/a: " + msg[:80],
            )
    return out


def _limits(values: Sequence[float], pad: float = 0.06) -> tuple[float, float]:
    lo, hi = float(min(values)), float(max(values))
    span = hi - lo if hi > lo else max(abs(hi), 1e-9) * 0.1
    return lo - pad * span, hi + pad * span


def _short_estimator(name: str) -> str:
    """An estimator's name short enough for an axis label: a checkpoint or predictor path by its file
    name (``supernet:runs/a/supernet.pt`` → ``supernet:supernet.pt``); summary.md keeps the whole name."""
    kind, sep, arg = name.partition(":")
    short = f"{kind}{sep}{Path(arg).name}" if sep and "/" in arg else name
    return short if len(short) <= 40 else short[:39] + "…"


def _draw_references(
    ax: Any, refs: list[Reference], target: str, xlim: tuple[float, float], ylim: tuple[float, float]
) -> list[str]:
    """Zoo models inside the axes as labelled stars; those outside as hollow stars clipped to the edge,
    returned as '<name>: <ms> ms, score <s>' lines for a note beside the plot (the axes follow the
    trials: a zoo model far away must not squeeze them into a sliver)."""
    outside = []
    for r in refs:
        if r.score is None or target not in r.latency_ms:
            continue
        x, y = r.latency_ms[target], r.score
        if xlim[0] <= x <= xlim[1] and ylim[0] <= y <= ylim[1]:
            ax.scatter([x], [y], marker="*", s=140, color="tab:orange", edgecolor="k", zorder=5)
            ax.annotate(r.name, (x, y), fontsize=8, xytext=(4, 4), textcoords="offset points")
            continue
        cx, cy = min(max(x, xlim[0]), xlim[1]), min(max(y, ylim[0]), ylim[1])
        ax.scatter(
            [cx], [cy], marker="*", s=110, facecolor="none", edgecolor="tab:orange", lw=1.2, zorder=5, clip_on=False
        )
        outside.append(f"{r.name}: {x:.3g} ms, score {y:.4g}")
    return outside


def _plot(
    path: Path,
    trials: pd.DataFrame,
    pareto: pd.DataFrame,
    evaluator: Evaluator,
    refs: list[Reference],
    best: ArchSpec,
    estimator_name: str,
) -> None:
    import matplotlib.pyplot as plt

    fig = pareto_figure(trials, pareto, evaluator, refs, best, estimator_name)
    buf = io.BytesIO()
    fig.savefig(buf, dpi=120, format="png")
    plt.close(fig)
    write_atomic(path, lambda fh: fh.write(buf.getvalue()), OUT_HINT)


def pareto_figure(
    trials: pd.DataFrame,
    pareto: pd.DataFrame,
    evaluator: Evaluator,
    refs: list[Reference],
    best: ArchSpec,
    estimator_name: str,
) -> Any:
    """``pareto.png``'s figure: score vs latency per searched target. The axes follow the trials (and
    the budget when it is near them); zoo models beyond them sit at the edge and are listed below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(evaluator.budgets)
    listed = sum(r.score is not None for r in refs)  # room below the axes for the zoo models beyond them
    fig, axes = plt.subplots(1, n, figsize=(6.4 * n, 4.8 + 0.16 * (listed + 1)), squeeze=False)
    scored = trials[trials["score"].notna()]
    for ax, b in zip(axes[0], evaluator.budgets, strict=True):
        col = f"latency_ms[{b.target}]"
        for stage, marker in (("coarse", "o"), ("fine", "s"), ("joint", "^"), ("rescored", "v")):
            s = scored[scored["stage"].str.startswith(stage)]
            if not s.empty:
                ax.scatter(s[col], s["score"], s=12, alpha=0.45, marker=marker, label=f"{stage} trials")
        if not pareto.empty:
            p = pareto.sort_values(col)
            ax.step(p[col], p["score"], where="post", color="k", lw=1.2, label="Pareto front")
        best_row = trials[trials["arch"] == best.arch]
        if not best_row.empty:
            ax.scatter(
                best_row[col].iloc[:1],
                best_row["score"].iloc[:1],
                marker="D",
                s=60,
                color="tab:green",
                edgecolor="k",
                zorder=6,
                label="best",
            )
        xs = scored[col].tolist() or [b.budget_ms]
        # A budget far beyond the trials (a slack target of a universal search) would squeeze them.
        near = b.budget_ms <= max(xs) + 0.5 * (max(xs) - min(xs))
        xlim, ylim = _limits([*xs, b.budget_ms] if near else xs), _limits(scored["score"].tolist() or [0.0])
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        if near:
            ax.axvline(b.budget_ms, color="r", ls="--", lw=1, label=f"budget {b.text}")
        else:
            ax.plot([], [], color="r", ls="--", lw=1, label=f"budget {b.text} (beyond the axes →)")
        outside = _draw_references(ax, refs, b.target, xlim, ylim)
        if outside:
            ax.scatter(
                [],
                [],
                marker="*",
                s=110,
                facecolor="none",
                edgecolor="tab:orange",
                label="zoo model off the axes (at the edge)",
            )
            ax.text(0.0, -0.14, "off the axes:\n" + "\n".join(outside), transform=ax.transAxes, fontsize=8, va="top")
        ax.set_xlabel(f"latency on {b.target} (ms)")
        ax.set_ylabel(f"score ({_short_estimator(estimator_name)})")
        ax.set_title(b.target)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def _fmt(v: float | None, digits: int = 3) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def write_results(
    out_dir: Path,
    trials: pd.DataFrame,
    evaluator: Evaluator,
    *,
    all_targets: Sequence[str],
    settings: dict[str, Any],
    references: list[Reference],
    fallback: str | None,
    tables_dir: Path | None = None,
    chosen: tuple[ArchSpec, float] | None = None,
    stages: Collection[str] | None = None,
) -> SearchOutcome:
    """Write every result file from the trials table (see :func:`trials_frame`) and return the outcome.

    The best architecture is the highest-scoring one within every budget, unless the engine
    ``chosen`` its own (TuNAS reports its controller's most likely architecture); with nothing
    within budget and nothing chosen it is an error. ``stages`` restricts the best architecture and
    the Pareto front to the rows of those stages (TuNAS: its full-estimator ``rescored`` rows; a
    two-stage search whose coarse stage had its own estimator: the fine stages); ``trials.csv`` keeps
    every row.
    """
    _write_text(out_dir / "trials.csv", trials.to_csv(index=False))
    candidates = trials if stages is None else trials[trials["stage"].isin(list(stages))]
    if chosen is not None:
        best, best_score = chosen
    else:
        feasible = candidates[candidates["feasible"] & candidates["score"].notna()]
        if feasible.empty:
            raise NasError(
                f"no architecture within budget among {len(trials)} trials (see {out_dir / 'trials.csv'}); "
                "raise the budget, run more trials, or pick a smaller --space"
            )
        best_row = feasible.sort_values(["score", "trial"], ascending=[False, True]).iloc[0]
        best, best_score = parse_arch(best_row["arch"]), float(best_row["score"])
    pareto = pareto_frame(candidates, evaluator)
    _write_text(out_dir / "pareto.csv", pareto.to_csv(index=False))
    _write_text(out_dir / "best.json", to_json(best, out_dir.name))
    from nas.export.timm import timm_lines

    try:
        timm_text = timm_lines(best, out_dir.name)
    except NasError as exc:
        timm_text = f"# not expressible as timm arch-def: {exc}\n"
    _write_text(out_dir / "best.timm.txt", timm_text)
    _plot(out_dir / "pareto.png", trials, pareto, evaluator, references, best, settings["estimator"])
    everywhere = provenance_table(best, all_targets, {b.target for b in evaluator.budgets}, fallback, tables_dir)
    outcome = make_outcome(out_dir, trials, evaluator, (best, best_score), everywhere, settings, references, stages)
    _write_text(out_dir / "summary.md", _summary(outcome, evaluator, settings))
    return outcome


#: the files :func:`write_results` writes
RESULT_FILES = ("best.json", "best.timm.txt", "trials.csv", "pareto.csv", "pareto.png", "summary.md")


def make_outcome(
    out_dir: Path,
    trials: pd.DataFrame,
    evaluator: Evaluator,
    best: tuple[ArchSpec, float],
    everywhere: dict[str, tuple[float | None, str]],
    settings: dict[str, Any],
    references: list[Reference],
    stages: Collection[str] | None = None,
) -> SearchOutcome:
    """The outcome of written results (what :func:`write_results` returns; a finished run's rerun
    rebuilds it from its record without rewriting the files)."""
    candidates = trials if stages is None else trials[trials["stage"].isin(list(stages))]
    arch, score = best
    return SearchOutcome(
        out_dir,
        arch,
        score,
        evaluator.latencies(arch),
        everywhere,
        trials,
        pareto_frame(candidates, evaluator),
        settings["estimator"],
        {b.target: b.budget_ms for b in evaluator.budgets},
        references,
        settings.get("estimator_data"),
    )


def _write_text(path: Path, text: str) -> None:
    """Every result file is replaced atomically: a kill leaves the old file or the new one."""
    write_text_atomic(path, text, OUT_HINT)


def _summary(o: SearchOutcome, evaluator: Evaluator, settings: dict[str, Any]) -> str:
    b_text = ", ".join(f"{b.target} ≤ {b.text}" for b in evaluator.budgets)
    n_feasible = int((o.trials["feasible"]).sum())
    lines = [
        f"# mnv4-nas search — {o.out_dir.name}",
        "",
        f"- budgets: {b_text}",
        f"- space: `{settings['space']}` ({settings['space_note']})",
        f"- engine: {settings['engine']}, {settings['mode']}; trials: {settings['trials_text']}; seed {settings['seed']}",
        f"- estimator: `{settings['estimator']}` — {settings['estimator_meaning']}",
        f"- trials completed: {len(o.trials)}, within budget: {n_feasible}",
        f"- storage: `{settings['storage']}` (study `{settings['study']}`)",
        *_data_lines(o),
        "",
        "## Best architecture",
        "",
        f"score {o.best_score:.4f}; {count_params(o.best):,} params; {count_macs(o.best) / 1e6:.1f} M MACs",
        *_budget_lines(o),
        "",
        "```",
        o.best.arch,
        "```",
        "",
        "| target | latency (ms) | budget | provenance |",
        "|---|---|---|---|",
    ]
    budgets = {b.target: b.text for b in evaluator.budgets}
    for t, (ms, prov) in o.all_latency_ms.items():
        lines.append(f"| {t} | {_fmt(ms)} | {budgets.get(t, '')} | {prov} |")
    if o.references:
        lines += [
            "",
            "## Reference models (same estimator, same tables)",
            "",
            "| model | score | " + " | ".join(budgets) + " |",
            "|---|---|" + "---|" * len(budgets),
        ]
        for r in o.references:
            lats = " | ".join(_fmt(r.latency_ms.get(t)) for t in budgets)
            lines.append(f"| {r.name} | {_fmt(r.score, 4)} | {lats} |")
    lines += [
        "",
        "## Files",
        "",
        "- `best.json` — the architecture spec (`mnv4-nas show best.json`, `mnv4-nas export best.json --format onnx -o m.onnx`)",
        "- `best.timm.txt` — timm arch-def lines and a snippet that builds the model in timm "
        "(`sed -n 's/^#| //p' best.timm.txt | python`)",
        "- `trials.csv` — every completed trial: stage, score, latency per target, feasibility, arch",
        "- `pareto.csv`, `pareto.png` — non-dominated feasible trials; score vs latency with the zoo models",
        "- `run.json` and the optuna storage — rerun the same command with `--out` this folder to resume",
        "",
    ]
    return "\n".join(lines)


def _data_lines(o: SearchOutcome) -> list[str]:
    """What a trained estimator learnt, and what best.json keeps instead (its deployment head and input)."""
    d = o.estimator_data
    if d is None:
        return []
    return [
        f"- scores come from a supernet trained on `{d['data']}` ({d['classes']} classes) at {d['resolution']} px; "
        f"`best.json` keeps the space's deployment head and input ({o.best.num_classes} classes, "
        f"{o.best.resolution} px), which the latencies are for — train it on your own data before use",
    ]


def _budget_lines(o: SearchOutcome) -> list[str]:
    over = o.over_budget
    if not over:
        return ["", "within every budget"]
    parts = ", ".join(f"{t} ({ms:.3f} ms > {o.budget_ms[t]:g} ms)" for t, ms in over.items())
    return ["", f"**OVER BUDGET** on {parts}: this is the engine's pick, not a trial within budget"]


def best_table_rows(outcome: SearchOutcome, k: int = 5) -> list[tuple[str, float, ArchSpec]]:
    """(label, score, arch) of the best architecture and up to ``k - 1`` other Pareto members."""
    rows = [("best", outcome.best_score, outcome.best)]
    for _, r in outcome.pareto.iterrows():
        if len(rows) >= k:
            break
        if r["arch"] != outcome.best.arch:
            rows.append((f"pareto #{len(rows)}", float(r["score"]), parse_arch(r["arch"])))
    return rows


__all__ = [
    "OUT_HINT",
    "RESULT_FILES",
    "Reference",
    "SearchOutcome",
    "best_table_rows",
    "make_outcome",
    "pareto_figure",
    "pareto_frame",
    "provenance_table",
    "write_results",
]
