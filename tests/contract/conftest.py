"""The `bed` fixture: the simulated host by default, the real kernel when VDPA_CONTRACT_BED=kernel (set by
the QEMU tier inside its guest). Every contract test runs unchanged on both."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from contract.beds import Bed

BED_KIND = os.environ.get("VDPA_CONTRACT_BED", "sim")


@pytest.fixture
def bed(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Bed]:
    if BED_KIND == "kernel":
        from kernel.guest_bed import kernel_bed

        yield from kernel_bed()
    else:
        from contract.sim_bed import sim_bed

        ovs = request.getfixturevalue("host_ovs") if "ovs" in request.keywords else None
        yield from sim_bed(tmp_path, ovs=ovs)


@pytest.fixture(scope="session")
def host_ovs_remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private ovsdb-server + userspace ovs-vswitchd on the host, for the sim bed's OVS tests."""
    from integration.host.ovs_daemons import ovs_daemons

    yield from ovs_daemons(tmp_path_factory.mktemp("ovs"))


@pytest.fixture
def host_ovs(host_ovs_remote: str) -> Iterator[object]:
    from vdpa_operator.host.linux.ovsdb import OvsdbOvs

    ovs = OvsdbOvs(host_ovs_remote)
    try:
        yield ovs
    finally:
        ovs.close()

