"""The code stays readable: no function in server/ or client/ runs over a screen without a reason.

A longer function states why on the line above its `def` (or its first decorator):
a comment starting `# long:`.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

MAX_LINES = 50
SOURCES = [ROOT / "server" / "sdksign" / "server", ROOT / "client" / "sdksign" / "client"]


def long_functions(path: Path, root: Path = ROOT) -> list[str]:
    """`name (N lines)` for each function in `path` over MAX_LINES with no `# long:` reason."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    found = []
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        assert node.end_lineno is not None
        length = node.end_lineno - node.lineno + 1
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        reason = lines[first - 2].strip() if first >= 2 else ""
        if length > MAX_LINES and not reason.startswith("# long:"):
            found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_is_longer_than_a_screen_without_a_reason() -> None:
    files = [file for folder in SOURCES for file in sorted(folder.glob("*.py"))]
    assert len(files) > 10
    assert [found for file in files for found in long_functions(file)] == []


def test_the_check_finds_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    probe = tmp_path / "probe.py"
    probe.write_text(f"def long():\n{body}\n\n\n# long: a reason\ndef excused():\n{body}\n")
    assert long_functions(probe, tmp_path) == [f"probe.py:1 long ({MAX_LINES + 1} lines)"]
