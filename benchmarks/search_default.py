"""Wall time of the README's main command on this machine: ``mnv4-nas search --target pixel8-edgetpu --budget 4ms``.

Runs the installed console script (a fresh process, imports included) ``--repeat`` times into temporary
folders and prints, per run, the whole wall time and the time to the first byte on the console (what a
user waits before anything appears), then the medians and the machine's load average before and after.
Goals (issue 26): median wall time ≤ 15 s, first output ≤ 3 s on 2 cores.

Usage: ``python benchmarks/search_default.py [--repeat 3] [-- extra search arguments]``.
"""

from __future__ import annotations

import argparse
import os
import selectors
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _run(cmd: list[str]) -> tuple[float, float, str, str]:
    """(wall s, first output s, stdout, stderr) of one run; output read as it comes."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "COLUMNS": "120"})
    sel = selectors.DefaultSelector()
    assert proc.stdout is not None and proc.stderr is not None
    sel.register(proc.stdout, selectors.EVENT_READ, "out")
    sel.register(proc.stderr, selectors.EVENT_READ, "err")
    chunks: dict[str, list[bytes]] = {"out": [], "err": []}
    first = float("nan")
    while sel.get_map():
        for key, _ in sel.select():
            data = key.fileobj.read1(65536)  # type: ignore[union-attr]
            if not data:
                sel.unregister(key.fileobj)
                continue
            if first != first:  # nan: nothing seen yet
                first = time.perf_counter() - t0
            chunks[key.data].append(data)
    proc.wait()
    wall = time.perf_counter() - t0
    out, err = (b"".join(chunks[k]).decode(errors="replace") for k in ("out", "err"))
    if proc.returncode:
        sys.exit(f"exit {proc.returncode}: {err.strip()[-500:]}")
    return wall, first, out, err


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("extra", nargs="*", help="extra arguments for mnv4-nas search")
    args = ap.parse_args()
    exe = shutil.which("mnv4-nas") or str(Path(sys.executable).with_name("mnv4-nas"))
    load_before = os.getloadavg()
    walls, firsts = [], []
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory() as d:
            # The console run (no --json): first output is what a user sees first.
            cmd = [exe, "search", "--target", "pixel8-edgetpu", "--budget", "4ms", "--out", f"{d}/run", *args.extra]
            wall, first, _, _ = _run(cmd)
            best = next(
                (ln for ln in Path(d, "run", "summary.md").read_text().splitlines() if "score" in ln.lower()), ""
            )
        walls.append(wall)
        firsts.append(first)
        print(f"run {i + 1}: wall {wall:6.1f} s   first output {first:5.2f} s   {best.strip()[:90]}")
    load_after = os.getloadavg()
    print(f"median wall time: {statistics.median(walls):.1f} s (goal <= 15 s); median first output: "
          f"{statistics.median(firsts):.2f} s (goal <= 3 s); {len(walls)} run(s)")  # fmt: skip
    print(f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
