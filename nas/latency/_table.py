"""Latency tables: one CSV per target with a ``# name: value`` metadata header.

Rows are keyed by the layer key (``uir_r1_a3_k5_s2_e4_c80@64x64x48``); typed columns spell out every
field of the key that changes latency; ``latency_ms`` (median), ``std_ms`` and ``n`` (timed runs)
are the measurement. Rows of kind ``model`` (key = a whole-architecture string) are end-to-end
measurements that calibrate the per-inference overhead and the cache term; lookups skip them.

Profiling appends one line per finished entry (flushed and fsync'd), so a killed run loses at most
the entry in flight; a partially written last line (no newline) is ignored on read and cut off
before the next append. The finished table is rewritten atomically with its final metadata.
"""

from __future__ import annotations

import csv
import io
import math
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nas._io import write_text_atomic
from nas.cost import DTYPE_BYTES
from nas.errors import ConfigError, NasError
from nas.inputs import as_error, check_output_dir, path_exists, read_text, regular_file
from nas.latency._catalog import (
    HOST_TARGETS,
    TABLES_HINT,
    is_shipped,
    shipped_dir,
    user_tables_dir,
    writable_tables_dir,
)
from nas.latency._keys import KEY_COLUMNS, MODEL_KIND, key_columns, key_macs, key_weight_bytes

SCHEMA_VERSION = 1
SOURCES: tuple[str, ...] = ("profiled", "imported", "roofline-fit")
VALUE_COLUMNS: tuple[str, ...] = ("macs", "weight_bytes", "latency_ms", "std_ms", "n")
COLUMNS: tuple[str, ...] = ("key", *KEY_COLUMNS, *VALUE_COLUMNS)
_STR_COLUMNS = {"key", "kind", "stride_on", "activation"}
_BOOL_COLUMNS = {"layer_scale", "residual"}
_FLOAT_COLUMNS = {"latency_ms", "std_ms"}
#: every other column holds a count: the key columns' sizes, MACs, weight bytes, runs
_INT_COLUMNS = set(COLUMNS) - _STR_COLUMNS - _BOOL_COLUMNS - _FLOAT_COLUMNS
#: Metadata keys in file order (others follow alphabetically).
META_ORDER: tuple[str, ...] = (
    "schema",
    "target",
    "source",
    "runtime",
    "dtype",
    "threads",
    "runs",
    "sessions",
    "warmup",
    "spaces",
    "machine",
    "fingerprint",
    "created",
    "updated",
    "loadavg",
    "guard",
    "guard_retries",
    "guard_ref_ms",
    "call_ms",
    "context_scale",
    "overhead_ms",
    "cache_mib",
    "cache_ms_per_mib",
    "device_model",
    "note",
)
TABLE_MAGIC = "# mnv4-nas latency table"
#: Numeric metadata: name → (lowest value, whether it is excluded, whether +inf is allowed). NaN never is.
META_RANGES: dict[str, tuple[float, bool, bool]] = {
    "call_ms": (0.0, False, False),
    "overhead_ms": (0.0, False, False),
    "context_scale": (0.0, True, False),
    "cache_mib": (0.0, False, True),  # inf (or absent): no cache term
    "cache_ms_per_mib": (0.0, False, False),
    "guard_ref_ms": (0.0, True, False),
}
#: Largest value of an integer column (shapes, MACs, bytes, run counts).
_MAX_INT = 2**62


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return str(v)


def make_row(key: str, dtype: str, latency_ms: float, std_ms: float = math.nan, n: int = 0) -> dict[str, Any]:
    """A full table row for ``key`` (typed columns derived from the key)."""
    row: dict[str, Any] = {"key": key, **key_columns(key)}
    if row["kind"] == MODEL_KIND:
        from nas.cost import count_macs, layer_costs
        from nas.spec import parse_arch

        arch = parse_arch(key)
        row["macs"] = count_macs(arch)
        row["weight_bytes"] = sum(c.weight_bytes(dtype) for c in layer_costs(arch))
    else:
        row["macs"] = key_macs(key)
        row["weight_bytes"] = key_weight_bytes(key, dtype)
    row.update(latency_ms=float(latency_ms), std_ms=float(std_ms), n=int(n))
    return row


