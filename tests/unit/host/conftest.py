"""The default simulated node for `test_sim_*.py`: a fresh model-only kernel and its Host (a module overrides
`host` when every test there starts from a prepared node)."""

from __future__ import annotations

from pathlib import Path

import pytest

from unit.host.sim_setup import sim_kernel
from vdpa_operator.host.port import Host
from vdpa_operator.host.sim import SimKernel, sim_host


@pytest.fixture
def kernel(tmp_path: Path) -> SimKernel:
    return sim_kernel(tmp_path)


@pytest.fixture
def host(kernel: SimKernel) -> Host:
    return sim_host(kernel)
