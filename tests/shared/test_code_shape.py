"""House rules that keep the core readable: short functions, and a core that names no vertical."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
MAX_FUNCTION_LINES = 60


def _functions(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


@pytest.mark.parametrize("path", sorted(SHARED.rglob("*.py")), ids=lambda p: p.name)
def test_no_function_in_the_core_runs_over_60_lines(path):
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines, line {node.lineno})"
        for node in _functions(path)
        if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{path.relative_to(SHARED.parent)}: {', '.join(long)}"


def test_the_core_names_no_vertical():
    names = ("customer_service", "finance_sentiment", "recommender", "medical_imaging")
    offenders = [
        f"{p.relative_to(SHARED.parent)} imports {name}"
        for p in SHARED.rglob("*.py")
        for name in names
        if f"import {name}" in p.read_text(encoding="utf-8")
        or f"from {name}" in p.read_text(encoding="utf-8")
    ]
    assert not offenders
