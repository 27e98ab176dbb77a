"""The server's layout holds: rooms by concern, no import circles, no module too long.

docs/development.md describes the rooms; these tests keep the code to them. Imports under
`if TYPE_CHECKING:` are left out: they are for type hints and never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

SERVER = ROOT / "server" / "sdksign" / "server"
SOURCES = [SERVER, ROOT / "client" / "sdksign" / "client", ROOT / "client" / "sdksign" / "cli"]
MAX_MODULE_LINES = 600
MAX_TOP_MODULES = 8
MIN_ROOMS = 4

# What each room may import of the others (the rooms' docstrings say the same in words).
ALLOWED = {
    "errors": set(),
    "zoom": set(),
    "observe": {"zoom", "errors"},
    "access": {"zoom", "errors", "observe"},
    "config": {"zoom", "errors", "access", "observe"},
    "tokens": {"zoom", "errors", "access", "config"},
    "zoomapi": {"zoom", "errors", "observe", "config"},
    "runtime": {"zoom", "errors", "access", "config", "observe", "tokens", "zoomapi"},
}
# Rooms whose logic knows nothing of gRPC.
NO_GRPC = {"zoom", "errors", "access", "config", "tokens", "zoomapi"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT / path.relative_to(ROOT).parts[0]).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except those under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and is_type_checking(node):
            yield from (n for child in node.orelse for n in runtime_imports_of(child))
            continue
        yield from runtime_imports_of(node)


def runtime_imports_of(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    else:
        yield from runtime_imports(node)


def imported(path: Path, known: set[str]) -> set[str]:
    """The modules of `known` that `path` imports at run time (relative imports resolved)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        base = package.split(".")
        if node.level:
            base = base[: len(base) - node.level + 1]
            target = ".".join([*base, *([node.module] if node.module else [])])
        else:
            target = node.module or ""
        found.add(target)
        found.update(f"{target}.{alias.name}" for alias in node.names)
    return {m for m in found if m in known}


def graph() -> dict[str, set[str]]:
    files = [file for folder in SOURCES for file in folder.rglob("*.py")]
    known = {module_name(file) for file in files}
    return {module_name(file): imported(file, known) for file in files}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module, or a module importing
    itself (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in edges.get(node, ()):
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def room(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["sdksign", "server"] else None


def test_no_module_imports_itself_round_a_circle() -> None:
    edges = graph()
    assert len(edges) > 40
    assert cycles(edges) == []


def test_the_circle_check_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}}) == [["a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_type_checking_imports_are_not_counted(tmp_path: Path) -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import a\nelse:\n    import b\n"
        "def f():\n    import c\n"
    )
    names = {alias.name for node in runtime_imports(tree) for alias in node.names}
    assert names == {"TYPE_CHECKING", "b", "c"}


def test_each_room_imports_only_the_rooms_below_it() -> None:
    crossings = sorted(
        f"{module} -> {target}"
        for module, targets in graph().items()
        for target in targets
        if (here := room(module)) in ALLOWED
        and (there := room(target)) in ALLOWED
        and here != there
        and there not in ALLOWED[here]
    )
    assert crossings == []


@pytest.mark.parametrize("name", sorted(NO_GRPC))
def test_the_logic_rooms_know_nothing_of_grpc(name: str) -> None:
    path = SERVER / name
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]
    known = {"grpc"}
    users = [str(f.relative_to(ROOT)) for f in files if imported_names(f) & known]
    assert users == []


def imported_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in runtime_imports(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_no_module_is_over_600_lines() -> None:
    long = {
        str(file.relative_to(ROOT)): lines
        for folder in SOURCES
        for file in folder.rglob("*.py")
        if (lines := len(file.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_the_server_package_is_a_few_modules_over_rooms_that_say_what_they_hold() -> None:
    top = sorted(p.name for p in SERVER.glob("*.py"))
    rooms = sorted(p.name for p in SERVER.iterdir() if (p / "__init__.py").is_file())
    assert len(top) <= MAX_TOP_MODULES, top
    assert len(rooms) >= MIN_ROOMS, rooms
    for name in rooms:
        docstring = ast.get_docstring(ast.parse((SERVER / name / "__init__.py").read_text()))
        assert docstring and "import" in docstring.lower(), (
            f"{name}/__init__.py says what it may import"
        )
    assert set(rooms) <= set(ALLOWED)
