"""The package layering: jobfleet/ is the bottom floor; components never import upward; no cycles."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("jobfleet", "worker", "autoscaler", "dashboard", "observability", "infra")
APP = ("jobfleet", "worker", "autoscaler", "dashboard", "observability")


def _imports(path: Path) -> set[str]:
    """Top-level package names imported anywhere in ``path`` (also inside functions)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def _graph() -> dict[str, dict[str, set[str]]]:
    """package -> imported package -> files that import it."""
    graph: dict[str, dict[str, set[str]]] = {p: {} for p in PACKAGES}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for name in _imports(path) & set(PACKAGES) - {package}:
                graph[package].setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return graph


def test_jobfleet_imports_no_component_except_its_command_dispatcher() -> None:
    upward = {name: files - {"jobfleet/cli.py"} for name, files in _graph()["jobfleet"].items()}
    assert not {name: files for name, files in upward.items() if files}, upward


def test_the_dispatcher_reaches_up_only_lazily() -> None:
    tree = ast.parse((ROOT / "jobfleet" / "cli.py").read_text())
    top_level = {node.module.split(".")[0] for node in tree.body if isinstance(node, ast.ImportFrom) and node.module}
    assert not top_level & (set(APP) - {"jobfleet"})


def test_no_cycles_between_packages() -> None:
    graph = {p: set(deps) for p, deps in _graph().items()}
    graph["jobfleet"].clear()  # the dispatcher's lazy imports are the one sanctioned exception
    seen: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        seen[node] = 1
        for dep in graph[node]:
            assert seen.get(dep) != 1, f"import cycle: {' -> '.join([*stack, node, dep])}"
            if dep not in seen:
                visit(dep, [*stack, node])
        seen[node] = 2

    for package in graph:
        if package not in seen:
            visit(package, [])
