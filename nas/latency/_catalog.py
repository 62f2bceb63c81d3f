"""The device catalog (``devices.toml``): one entry per latency target.

An entry says what the target is (class, dtype, runtime), which block features it cannot run, and
the parameters of its roofline device model together with the report of the fit that produced
them. The shipped catalog (``latency_tables/devices.toml``) is read-only package data; the user's
tables folder (:func:`user_tables_dir`) may hold a ``devices.toml`` of its own whose entries add
devices or replace shipped entries of the same name. ``mnv4-nas latency fit`` and
``mnv4-nas latency device add`` write only there (``mnv4-nas latency targets`` lists the merged catalog).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Any

from nas._io import write_text_atomic
from nas.cost import DTYPE_BYTES
from nas.errors import ConfigError, NasError
from nas.inputs import as_error, path_exists, read_text, regular_file, toml_loads

CATALOG_NAME = "devices.toml"
#: environment variable naming the user's tables folder
TABLES_ENV = "MNV4NAS_TABLES"
#: how a user makes latency tables writable (ends the one-line error of a failed write)
TABLES_HINT = f"choose a writable tables folder (--tables DIR, ${TABLES_ENV} or [latency] tables_dir in nas.toml)"
CATALOG_SCHEMA = 1
DEVICE_CLASSES: tuple[str, ...] = ("cpu", "dsp", "gpu", "ane", "edgetpu")
#: Block features a target may be unable to run (``unsupported`` in the catalog).
FEATURES: tuple[str, ...] = ("attention", "gelu")
MAX_FREE_PARAMS = 5


#: Upper bounds of device-model parameters (by name prefix): far above any device or fit (a fit to a tiny
#: host profile has reached eff_dwconv = 326), far below nonsense such as 1e308.
_MODEL_MAX = {"eff": 1e6, "peak": 1e12, "bandwidth": 1e12, "other": 1e6}


@dataclass(frozen=True)
class DeviceModel:
    """Roofline device model: per primitive op ``max(MACs / (peak · eff[class]), bytes / bandwidth)``
    plus ``op_overhead_ms``; per inference ``fixed_ms``. Efficiencies are relative to a dense conv
    (``eff_conv`` = 1 unless fitted); element-wise ops and pooling are pure memory traffic."""

    peak_gmacs: float = 100.0
    bandwidth_gbs: float = 10.0
    eff_conv: float = 1.0
    eff_pwconv: float = 1.0
    eff_dwconv: float = 0.3
    eff_matmul: float = 0.2
    eff_linear: float = 1.0
    op_overhead_ms: float = 0.0
    fixed_ms: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"device model: {f.name} must be a finite number (got {v!r})")
            object.__setattr__(self, f.name, float(v))
            lo_ok = v >= 0 if f.name.endswith("_ms") else v > 0
            if not lo_ok:
                raise ConfigError(f"device model: {f.name} must be {'>= 0' if f.name.endswith('_ms') else '> 0'}")
            hi = _MODEL_MAX.get(f.name.split("_")[0], _MODEL_MAX["other"])
            if v > hi:
                raise ConfigError(f"device model: {f.name} must be at most {hi:g} (got {v:g})")

    @property
    def ridge_point(self) -> float:
        """Peak MACs per byte of memory traffic (MACs/B) at which a dense conv becomes compute-bound."""
        return self.peak_gmacs / self.bandwidth_gbs


PARAM_NAMES: tuple[str, ...] = tuple(f.name for f in fields(DeviceModel))


@dataclass(frozen=True)
class FitReport:
    """How the device-model parameters were obtained: data, number of points, errors."""

    data: str  # "published" | "table:<file>" | "models:<file>"
    n: int
    mape_pct: float
    loo_mape_pct: float | None
    fitted: str  # ISO date

    def as_dict(self) -> dict[str, Any]:
        d = {"data": self.data, "n": self.n, "mape_pct": round(self.mape_pct, 2)}
        if self.loo_mape_pct is not None:
            d["loo_mape_pct"] = round(self.loo_mape_pct, 2)
        d["fitted"] = self.fitted
        return d


@dataclass(frozen=True)
class Device:
    """One latency target of the catalog."""

    name: str
    device_class: str
    dtype: str
    runtime: str
    description: str = ""
    unsupported: tuple[str, ...] = ()
    ridge_point_ref: float | None = None  # published fitted ridge point (paper Tab. 16), a fit prior
    free: tuple[str, ...] = ("peak_gmacs", "bandwidth_gbs", "fixed_ms")
    model: DeviceModel = field(default_factory=DeviceModel)
    fit: FitReport | None = None


def unsupported_in(device: Device, features: set[str]) -> list[str]:
    """The features in ``features`` that ``device`` cannot run."""
    return [f for f in device.unsupported if f in features]


HOST_TARGET = "host-cpu"
#: the paper's CPU runtime on this machine: LiteRT (TFLite) with XNNPACK, INT8
TFLITE_HOST_TARGET = "host-cpu-tflite-int8"
#: targets measured on the machine running mnv4-nas
HOST_TARGETS: tuple[str, ...] = (HOST_TARGET, TFLITE_HOST_TARGET)
_ENTRY_KEYS = {"class", "dtype", "runtime", "description", "unsupported", "ridge_point_ref", "free", "model", "fit"}
_FIT_KEYS = {"data", "n", "mape_pct", "loo_mape_pct", "fitted"}


def _check_name(name: str, source: str) -> None:
    ok = name and all(ch.isalnum() or ch in "-_." for ch in name) and name[0].isalnum()
    if not ok:
        raise ConfigError(f"{source}: device name {name!r} must be letters, digits, '-', '_' or '.'")


def _entry(name: str, d: Any, source: str) -> Device:
    where = f"{source}: [devices.{name}]"
    if not isinstance(d, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(d) - _ENTRY_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(_ENTRY_KEYS))})")
    for key in ("class", "dtype", "runtime"):
        if not isinstance(d.get(key), str):
            raise ConfigError(f"{where}: key {key!r} must be a string")
    if d["class"] not in DEVICE_CLASSES:
        raise ConfigError(f"{where}: class must be one of {', '.join(DEVICE_CLASSES)} (got {d['class']!r})")
    if d["dtype"] not in DTYPE_BYTES:
        raise ConfigError(f"{where}: dtype must be one of {', '.join(DTYPE_BYTES)} (got {d['dtype']!r})")
    unsupported = d.get("unsupported", [])
    if not isinstance(unsupported, list) or any(u not in FEATURES for u in unsupported):
        raise ConfigError(f"{where}: unsupported must be a list drawn from {', '.join(FEATURES)} (got {unsupported!r})")
    free = d.get("free", list(Device.free))
    if not isinstance(free, list) or any(f not in PARAM_NAMES for f in free) or len(set(free)) != len(free):
        raise ConfigError(f"{where}: free must be a list of distinct names from {', '.join(PARAM_NAMES)}")
    if len(free) > MAX_FREE_PARAMS:
        raise ConfigError(f"{where}: at most {MAX_FREE_PARAMS} free parameters (got {len(free)})")
    ref = d.get("ridge_point_ref")
    if ref is not None and (isinstance(ref, bool) or not isinstance(ref, (int, float)) or not 0 < ref < math.inf):
        raise ConfigError(f"{where}: ridge_point_ref must be a finite positive number (got {ref!r})")
    model_d = d.get("model", {})
    if not isinstance(model_d, dict):
        raise ConfigError(f"{where}.model must be a table")
    bad = sorted(set(model_d) - set(PARAM_NAMES))
    if bad:
        raise ConfigError(f"{where}.model: unknown key {bad[0]!r} (allowed: {', '.join(PARAM_NAMES)})")
    try:
        model = DeviceModel(**model_d)
    except ConfigError as exc:
        raise ConfigError(f"{where}.{exc}") from None
    fit = _fit(d["fit"], f"{where}.fit") if "fit" in d else None
    return Device(
        name=name,
        device_class=d["class"],
        dtype=d["dtype"],
        runtime=d["runtime"],
        description=str(d.get("description", "")),
        unsupported=tuple(unsupported),
        ridge_point_ref=None if ref is None else float(ref),
        free=tuple(free),
        model=model,
        fit=fit,
    )


def _fit(fd: Any, where: str) -> FitReport:
    """The ``[.fit]`` report: ``n`` a non-negative integer, the errors finite non-negative numbers."""
    if not isinstance(fd, dict) or set(fd) - _FIT_KEYS or not {"data", "n", "mape_pct", "fitted"} <= set(fd):
        raise ConfigError(f"{where} must hold data, n, mape_pct, fitted (and optionally loo_mape_pct)")
    n = fd["n"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(f"{where}: n must be a non-negative integer (got {n!r})")
    for key in ("mape_pct", "loo_mape_pct"):
        v = fd.get(key, 0.0)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < math.inf:
            raise ConfigError(f"{where}: {key} must be a finite number >= 0 (got {v!r})")
    if not isinstance(fd["data"], str) or not isinstance(fd["fitted"], (str, date)):
        raise ConfigError(f"{where}: data and fitted must be strings (got {fd['data']!r}, {fd['fitted']!r})")
    loo = fd.get("loo_mape_pct")
    return FitReport(fd["data"], n, float(fd["mape_pct"]), None if loo is None else float(loo), str(fd["fitted"]))


def parse_catalog(text: str, source: str) -> dict[str, Device]:
    """Parse catalog TOML text; errors name ``source`` and the offending key."""
    with as_error(ConfigError):
        data = toml_loads(text, source)
    unknown = sorted(set(data) - {"schema", "devices"})
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key {unknown[0]!r} (allowed: schema, devices)")
    if data.get("schema", CATALOG_SCHEMA) != CATALOG_SCHEMA:
        raise ConfigError(f"{source}: schema must be {CATALOG_SCHEMA} (got {data.get('schema')!r})")
    devices = data.get("devices", {})
    if not isinstance(devices, dict) or not devices:
        raise ConfigError(f"{source}: no [devices.<name>] entries")
    out: dict[str, Device] = {}
    for name, d in devices.items():
        _check_name(name, source)
        out[name] = _entry(name, d, source)
    return out


def _toml_scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        text = f"{v:.6g}"
        return text if any(ch in text for ch in ".en") else text + ".0"
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_scalar(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


_HEADER = """\
# mnv4-nas device catalog: one [devices.<name>] entry per latency target.
#
# class        cpu | dsp | gpu | ane | edgetpu
# dtype        int8 | fp16 | fp32 (bytes per weight/activation in the roofline memory term)
# runtime      what the latencies were measured with
# unsupported  block features the target cannot run: "attention", "gelu"
# ridge_point_ref  the paper's fitted ridge point (MACs/byte, Tab. 16): a prior of the fit
# free         the device-model parameters `mnv4-nas latency fit` fits (at most 5)
# [.model]     roofline device model; [.fit] how it was fitted (data, points, fit and leave-one-out MAPE)
#
# The [.model] and [.fit] tables are written by `mnv4-nas latency fit`; add a device with
# `mnv4-nas latency device add NAME --class … --dtype … --runtime …` (or an entry by hand: class, dtype,
# runtime). A user's devices.toml holds only the user's entries; they add to the shipped catalog.
"""


def dump_catalog(devices: dict[str, Device]) -> str:
    """TOML text of a catalog (deterministic; round-trips through :func:`parse_catalog`)."""
    lines = [_HEADER, f"schema = {CATALOG_SCHEMA}", ""]
    for dev in devices.values():
        lines.append(f"[devices.{dev.name}]")
        entry: dict[str, Any] = {
            "class": dev.device_class,
            "dtype": dev.dtype,
            "runtime": dev.runtime,
            "description": dev.description,
            "unsupported": list(dev.unsupported),
        }
        if dev.ridge_point_ref is not None:
            entry["ridge_point_ref"] = dev.ridge_point_ref
        entry["free"] = list(dev.free)
        lines += [f"{k} = {_toml_scalar(v)}" for k, v in entry.items()]
        lines.append("")
        lines.append(f"[devices.{dev.name}.model]")
        lines += [f"{name} = {_toml_scalar(getattr(dev.model, name))}" for name in PARAM_NAMES]
        lines.append("")
        if dev.fit is not None:
            lines.append(f"[devices.{dev.name}.fit]")
            lines += [f"{k} = {_toml_scalar(v)}" for k, v in dev.fit.as_dict().items()]
            lines.append("")
    return "\n".join(lines)


def check_tables_dir(tables_dir: Path) -> Path:
    """``tables_dir`` unless it exists as something other than a folder (a ConfigError naming it)."""
    if path_exists(tables_dir) and not Path(tables_dir).is_dir():
        raise ConfigError(f"[latency] tables_dir {tables_dir}: exists and is not a folder")
    return tables_dir


def default_tables_dir() -> Path:
    """The user's tables folder when none is configured: ``$MNV4NAS_TABLES``, else
    ``$XDG_DATA_HOME/mnv4-nas/latency_tables`` (``~/.local/share/mnv4-nas/latency_tables``)."""
    env = os.environ.get(TABLES_ENV, "")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME", "") or Path.home() / ".local" / "share"
    return Path(base) / "mnv4-nas" / "latency_tables"


def user_tables_dir(tables_dir: Path | None = None) -> Path:
    """The folder of the user's tables and catalog: ``tables_dir`` if given, else :func:`default_tables_dir`."""
    return check_tables_dir(Path(tables_dir).expanduser() if tables_dir is not None else default_tables_dir())


