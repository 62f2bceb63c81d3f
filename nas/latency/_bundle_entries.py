"""The entries of a device bundle, whatever its model format: the call probe first, then every layer key
and whole model the device can run, each exported into ``models/`` by the format's own function."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nas.latency._catalog import Device, unsupported_in
from nas.latency._keys import is_model_key, key_features
from nas.spec import ArchSpec

#: Key of the bundle's first entry: a trivial graph whose time is the runtime's per-call cost.
CALL_PROBE_KEY = "call_probe"
#: Input shape of the call probe.
PROBE_SHAPE: tuple[int, ...] = (1, 8, 4, 4)


def bundle_entries(
    device: Device,
    keys: Sequence[str],
    models: Sequence[ArchSpec],
    out: Path,
    suffix: str,
    export: Callable[[str, Path], tuple[int, ...]],
    progress: Callable[[int, int, str], None] | None,
) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
    """Export each entry with ``export(key, path) -> input shape`` (``key`` may be :data:`CALL_PROBE_KEY`)
    to ``out/models/eNNNNN{suffix}``; returns the manifest entries and the keys the device cannot run."""
    (out / "models").mkdir(parents=True, exist_ok=True)
    skipped = [k for k in keys if unsupported_in(device, key_features(k))]
    todo = [k for k in dict.fromkeys(keys) if k not in skipped]
    todo += [a.arch for a in dict.fromkeys(models) if not unsupported_in(device, key_features(a.arch))]
    entries: list[dict[str, Any]] = []
    all_keys = [CALL_PROBE_KEY, *todo]
    for i, key in enumerate(all_keys):
        if progress is not None:
            progress(i, len(all_keys), key)
        file = f"models/e{i:05d}{suffix}"
        shape = export(key, out / file)
        kind = "probe" if key == CALL_PROBE_KEY else "model" if is_model_key(key) else "layer"
        entries.append({"key": key, "file": file, "input_shape": list(shape), "kind": kind})
    if progress is not None:
        progress(len(all_keys), len(all_keys), "")
    return entries, tuple(skipped)


__all__ = ["CALL_PROBE_KEY", "PROBE_SHAPE", "bundle_entries"]
