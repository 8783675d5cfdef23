"""The project's scripts (files without a .py suffix under scripts/), imported as modules so tests check exactly
what the script would do."""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
from pathlib import Path
from types import ModuleType

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@functools.cache
def gen_crds() -> ModuleType:
    """`scripts/gen-crds`: what `make crds` writes and `make test` checks."""
    loader = importlib.machinery.SourceFileLoader("gen_crds", str(SCRIPTS / "gen-crds"))
    spec = importlib.util.spec_from_loader("gen_crds", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module
