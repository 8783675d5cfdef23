"""Fixtures shared by the integration tiers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vdpa_operator.api.admission import DEFAULT_NAMESPACE
from vdpa_operator.sim.apiserver import ServerHandle, serve_in_thread
from vdpa_operator.sim.apiserver.inthread import default_store
from vdpa_operator.sim.apiserver.resources import BUILTIN_NAMESPACES


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerHandle]:
    """The embedded API server with the operator namespace, as deploy/namespace.yaml makes it in a cluster."""
    store = default_store(namespaces=(*BUILTIN_NAMESPACES, DEFAULT_NAMESPACE))
    handle = serve_in_thread(tmp_path / "kubeconfig", store=store)
    yield handle
    handle.stop()