def shipped_dir() -> Path | None:
    """The shipped ``latency_tables/`` folder (None when this install has none)."""
    from nas.resources import data_dir

    try:
        return data_dir("latency_tables")
    except NasError:
        return None


def is_shipped(folder: Path) -> bool:
    """Whether ``folder`` is (or lies inside) the shipped, read-only ``latency_tables/`` folder."""
    shipped = shipped_dir()
    if shipped is None:
        return False
    try:
        return Path(folder).resolve().is_relative_to(shipped.resolve())
    except OSError:
        return False


def writable_tables_dir(tables_dir: Path | None = None) -> Path:
    """The user's tables folder for writing; the shipped folder is refused (it is read-only package data)."""
    d = user_tables_dir(tables_dir)
    if is_shipped(d):
        raise ConfigError(
            f"{d}: the shipped latency tables are read-only package data; {TABLES_HINT} outside the package"
        )
    return d


def catalog_paths(tables_dir: Path | None) -> list[Path]:
    """Catalog files in merge order: the user's (when it exists, first) and the shipped one."""
    paths: list[Path] = []
    user = user_tables_dir(tables_dir) / CATALOG_NAME
    if path_exists(user):  # a FIFO or a folder there is refused by _read_catalog, never skipped
        paths.append(user)
    shipped = shipped_dir()
    if shipped is not None and (not paths or not is_shipped(user.parent)):
        paths.append(shipped / CATALOG_NAME)
    return paths


