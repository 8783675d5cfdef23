"""Fixtures for every tier."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temp dir with a short path, for unix sockets: sun_path holds 107 bytes, and pytest's `tmp_path` under
    `/tmp/pytest-of-<user>/pytest-<N>/<test name>` can leave too little room for a socket's own name."""
    path = Path(tempfile.mkdtemp(prefix="vdpa-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)

