"""The house: no two modules of the package import each other, at load time or inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "agegender_cli"


def _imports() -> dict[str, set[str]]:
    """Each module's agegender_cli modules it imports anywhere in its text (`from pkg import sub` names sub)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    imported: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("agegender_cli"):
                subs = {f"{node.module}.{a.name}" for a in node.names} & modules.keys()
                if len(subs) < len(node.names) and node.module in modules:
                    imported[name].add(node.module)
                imported[name] |= subs
            elif isinstance(node, ast.Import):
                imported[name] |= {a.name for a in node.names} & modules.keys()
        imported[name].discard(name)
    return imported


def test_no_two_modules_import_each_other():
    imported = _imports()
    pairs = sorted({tuple(sorted((a, b))) for a, targets in imported.items() for b in targets
                    if a in imported.get(b, ())})
    assert pairs == []


def test_the_checker_sees_an_import_inside_a_function():
    imported = _imports()
    assert "agegender_cli.evaluation.report_html" in imported["agegender_cli.service.evaluate"]  # in a function
    assert "agegender_cli.archs.fused.predictor" in imported["agegender_cli.archs.fused.fit"]
