"""pareto.png follows the trials: zoo models far from them sit at the edge, listed by name."""

from __future__ import annotations

import matplotlib.pyplot as plt

from nas.latency import load_predictor
from nas.search import Evaluator, pair_budgets, run_search
from nas.search._results import pareto_figure


def test_axes_follow_the_trials_and_far_zoo_models_are_listed(settings):
    out = run_search(settings(references=True))
    budgets = pair_budgets(["pixel8-edgetpu"], ["0.72ms"], ["pixel8-edgetpu"])
    ev = Evaluator({"pixel8-edgetpu": load_predictor("pixel8-edgetpu")}, budgets, None)
    fig = pareto_figure(out.trials, out.pareto, ev, out.references, out.best, "params")
    try:
        ax = fig.axes[0]
        lat = out.trials[out.trials["score"].notna()]["latency_ms[pixel8-edgetpu]"]  # what is drawn
        lo, hi = ax.get_xlim()
        assert lo <= lat.min() and max(lat.max(), 0.72) <= hi
        assert hi - lo < 2 * (max(lat.max(), 0.72) - lat.min())  # no zoo model stretches the axis
        far = [r for r in out.references if not lo <= r.latency_ms["pixel8-edgetpu"] <= hi]
        assert far  # the large zoo models are several times over this budget
        box = "\n".join(t.get_text() for t in ax.texts)
        assert box.startswith("off the axes:") and all(r.name in box for r in far)
        assert all(t.get_position()[1] < 0 for t in ax.texts)  # below the axes, not over the trials
    finally:
        plt.close(fig)


def test_a_long_estimator_path_is_shortened_on_the_axis(settings):
    out = run_search(settings())
    budgets = pair_budgets(["pixel8-edgetpu"], ["0.72ms"], ["pixel8-edgetpu"])
    ev = Evaluator({"pixel8-edgetpu": load_predictor("pixel8-edgetpu")}, budgets, None)
    name = "supernet:benchmarks/results/close_the_loop/search/supernet.pt"
    fig = pareto_figure(out.trials, out.pareto, ev, out.references, out.best, name)
    try:
        fig.canvas.draw()
        ax = fig.axes[0]
        assert ax.get_ylabel() == "score (supernet:supernet.pt)"
        label = ax.yaxis.label.get_window_extent()
        assert label.y0 >= 0 and label.y1 <= fig.bbox.height  # inside the figure, readable
    finally:
        plt.close(fig)
