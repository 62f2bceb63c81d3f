from __future__ import annotations

import pytest

from nas.errors import NasError
from nas.search import pair_budgets
from nas.units import parse_latency_ms as parse_budget


@pytest.mark.parametrize(
    "text, ms", [("4ms", 4.0), ("4 ms", 4.0), ("4000us", 4.0), ("0.004s", 4.0), ("2.5ms", 2.5), ("750µs", 0.75)]
)
def test_budgets_parse(text, ms):
    assert parse_budget(text) == pytest.approx(ms)


@pytest.mark.parametrize("text", ["4", "-1ms", "fast", "0ms", "4 kms", "", "ms", "1e400ms"])
def test_bad_budgets_are_one_line_errors(text):
    with pytest.raises(NasError) as exc:
        parse_budget(text)
    assert "\n" not in str(exc.value) and "4ms" in str(exc.value)


def test_pairing():
    known = ["pixel8-edgetpu", "s23-gpu"]
    pairs = pair_budgets(["pixel8-edgetpu", "s23-gpu"], ["4ms", "2000us"], known)
    assert [(p.target, p.budget_ms) for p in pairs] == [("pixel8-edgetpu", 4.0), ("s23-gpu", 2.0)]
    with pytest.raises(NasError, match="unknown target 'tpu9' \\(known: pixel8-edgetpu, s23-gpu\\)"):
        pair_budgets(["tpu9"], ["4ms"], known)
    with pytest.raises(NasError, match="each --target needs one --budget"):
        pair_budgets(["pixel8-edgetpu", "s23-gpu"], ["4ms"], known)
    with pytest.raises(NasError, match="once"):
        pair_budgets(["s23-gpu", "s23-gpu"], ["4ms", "5ms"], known)
