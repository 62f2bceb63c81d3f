"""CLI helpers: run the entry point in-process (fast) or as the installed console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

import pytest

from nas.cli import main


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


@pytest.fixture
def cli(capsys):
    """Call ``mnv4-nas`` in-process; returns exit code, stdout and stderr."""

    def run(*args: str) -> Result:
        code = main(list(args))
        cap = capsys.readouterr()
        return Result(code, cap.out, cap.err)

    return run


@pytest.fixture
def console_script():
    """Run the installed ``mnv4-nas`` console script in a subprocess."""
    exe = shutil.which("mnv4-nas") or os.path.join(os.path.dirname(sys.executable), "mnv4-nas")

    def run(*args: str, cwd: str | None = None) -> Result:
        p = subprocess.run([exe, *args], capture_output=True, text=True, cwd=cwd, timeout=300)
        return Result(p.returncode, p.stdout, p.stderr)

    return run
