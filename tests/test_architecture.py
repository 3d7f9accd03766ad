"""The layering of docs/architecture.md, checked on the import graph of the tree (tests
aside): the import-linter contracts in pyproject.toml, and no import circle anywhere."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph(*CONFIG["root_packages"])


def _is_test(module: str) -> bool:
    return ".tests" in module or module.startswith("tests")


def test_the_layer_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_no_import_circle_between_modules() -> None:
    graph = _graph()
    modules = sorted(m for m in graph.modules if not _is_test(m))
    edges = {
        m: sorted(
            t
            for t in graph.find_modules_directly_imported_by(m)
            if not _is_test(t) and t != m and not m.startswith(t + ".")  # a package's parent
        )
        for m in modules
    }
    circles = [c for c in _strongly_connected(modules, edges) if len(c) > 1]
    assert not circles, circles


def test_the_platform_imports_neither_the_simulator_nor_the_worker() -> None:
    graph = _graph()
    platform = (
        "observability", "audit", "fleet", "archive", "access", "control", "ingest", "dashboard",
        "strata",
    )  # fmt: skip
    offending = [
        (m, t)
        for m in graph.modules
        if m.split(".")[0] in platform and not _is_test(m)
        for t in graph.find_modules_directly_imported_by(m)
        if t.split(".")[0] in ("devices", "decoder_worker", "launchers", "bench")
    ]
    assert not offending, offending


def _strongly_connected(nodes: list[str], edges: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (the graph has a few hundred modules)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            targets = edges.get(node, [])
            if i < len(targets):
                work.append((node, i + 1))
                nxt = targets[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                out.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return out