@dataclass
class LatencyTable:
    """A latency table: metadata plus one row per key (see the module docstring)."""

    meta: dict[str, str]
    df: pd.DataFrame
    path: Path | None = field(default=None, compare=False)

    @property
    def target(self) -> str:
        """Target name."""
        return self.meta.get("target", "?")

    @property
    def source(self) -> str:
        """``profiled``, ``imported`` or ``roofline-fit``."""
        return self.meta.get("source", "?")

    @property
    def dtype(self) -> str:
        """Dtype of the measured/modelled inference (weight bytes of the cache term use it)."""
        return self.meta.get("dtype", "fp32")

    def meta_float(self, name: str, default: float = 0.0) -> float:
        """A numeric metadata value (``default`` when absent or empty); a value that is not a number, or
        out of its range (:data:`META_RANGES`: NaN, a negative overhead, an infinite scale), is a
        :class:`ConfigError` naming the table and the key."""
        return _meta_number(self.meta, name, default, str(self.path or f"table {self.target}"))

    @property
    def call_ms(self) -> float:
        """Per-call cost included in every entry's measurement (subtracted in predictions)."""
        return self.meta_float("call_ms")

    @property
    def overhead_ms(self) -> float:
        """Fixed cost of one inference, added once per architecture."""
        return self.meta_float("overhead_ms")

    @property
    def cache_mib(self) -> float:
        """Weight footprint (MiB) above which the cache term applies."""
        return self.meta_float("cache_mib", math.inf)

    @property
    def cache_ms_per_mib(self) -> float:
        """Extra milliseconds per MiB of weights above :attr:`cache_mib` (weights re-read from DRAM)."""
        return self.meta_float("cache_ms_per_mib")

    @property
    def spaces(self) -> list[str]:
        """Search spaces whose blocks the table covers (besides the zoo): shipped space names or space
        files; a relative file path that does not exist from here is looked up beside the table's folder
        (a shipped table names a file of the checkout it was profiled in, e.g. ``benchmarks/…toml``)."""
        return [_space_ref(s, self.path) for s in self.meta.get("spaces", "").split(",") if s]

    @cached_property
    def blocks(self) -> pd.DataFrame:
        """Layer rows (stem, blocks, heads), indexed by key."""
        return self.df[self.df["kind"] != MODEL_KIND].set_index("key")

    @cached_property
    def models(self) -> pd.DataFrame:
        """Whole-model calibration rows, indexed by key (the arch string)."""
        return self.df[self.df["kind"] == MODEL_KIND].set_index("key")

    @property
    def context_scale(self) -> float:
        """How much slower a layer runs inside a model than timed alone (1 unless calibrated)."""
        return self.meta_float("context_scale", 1.0)

    @cached_property
    def raw_ms(self) -> dict[str, float]:
        """Key → measured latency minus the per-call cost (> 0)."""
        lat = self.blocks["latency_ms"].to_numpy(dtype=np.float64) - self.call_ms
        # A layer faster than the call cost (a few µs) still costs something: never 0 ms.
        lat = np.maximum(lat, 1e-4)
        return dict(zip(self.blocks.index, lat.tolist()))

    @cached_property
    def entry_ms(self) -> dict[str, float]:
        """Key → the layer's contribution to a whole-model latency: ``context_scale · (measured − call_ms)``."""
        k = self.context_scale
        return {key: k * raw for key, raw in self.raw_ms.items()}

    @cached_property
    def weight_bytes(self) -> dict[str, int]:
        """Key → bytes of weights (in the table's dtype)."""
        return dict(zip(self.blocks.index, self.blocks["weight_bytes"].astype(np.int64).tolist()))

    def cache_ms(self, weight_bytes: np.ndarray | float) -> np.ndarray | float:
        """Cache term for whole-model weight footprints (bytes)."""
        if self.cache_ms_per_mib == 0 or math.isinf(self.cache_mib):
            return np.zeros_like(weight_bytes, dtype=np.float64) if isinstance(weight_bytes, np.ndarray) else 0.0
        excess = np.maximum(np.asarray(weight_bytes, dtype=np.float64) / 2**20 - self.cache_mib, 0.0)
        out = excess * self.cache_ms_per_mib
        return out if isinstance(weight_bytes, np.ndarray) else float(out)

    def __contains__(self, key: object) -> bool:
        return key in self.entry_ms

    def __len__(self) -> int:
        return len(self.blocks)


