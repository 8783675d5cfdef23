"""Fixtures for host adapter tests against real daemons."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from integration.host.ovs_daemons import OvsDaemons, running_ovs, unavailable


@pytest.fixture(scope="module")
def ovs_daemons() -> Iterator[OvsDaemons]:
    """Private ovsdb-server + userspace ovs-vswitchd for the test module (see `ovs_daemons.py`); skipped with
    the reason printed when Open vSwitch is not installed."""
    reason = unavailable()
    if reason:
        print(f"skipping OVS tests: {reason}", file=sys.stderr)
        pytest.skip(reason)
    with running_ovs() as daemons:
        yield daemons