def _read_catalog(path: Path) -> dict[str, Device]:
    with as_error(ConfigError):
        text = read_text(regular_file(path, "device catalog"), "device catalog", 2**20)
    return parse_catalog(text, str(path))


def load_catalog(tables_dir: Path | None = None) -> dict[str, Device]:
    """The catalog: the shipped entries, each replaced by the user's entry of the same name, then the
    user's own devices (``<tables_dir>/devices.toml``)."""
    paths = catalog_paths(tables_dir)
    if not paths:
        raise NasError("no device catalog found (latency_tables/devices.toml); reinstall mnv4-nas")
    merged: dict[str, Device] = {}
    for p in reversed(paths):
        merged.update(_read_catalog(p))
    return merged


def get_device(name: str, tables_dir: Path | None = None) -> Device:
    """One catalog entry; an unknown name is a :class:`NasError` listing the known targets."""
    catalog = load_catalog(tables_dir)
    try:
        return catalog[name]
    except KeyError:
        raise NasError(
            f"unknown target {name!r} (known: {', '.join(catalog)}); add it with "
            f"`mnv4-nas latency device add {name} --class … --dtype … --runtime …` (a [devices.{name}] entry)"
        ) from None


def save_device(device: Device, tables_dir: Path | None = None) -> Path:
    """Replace (or add) one entry of the user's catalog, written atomically (the shipped one is never
    written); returns the file written."""
    target = writable_tables_dir(tables_dir) / CATALOG_NAME
    own = _read_catalog(target) if path_exists(target) else {}
    own[device.name] = device
    write_text_atomic(target, dump_catalog(own), TABLES_HINT)
    return target


