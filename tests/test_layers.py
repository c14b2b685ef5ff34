"""Layers point down and nothing imports in a circle (read from the source with `ast`, so a
function-level import counts as much as a top-level one; `if TYPE_CHECKING:` blocks, which
never run, do not count).

    space_data  ←  pipelines, space_models   (the `space` group in pipelines/cli.py names the
                                              space_models commands by string: the top)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("space_data", "pipelines", "space_models")
FORBIDDEN = {
    "space_data": ("ray", "pipelines", "space_models"),
    "space_models": ("pipelines", "ray"),
    "pipelines": ("space_models",),
}
ENTRY_POINT = "pipelines.cli"  # names every command module by string, imports none statically


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module `name` imports (absolute names; `from a import b` counts a.b if a module)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    type_only = {
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for n in ast.walk(block)
    }
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES)
    return found


def _strings(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and type(n.value) is str}


# a package's `from pkg import submodule` in its own __init__ names itself: not an edge
GRAPH = {
    name: {m for m in _imports(name, path) if m in MODULES and m != name}
    for name, path in MODULES.items()
}


def _cycle() -> list[str] | None:
    """One import cycle among the project's modules, or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(GRAPH):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_graph_sees_known_edges() -> None:
    # guards the test itself: an import parser that found nothing would pass everything below
    assert "space_data.config" in GRAPH["space_data.params"]
    assert "space_models.data" in GRAPH["space_models.train"]
    assert "pipelines.report_data" in GRAPH["pipelines.report_plots"]


def test_no_import_cycles() -> None:
    assert _cycle() is None, " → ".join(_cycle() or [])


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layers_point_down(package: str) -> None:
    bad = []
    for name, path in MODULES.items():
        if name.split(".")[0] != package or name == ENTRY_POINT:
            continue
        for imported in _imports(name, path):
            if imported.split(".")[0] in FORBIDDEN[package]:
                bad.append(f"{name} imports {imported}")
        # importlib by string is an import too
        for text in _strings(path):
            dotted = "." in text and text.replace(".", "").replace("_", "").isalnum()
            if dotted and text.split(".")[0] in FORBIDDEN[package]:
                bad.append(f"{name} names {text!r}")
    assert not bad, bad
