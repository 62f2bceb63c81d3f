"""The paper's published model latencies (``latency_tables/published.csv``) and the rows the zoo can express."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from nas.errors import ConfigError
from nas.inputs import as_error, read_text
from nas.latency._table import read_csv_text

PUBLISHED_NAME = "published.csv"
#: Published latencies are rounded to 0.1 ms: a uniform error of ±0.05 ms, standard deviation 0.1/√12.
PUBLISHED_ROUNDING_STD_MS = 0.1 / np.sqrt(12)
FAILED = "Failed"


@dataclass(frozen=True)
class PublishedPoint:
    """One expressible published latency: zoo model, CSV row name, milliseconds."""

    zoo_name: str
    row: str
    latency_ms: float


def published_path() -> Path:
    """The shipped copy of the published latencies."""
    from nas.resources import data_dir

    return data_dir("latency_tables") / PUBLISHED_NAME


@cache
def _read(path: str) -> pd.DataFrame:
    p = Path(path)
    with as_error(ConfigError):
        text = read_text(p, "published latencies")
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    df = read_csv_text(body, str(p), keep_default_na=True, na_values=None)
    if "model" not in df.columns:
        raise ConfigError(f"{p}: missing column 'model'")
    return df.set_index("model")


def load_published(path: str | Path | None = None) -> pd.DataFrame:
    """Published table as strings (``model`` index; target columns hold numbers, ``Failed`` or NaN)."""
    return _read(str(path or published_path())).copy()


def published_points(target: str, path: str | Path | None = None) -> list[PublishedPoint]:
    """Published latencies on ``target`` of every model the zoo expresses (empty/Failed rows skipped)."""
    from nas.zoo import PUBLISHED_NAMES

    df = load_published(path)
    if target not in df.columns:
        return []
    out = []
    for zoo_name, row in PUBLISHED_NAMES.items():
        if row not in df.index:
            continue
        value = pd.to_numeric(df.at[row, target], errors="coerce")
        if pd.notna(value):
            out.append(PublishedPoint(zoo_name, row, float(value)))
    return out
