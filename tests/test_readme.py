"""The README's two set-up commands exist, and CI runs the test one verbatim."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    setup = text.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", setup, flags=re.S)]


def test_readme_has_exactly_two_setup_commands():
    cmds = _commands()
    assert len(cmds) == 2
    assert all(c.count("\n") == 0 for c in cmds)
    assert "mnv4-nas" in cmds[0] and "pytest" in cmds[1]


def test_ci_runs_the_readme_test_command():
    assert _commands()[1] in (ROOT / ".ci" / "run").read_text()


def _readme_cli_lines() -> list[str]:
    """Every ``mnv4-nas …`` command line of the README's code blocks (comments cut)."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    lines = [line.split("  #")[0].strip() for b in blocks for line in b.splitlines()]
    return [line for line in lines if line.startswith("mnv4-nas ")]


def test_readme_commands_and_options_exist():
    """Each README command names a real (sub)command, and each --option it uses is one of that command's."""
    import shlex

    import typer

    from nas.cli import app

    root = typer.main.get_command(app)
    lines = _readme_cli_lines()
    assert len(lines) > 30
    for line in lines:
        cmd, words = root, shlex.split(line.replace("|", " "))[1:]
        while words and words[0] in getattr(cmd, "commands", {}):
            cmd = cmd.commands[words.pop(0)]
        assert not getattr(cmd, "commands", None), line
        opts = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
        opts |= {o for p in root.params for o in p.opts}  # root options (--tables, --config) before the command
        used = {w.split("=")[0] for w in words if w.startswith("--")}
        assert used <= opts, f"{line}: {sorted(used - opts)}"
