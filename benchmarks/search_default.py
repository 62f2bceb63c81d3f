"""Wall time of the README's main command on this machine: ``mnv4-nas search --target pixel8-edgetpu --budget 4ms``.

Runs the installed console script (a fresh process, imports included) ``--repeat`` times into temporary
folders and prints, per run, the whole wall time and the time to the first byte on the console (what a
user waits before anything appears), then the medians and the machine's load average before and after.
Goals (issue 26): median wall time ≤ 15 s, first output ≤ 3 s on 2 cores.

With ``--baseline-root DIR`` (another checkout, e.g. ``git worktree add /tmp/base d86201a``) each
repeat also runs that checkout's code (``PYTHONPATH=DIR``, same console script), interleaved with this
one, and the ratio of the medians is printed: a comparison that a busy machine slows down alike.

Usage: ``python benchmarks/search_default.py [--repeat 3] [--baseline-root DIR] [-- extra search arguments]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import selectors
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _child_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _run(cmd: list[str], root: str | None = None, cwd: str | None = None) -> tuple[float, float, str, str]:
    """(wall s, first output s, stdout, stderr) of one run (the code of checkout ``root`` if given);
    output read as it comes."""
    env = {**os.environ, "COLUMNS": "120"}
    if root is not None:
        env["PYTHONPATH"] = root
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd)
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


def _one(exe: str, extra: list[str], root: str | None) -> tuple[float, float, float, str]:
    """One search into a temporary folder: (wall s, first output s, CPU s of the process, the summary's
    score line). CPU seconds (user + system, every thread) move less than wall time with other load."""
    cpu0 = _child_cpu_s()
    with tempfile.TemporaryDirectory() as d:
        # The console run (no --json): first output is what a user sees first.
        cmd = [exe, "search", "--target", "pixel8-edgetpu", "--budget", "4ms", "--out", f"{d}/run", *extra]
        wall, first, _, _ = _run(cmd, root, cwd=d)  # no ./nas.toml: the built-in defaults
        summary = Path(d, "run", "summary.md")
        lines = summary.read_text().splitlines() if summary.is_file() else []
        best = next((ln for ln in lines if "score" in ln.lower()), "")
    return wall, first, _child_cpu_s() - cpu0, best.strip()[:90]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline-root", default=None, help="another checkout to time interleaved with this one")
    ap.add_argument("extra", nargs="*", help="extra arguments for mnv4-nas search")
    args = ap.parse_args()
    exe = shutil.which("mnv4-nas") or str(Path(sys.executable).with_name("mnv4-nas"))
    load_before = os.getloadavg()
    roots: dict[str, str | None] = {"this": None}
    if args.baseline_root:
        roots = {"baseline": str(Path(args.baseline_root).resolve()), "this": None}
    walls: dict[str, list[float]] = {k: [] for k in roots}
    firsts: dict[str, list[float]] = {k: [] for k in roots}
    cpus: dict[str, list[float]] = {k: [] for k in roots}
    for i in range(args.repeat):
        for name, root in roots.items():
            wall, first, cpu, best = _one(exe, args.extra, root)
            walls[name].append(wall)
            firsts[name].append(first)
            cpus[name].append(cpu)
            print(
                f"run {i + 1} {name:8s}: wall {wall:6.1f} s   first output {first:5.2f} s   CPU {cpu:6.1f} s   {best}",
                flush=True,
            )
    load_after = os.getloadavg()
    for name in roots:
        print(
            f"{name}: median wall time {statistics.median(walls[name]):.1f} s (goal <= 15 s); median first "
            f"output {statistics.median(firsts[name]):.2f} s (goal <= 3 s); median CPU {statistics.median(cpus[name]):.1f} s; "
            f"{len(walls[name])} run(s)"
        )
    if args.baseline_root:
        ratio = statistics.median(walls["baseline"]) / statistics.median(walls["this"])
        cpu_ratio = statistics.median(cpus["baseline"]) / statistics.median(cpus["this"])
        print(f"baseline / this: {ratio:.2f}x median wall, {cpu_ratio:.2f}x median CPU")
    print(f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
