from __future__ import annotations

import re

import pytest

from nas.errors import NasError
from nas.units import (
    format_count,
    format_macs,
    parse_budget,
    parse_count,
    parse_latency_ms,
    utc_stamp,
    utc_timestamp,
)


@pytest.mark.parametrize(
    "text, ms", [("4", 4.0), ("4ms", 4.0), ("4 MS", 4.0), ("4_000us", 4.0), ("0.004s", 4.0), ("5.", 5.0)]
)
def test_supernet_latency_budget_takes_bare_ms_and_every_search_unit(text, ms):
    assert parse_budget(text, "ms") == pytest.approx(ms)


@pytest.mark.parametrize("text, n", [("300M", 3e8), ("1.2g", 1.2e9), ("20k", 2e4), ("3e8", 3e8), ("1_000", 1e3)])
def test_counts(text, n):
    assert parse_budget(text, "MACs") == pytest.approx(n) == parse_count(text)


def test_search_grammar_needs_a_unit_and_numbers_pass_through():
    with pytest.raises(NasError, match="with a unit"):
        parse_latency_ms("4")
    assert parse_budget(None, "ms") is None and parse_budget(7, "params") == 7.0


@pytest.mark.parametrize("text", ["fast", "0", "-1", "1e400", "", "4 kms"])
def test_bad_budgets_are_one_line_errors(text):
    for unit in ("ms", "MACs"):
        with pytest.raises(NasError) as exc:
            parse_budget(text, unit)
        assert "\n" not in str(exc.value)


def test_timestamps_are_utc():
    assert utc_timestamp().endswith("+00:00")
    assert re.fullmatch(r"\d{8}-\d{6}", utc_stamp())


def test_count_formats():
    assert format_count(3774024) == "3,774,024"
    assert format_macs(186_000_000) == "186.0 M" and format_macs(1_080_000_000) == "1.080 G"


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), True])
def test_a_numeric_budget_that_is_not_a_positive_finite_number_is_an_error(value):
    with pytest.raises(NasError, match="budget"):
        parse_budget(value)
