"""The seed's first check on a real kernel, inside the QEMU guest only: a vdpa_sim_net device named as the
operator names a VF's (`vdpa:0000:65:00.4`), bound to virtio_vdpa; the CNI's own code finds it by that name,
confirms its virtio netdev and moves it into a pod's netns as `eth0`; there the real `ethtool -i eth0` shows
what the seed page shows. vdpa_sim_net has no VF parent, so the representor and OVS parts of an ADD are not
exercised here (the simulated host's integration tests do those with real veths and OVS).

Outside the guest (VDPA_CONTRACT_BED != kernel) every test here skips.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contract.wait import wait_until
from vdpa_operator.cni import device as dev

pytestmark = pytest.mark.skipif(
    os.environ.get("VDPA_CONTRACT_BED") != "kernel",
    reason="runs inside the QEMU guest only (tests/kernel/test_guest.py boots it)",
)

DEVICE_ID = "0000:65:00.4"
NAME = f"vdpa:{DEVICE_ID}"


@pytest.fixture
def kbed() -> Iterator[Any]:
    from kernel.guest_bed import kernel_bed  # imported here: this module must import cleanly on any host

    yield from kernel_bed()


def test_the_virtio_netdev_becomes_the_pods_eth0_and_ethtool_shows_the_vdpa_device(kbed: Any) -> None:
    from vdpa_operator.host.linux.factory import linux_host

    kbed.vdpa.prepare()  # vdpa_sim_net, virtio_vdpa first (so new devices bind to it), virtio_net
    subprocess.run(["vdpa", "dev", "add", "name", NAME, "mgmtdev", "vdpasim_net", "mac", "02:00:00:00:65:04"],
                   check=True, capture_output=True)
    host = linux_host(ovsdb_remote=None)
    vf = wait_until(lambda: (v := dev.resolve(host, DEVICE_ID, None, need_vf=False)).netdev and v,
                    what=f"the virtio netdev of {NAME}")
    assert (vf.vdpa, vf.kind) == (NAME, "virtio")
    netdev = dev.confirm_virtio_netdev(host, vf)
    pod = kbed.new_netns()
    dev.move_into(host, netdev, pod, "eth0")
    shown = subprocess.run(["ip", "netns", "exec", Path(pod).name, "ethtool", "-i", "eth0"], check=True,
                           capture_output=True, text=True).stdout
    assert "driver: virtio_net" in shown.splitlines()
    assert f"bus-info: {NAME}" in shown.splitlines()
    assert host.links.find(netdev) is None
    host.links.move_to_netns("eth0", None, pod, new_name=netdev)  # DEL's way back, under its original name
    assert host.links.find(netdev) is not None
