"""Wall time of the README's main command on this machine: ``mnv4-nas search --target pixel8-edgetpu --budget 4ms``.

Runs the installed console script (a fresh process, imports included) ``--repeat`` times into temporary
folders and prints each wall time and the median. Usage: ``python benchmarks/search_default.py [--repeat 1]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("extra", nargs="*", help="extra arguments for mnv4-nas search")
    args = ap.parse_args()
    exe = shutil.which("mnv4-nas") or str(Path(sys.executable).with_name("mnv4-nas"))
    times = []
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory() as d:
            cmd = [exe, "search", "--target", "pixel8-edgetpu", "--budget", "4ms", "--out", f"{d}/run", "--json", *args.extra]
            t0 = time.perf_counter()
            r = subprocess.run(cmd, capture_output=True, text=True)
            dt = time.perf_counter() - t0
            if r.returncode:
                sys.exit(r.stderr)
            res = json.loads(r.stdout)
            times.append(dt)
            print(f"run {i + 1}: {dt:6.1f} s  score {res['score']:.4g} ({res['estimator']})  "
                  f"pixel8-edgetpu {res['latency_ms']['pixel8-edgetpu']:.3f} ms")  # fmt: skip
    print(f"median wall time: {statistics.median(times):.1f} s over {len(times)} run(s) (goal <= 120 s)")


if __name__ == "__main__":
    main()