def _meta_number(meta: Mapping[str, str], name: str, default: float, source: str) -> float:
    raw = str(meta.get(name, "")).strip()
    if raw == "":
        return default
    try:
        v = float(raw) if len(raw) <= 40 else math.nan
    except ValueError:
        v = math.nan
    lo, lo_open, inf_ok = META_RANGES.get(name, (-math.inf, False, False))
    ok = not math.isnan(v) and (v > lo if lo_open else v >= lo) and (inf_ok or math.isfinite(v))
    if not ok:
        rel = ">" if lo_open else ">="
        raise ConfigError(
            f"{source}: metadata {name!r} must be a {'' if inf_ok else 'finite '}number {rel} {lo:g} (got {raw[:40]!r})"
        )
    return v


def _check_meta(meta: Mapping[str, str], source: str) -> None:
    """Every numeric metadata value in range, the dtype known, ``threads`` a positive integer."""
    for name in META_RANGES:
        _meta_number(meta, name, 0.0, source)
    dtype = meta.get("dtype", "fp32")
    if dtype not in DTYPE_BYTES:
        raise ConfigError(f"{source}: metadata 'dtype' must be one of {', '.join(DTYPE_BYTES)} (got {dtype[:40]!r})")
    threads = str(meta.get("threads", "")).strip()
    if threads and not (threads.isdigit() and 1 <= int(threads[:6]) <= 4096 and len(threads) <= 4):
        raise ConfigError(f"{source}: metadata 'threads' must be a positive integer (got {threads[:40]!r})")


