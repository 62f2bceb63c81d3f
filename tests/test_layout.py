"""Structure the code keeps (issue 25's finish line): no imports of another package's private modules,
no function over ~80 lines in the search and supernet packages, no formatter opt-outs."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _sources(*folders: str) -> list[Path]:
    return sorted(p for f in folders for p in (ROOT / f).rglob("*.py"))


def test_no_package_imports_another_packages_private_modules():
    """``nas.a`` may import ``nas.a._x``; ``nas.b`` imports ``nas.a``'s public names only (``nas._x``,
    the shared helpers at the top, are for everyone)."""
    found = []
    for path in _sources("nas"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        own = parts[1] if len(parts) > 2 else None  # nas/<pkg>/... → pkg; nas/<module>.py → none
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                bits = name.split(".")
                if bits[0] == "nas" and len(bits) > 2 and bits[2].startswith("_") and bits[1] != own:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert not found, "\n".join(found)


def test_functions_in_search_and_supernet_fit_on_a_screen():
    long = []
    for path in _sources("nas/search", "nas/supernet"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno is not None:
                if (n := node.end_lineno - node.lineno + 1) > 80:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, "\n".join(long)


def test_the_formatter_decides_the_layout_everywhere():
    skips = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in _sources("nas", "tests", "benchmarks")
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if line.rstrip().endswith("# fmt" + ": skip")
    ]
    assert not skips, "remove the # fmt: skip (ruff format decides): " + ", ".join(skips)