def add_device(
    name: str,
    device_class: str,
    dtype: str,
    runtime: str,
    tables_dir: Path | None = None,
    *,
    description: str = "",
    unsupported: list[str] | tuple[str, ...] = (),
    like: str | None = None,
) -> tuple[Device, Path]:
    """Add a device to the user's catalog; its device model starts from ``like``'s (default: the first
    catalog entry of the same class and dtype, else of the same class). Checked like a catalog entry;
    an existing name is refused."""
    catalog = load_catalog(tables_dir)
    _check_name(name, "device add")
    if name in catalog:
        raise ConfigError(f"device add: target {name!r} exists already (see `mnv4-nas latency targets`)")
    if like is not None and like not in catalog:
        raise ConfigError(f"device add: --like {like!r} is not a known target (known: {', '.join(catalog)})")
    entry = {
        "class": device_class,
        "dtype": dtype,
        "runtime": runtime,
        "description": description,
        "unsupported": list(unsupported),
    }
    dev = _entry(name, entry, "device add")  # validates class, dtype, unsupported
    same = [d for d in catalog.values() if d.device_class == device_class]
    base = catalog[like] if like else next((d for d in same if d.dtype == dtype), same[0] if same else None)
    if base is not None:
        dev = Device(
            dev.name,
            dev.device_class,
            dev.dtype,
            dev.runtime,
            dev.description,
            dev.unsupported,
            base.ridge_point_ref,
            base.free,
            base.model,
        )
    return dev, save_device(dev, tables_dir)


__all__ = [
    "add_device",
    "CATALOG_NAME",
    "DEVICE_CLASSES",
    "TABLES_ENV",
    "FEATURES",
    "HOST_TARGET",
    "HOST_TARGETS",
    "PARAM_NAMES",
    "TFLITE_HOST_TARGET",
    "check_tables_dir",
    "default_tables_dir",
    "is_shipped",
    "shipped_dir",
    "user_tables_dir",
    "writable_tables_dir",
    "Device",
    "DeviceModel",
    "FitReport",
    "dump_catalog",
    "get_device",
    "load_catalog",
    "parse_catalog",
    "save_device",
    "unsupported_in",
]