def _check_numbers(df: pd.DataFrame, source: str, hint: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Integer columns hold non-negative integers (or nothing); ``std_ms`` is finite and >= 0 (or empty).
    Returns the parsed columns (NaN where empty), so that each is parsed once. ``hint``: columns parsed
    by :func:`_fast_numbers`, used where every cell is fine (else the strings are coerced to name the bad one)."""
    parsed: dict[str, np.ndarray] = {}
    for c in sorted(_INT_COLUMNS & set(df.columns)):
        if (num := _hinted(df, c, hint, _good_ints)) is None:
            num = _int_column(df, c, source)
        parsed[c] = num
    if "std_ms" in df.columns:
        if (num := _hinted(df, "std_ms", hint, _good_std)) is None:
            num = _std_column(df, source)
        parsed["std_ms"] = num
    return parsed


def _good_ints(num: np.ndarray) -> np.ndarray:
    return np.isfinite(num) & (num >= 0) & (num <= _MAX_INT) & (num == np.round(num))


def _good_std(num: np.ndarray) -> np.ndarray:
    return np.isfinite(num) & (num >= 0)


def _hinted(
    df: pd.DataFrame, c: str, hint: Mapping[str, np.ndarray], good: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray | None:
    """``hint[c]`` when its only NaNs are empty cells and every other value is ``good``, else None."""
    num = hint.get(c)
    if num is None or len(num) != len(df):
        return None
    empty = df[c].isna().to_numpy()
    nan = np.isnan(num)
    return num if np.array_equal(nan, empty) and good(num[~nan]).all() else None


def _int_column(df: pd.DataFrame, c: str, source: str) -> np.ndarray:
    raw = df[c]
    text = raw.astype(str)
    blank = raw.isna() | (text.str.strip() == "")
    num = pd.to_numeric(raw.where(text.str.len() <= 20), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~blank.to_numpy() & ~_good_ints(num)
    if bad.any():
        i = df.index[bad][0]
        raise ConfigError(
            f"{source}: {c} of {str(df.at[i, 'key'])[:80]!r} must be a non-negative integer (got {str(raw.at[i])[:40]!r})"
        )
    return num


def _std_column(df: pd.DataFrame, source: str) -> np.ndarray:
    raw = df["std_ms"]
    blank = raw.isna() | (raw.astype(str).str.strip().isin(("", "nan")))
    num = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~blank.to_numpy() & ~_good_std(num)
    if bad.any():
        i = df.index[bad][0]
        raise ConfigError(
            f"{source}: std_ms of {str(df.at[i, 'key'])[:80]!r} must be a finite number >= 0 "
            f"(got {str(raw.at[i])[:40]!r})"
        )
    return num


def _check_rows(df: pd.DataFrame, source: str, hint: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Check the rows; returns the parsed numeric columns (see :func:`_check_numbers`)."""
    missing = [c for c in ("key", "latency_ms") if c not in df.columns]
    if missing:
        raise ConfigError(f"{source}: missing column {missing[0]!r}")
    hint = hint or {}
    parsed = _check_numbers(df, source, hint)
    lat = _hinted(df, "latency_ms", hint, lambda v: np.isfinite(v) & (v > 0))
    if lat is None or np.isnan(lat).any():
        lat = pd.to_numeric(df["latency_ms"], errors="coerce").to_numpy(dtype=np.float64)
    bad = df.index[~np.isfinite(lat) | (lat <= 0)]
    if len(bad):
        i = bad[0]
        raise ConfigError(
            f"{source}: latency_ms of {df.at[i, 'key']!r} must be a positive number (got {df.at[i, 'latency_ms']!r})"
        )
    dup = df["key"][df["key"].duplicated()]
    if len(dup):
        raise ConfigError(f"{source}: duplicate key {dup.iloc[0]!r}")
    parsed["latency_ms"] = lat
    return parsed


def _coerce(df: pd.DataFrame, parsed: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """The table's columns in schema order and types (missing ones filled); ``parsed``: numeric columns
    already parsed by :func:`_check_rows`."""
    parsed = parsed or {}
    for c in COLUMNS:
        if c not in df.columns:
            df[c] = np.nan if c in ("std_ms",) else (0 if c in _INT_COLUMNS else "")
    df = df[list(COLUMNS)].copy()
    for c in _INT_COLUMNS:
        num = parsed[c] if c in parsed else pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=np.float64)
        df[c] = np.nan_to_num(num, nan=0.0).astype(np.int64)
    for c in _STR_COLUMNS:
        df[c] = df[c].fillna("").astype(str)
    for c in _BOOL_COLUMNS:
        df[c] = df[c].astype(str).str.lower().isin(("true", "1"))
    for c in sorted(_FLOAT_COLUMNS):
        df[c] = parsed[c] if c in parsed else pd.to_numeric(df[c], errors="coerce").astype(np.float64)
    return df.reset_index(drop=True)


def parse_table_text(text: str, source: str) -> tuple[dict[str, str], pd.DataFrame]:
    """Metadata and rows of table text. A last line without newline (a write cut short) is ignored."""
    meta, body = _split_table_text(text)
    if not body.strip():
        return meta, pd.DataFrame(columns=list(COLUMNS))
    return meta, read_csv_text(body, source)


def _split_table_text(text: str) -> tuple[dict[str, str], str]:
    """The ``# key: value`` metadata lines and the CSV text after them (a partial last line dropped)."""
    lines = text.split("\n")
    if lines and lines[-1] != "":
        lines = lines[:-1]  # partial last line
    meta: dict[str, str] = {}
    i = 0
    while i < len(lines) and lines[i].startswith("#"):
        line = lines[i][1:].strip()
        if ":" in line:
            k, v = line.split(":", 1)
            meta[k.strip()] = v.strip()
        i += 1
    return meta, "\n".join(lines[i:])


def _fast_numbers(body: str, columns: Iterable[str]) -> dict[str, np.ndarray]:
    """The numeric columns of table CSV text parsed by pandas' C reader, about 8x faster than coercing
    the strings (a table loads in half the time); empty when some cell does not parse as a number."""
    cols = [c for c in columns if c in _INT_COLUMNS or c in _FLOAT_COLUMNS]
    if not cols or not body.strip():
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fast = pd.read_csv(
                io.StringIO(body),
                usecols=cols,
                dtype=np.float64,
                keep_default_na=False,
                na_values=[""],
                index_col=False,
            )
    except (ValueError, TypeError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return {}
    return {c: fast[c].to_numpy(dtype=np.float64) for c in cols if c in fast.columns}


def read_csv_text(body: str, source: str, **kw: Any) -> pd.DataFrame:
    """CSV text as strings (empty cells NaN). A malformed CSV, or a row with more cells than the header
    (which pandas would otherwise read as an index, shifting every column), is a one-line ConfigError."""
    kw = {"dtype": str, "keep_default_na": False, "na_values": [""], **kw}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(io.StringIO(body), index_col=False, **kw)
    except pd.errors.ParserWarning:
        raise ConfigError(f"{source}: malformed CSV (a row has more cells than the header)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ConfigError(f"{source}: malformed CSV ({' '.join(str(exc).split())[:200]})") from None


def _space_ref(ref: str, table_path: Path | None) -> str:
    if table_path is None or not ref.endswith(".toml") or Path(ref).is_absolute() or Path(ref).exists():
        return ref
    beside = table_path.resolve().parent.parent / ref
    return str(beside) if beside.is_file() else ref


def read_table(path: str | Path) -> LatencyTable:
    """Read a table file (validates schema, keys unique, latencies positive)."""
    p = Path(path)
    with as_error(ConfigError):
        text = read_text(p, "latency table")
    meta, body = _split_table_text(text)
    df = read_csv_text(body, str(p)) if body.strip() else pd.DataFrame(columns=list(COLUMNS))
    schema = meta.get("schema", "")
    if schema != str(SCHEMA_VERSION):
        raise ConfigError(f"{p}: latency table schema must be {SCHEMA_VERSION} (got {schema[:40]!r})")
    if meta.get("source") not in SOURCES:
        raise ConfigError(f"{p}: source must be one of {', '.join(SOURCES)} (got {str(meta.get('source'))[:40]!r})")
    _check_meta(meta, str(p))
    df = _coerce(df, _check_rows(df, str(p), _fast_numbers(body, df.columns)))
    return LatencyTable(meta, df, p)


def _ordered_meta(meta: Mapping[str, str]) -> list[tuple[str, str]]:
    keys = [k for k in META_ORDER if k in meta] + sorted(k for k in meta if k not in META_ORDER)
    return [(k, str(meta[k])) for k in keys]


def header_text(meta: Mapping[str, str]) -> str:
    """The ``# name: value`` header block plus the CSV column line."""
    lines = [TABLE_MAGIC] + [f"# {k}: {v}" for k, v in _ordered_meta(meta)]
    return "\n".join(lines) + "\n" + ",".join(COLUMNS) + "\n"


def _row_line(row: Mapping[str, Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([_fmt(row.get(c, "")) for c in COLUMNS])
    return buf.getvalue()


def table_text(table: LatencyTable) -> str:
    """Full file text of a table (rows sorted: layers by kind/shape/key, then models)."""
    df = _coerce(table.df.copy())
    df["_model"] = df["kind"] == MODEL_KIND
    df = df.sort_values(["_model", "kind", "in_h", "in_c", "key"], kind="stable").drop(columns="_model")
    meta = {"schema": str(SCHEMA_VERSION), **table.meta}
    return header_text(meta) + "".join(_row_line(r) for r in df.to_dict("records"))


def write_table(table: LatencyTable, path: str | Path) -> Path:
    """Write a table atomically."""
    p = Path(path)
    write_text_atomic(p, table_text(table), TABLES_HINT)
    table.path = p
    return p


def new_table(meta: Mapping[str, str], rows: Iterable[Mapping[str, Any]]) -> LatencyTable:
    """A table from metadata and rows (validated like a file)."""
    df = pd.DataFrame(list(rows), columns=list(COLUMNS)) if rows else pd.DataFrame(columns=list(COLUMNS))
    _check_meta(meta, f"table {meta.get('target', '?')}")
    df = _coerce(df, _check_rows(df, f"table {meta.get('target', '?')}"))
    return LatencyTable({"schema": str(SCHEMA_VERSION), **meta}, df)


class TableAppender:
    """Appends rows to a table file one line at a time, durably (flush + fsync per row).

    Creating: writes the header. Reopening: cuts a partially written last line, keeps the rest.
    """

    def __init__(self, path: str | Path, meta: Mapping[str, str]):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists() or self.path.stat().st_size == 0:
                write_text_atomic(self.path, header_text({"schema": str(SCHEMA_VERSION), **meta}), TABLES_HINT)
            else:
                regular_file(self.path, "latency table")
                self._repair_tail()
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise NasError(f"cannot write {self.path} ({exc.strerror or type(exc).__name__}); {TABLES_HINT}") from None

    def _repair_tail(self) -> None:
        with open(self.path, "rb+") as fh:
            data = fh.read()
            if data and not data.endswith(b"\n"):
                fh.truncate(data.rfind(b"\n") + 1)

    def append(self, row: Mapping[str, Any]) -> None:
        """Write one row and make it durable before returning (a full disk is a one-line error; the
        partial line it may leave is cut when the table is reopened)."""
        try:
            self._fh.write(_row_line(row))
            self._fh.flush()
            os.fsync(self._fh.fileno())
        except OSError as exc:
            raise NasError(f"cannot write {self.path} ({exc.strerror or type(exc).__name__}); {TABLES_HINT}") from None

    def close(self) -> None:
        """Close the file."""
        self._fh.close()

    def __enter__(self) -> TableAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def shipped_tables_dir() -> Path | None:
    """The shipped ``latency_tables/`` folder (None when this install has none)."""
    return shipped_dir()


def write_dir(tables_dir: Path | None) -> Path:
    """Folder new tables are written to: the user's tables folder (never the shipped one), checked as
    an output folder before any work starts."""
    d = writable_tables_dir(tables_dir)
    with as_error(ConfigError):
        return check_output_dir(d, "latency tables folder")


def table_file(target: str) -> str:
    """File name of a target's table."""
    return f"{target}.csv"


def table_paths(target: str, tables_dir: Path | None = None) -> list[Path]:
    """The table files of ``target`` in merge order: the user's (first), the shipped one. A table path
    that exists but is not a regular file (a FIFO, a folder) is an error, not skipped."""
    out: list[Path] = []
    user = user_tables_dir(tables_dir)
    for d in (user, shipped_tables_dir()):
        if d is None or (out and is_shipped(d) and is_shipped(user)):
            continue
        p = Path(d) / table_file(target)
        if path_exists(p):
            with as_error(ConfigError):
                out.append(regular_file(p, "latency table"))
    return out


def find_table(target: str, tables_dir: Path | None = None) -> Path | None:
    """The first table file of ``target``: the user's, else the shipped one (None when neither exists)."""
    paths = table_paths(target, tables_dir)
    return paths[0] if paths else None


def build_hint(target: str, source: str | None = None) -> str:
    """The command that (re)builds a target's table."""
    if target in HOST_TARGETS or source == "profiled":
        return f"mnv4-nas latency profile --target {target} [--space S]"
    if source == "imported":
        return f"mnv4-nas latency bundle --target {target} --space S --output DIR, then latency import"
    return f"mnv4-nas latency build --target {target} [--space S]"


def merge_tables(user: LatencyTable, base: LatencyTable) -> LatencyTable:
    """``user`` with the layer entries of ``base`` it lacks: each added entry keeps its contribution to a
    model (``base``'s context scale times its measurement minus ``base``'s per-call cost), restated in
    ``user``'s terms so that the merged table predicts with ``user``'s per-inference terms. Whole-model
    rows and metadata are ``user``'s; ``meta["merged"]`` says how many entries came from where."""
    extra = [k for k in base.entry_ms if k not in user.entry_ms]
    if not extra:
        return user
    rows = base.blocks.loc[extra].reset_index()
    # contribution c = k_u · (lat' − call_u)  ⇔  lat' = c / k_u + call_u
    rows["latency_ms"] = [base.entry_ms[k] / user.context_scale + user.call_ms for k in extra]
    df = pd.concat([user.df, rows[list(COLUMNS)]], ignore_index=True)
    meta = dict(user.meta)
    where = base.path or base.target
    meta["merged"] = f"{len(user)} entries from {user.path or 'the user table'}, {len(extra)} from {where}"
    if base.source != user.source:
        meta["source"] = f"{user.source}+{base.source}"
    return LatencyTable(meta, df, user.path)


__all__ = [
    "COLUMNS",
    "SCHEMA_VERSION",
    "SOURCES",
    "LatencyTable",
    "TableAppender",
    "build_hint",
    "find_table",
    "merge_tables",
    "table_paths",
    "make_row",
    "new_table",
    "parse_table_text",
    "read_table",
    "table_text",
    "write_dir",
    "write_table",
]
