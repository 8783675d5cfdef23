"""`api/` and `render/` stay pure: no file, process, network or environment access (import-linter guards the
package imports; this guards the built-ins it cannot see)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "vdpa_operator"
PURE_FILES = sorted([*(SRC / "api").rglob("*.py"), *(SRC / "render").rglob("*.py")])
FORBIDDEN_MODULES = {"os", "subprocess", "socket", "pathlib", "shutil", "io", "tempfile", "urllib", "http"}
FORBIDDEN_CALLS = {"open", "print", "input", "exec", "eval"}


@pytest.mark.parametrize("path", PURE_FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_io_in_pure_core(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in FORBIDDEN_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in FORBIDDEN_MODULES:
            found.append(node.module)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
            found.append(f"{node.func.id}() at line {node.lineno}")
    assert not found, f"{path.name} does I/O: {found}"
