"""What this host is, read from the system: its CPU model, its last-level cache, the installed
versions of the runtimes. Nothing of ours below it."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

#: Assumed last-level cache when the host does not report one (MiB).
DEFAULT_CACHE_MIB = 32.0


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``, else what :mod:`platform` knows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    name = " ".join(line.split(":", 1)[1].split())
                    if name:
                        return name[:120]
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def host_cache_mib() -> float:
    """Size of this host's last-level cache (MiB) from sysfs, else :data:`DEFAULT_CACHE_MIB`."""
    best = 0.0
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    try:
        for idx in base.glob("index*"):
            if (idx / "type").read_text().strip() == "Instruction":
                continue
            text = (idx / "size").read_text().strip().upper()
            mult = {"K": 1 / 1024, "M": 1.0, "G": 1024.0}.get(text[-1:], 1 / 2**20)
            value = float(text[:-1]) if text[-1:] in "KMG" else float(text)
            best = max(best, value * mult)
    except (OSError, ValueError):
        pass
    return best or DEFAULT_CACHE_MIB


def package_version(name: str) -> str:
    """Installed version of a distribution, or ``not installed`` (without importing it)."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


__all__ = ["DEFAULT_CACHE_MIB", "cpu_model", "host_cache_mib", "package_version"]
