"""STYLE.md rule 13, enforced: modules <= 500 lines, functions <= 80 lines (the RL step <= 150);
ARCHITECTURE.md invariant 4: data flows envs/tools -> rollout -> trainers, no upward imports."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "resrl_agents"
LONG_OK = {("recipe.py", "train_step"): 150}


def test_module_and_function_sizes():
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > 500:
            problems.append(f"{path.relative_to(PACKAGE)}: {len(text.splitlines())} lines > 500")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > LONG_OK.get((path.name, node.name), 80):
                    problems.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}: {n} lines")
    assert not problems, "\n".join(problems)


# subpackage -> subpackages it must never import (ARCHITECTURE.md, "One direction")
BELOW = {"envs": {"rollout", "trainers", "eval", "serving", "models"},
         "tools": {"rollout", "trainers", "eval", "serving", "models"},
         "rollout": {"trainers", "eval", "serving"}}


def _imported_modules(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_no_upward_imports():
    problems = []
    for sub, forbidden in BELOW.items():
        for path in sorted((PACKAGE / sub).rglob("*.py")):
            for mod in _imported_modules(ast.parse(path.read_text(encoding="utf-8"))):
                parts = mod.split(".")
                if parts[0] == "resrl_agents" and len(parts) > 1 and parts[1] in forbidden:
                    problems.append(f"{path.relative_to(PACKAGE)} imports {mod}")
    assert not problems, "\n".join(problems)
