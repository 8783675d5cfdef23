"""Privileged mode (root only): a virtio vDPA netdev and its representor are the two ends of a real veth pair
in the simulated node's real netns; link changes reach the real links; traffic between a pod and the node
really flows. Every netns this module makes is removed in `finally` (which removes their links too)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import IPRoute  # type: ignore[import-untyped]

from unit.host.sim_setup import to_switchdev
from vdpa_operator.host.port import Host
from vdpa_operator.host.sim import SimKernel, sim_host
from vdpa_operator.host.sim.realnet import create_netns, remove_netns
from vdpa_operator.host.types import Address, VdpaConfig, VdpaMgmtDev, pci_address

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: creates network namespaces and veths")

PF0 = pci_address("0000:65:00.0")
NAME = "vdpa:0000:65:00.4"
MAC = "00:e8:ca:11:22:44"


@dataclass
class RealBed:
    kernel: SimKernel
    host: Host
    node: str
    netns: list[str]

    def pod(self) -> str:
        name = f"{self.netns[0].rsplit('-', 1)[0]}-pod{len(self.netns)}"
        self.netns.append(name)
        return create_netns(name)


@pytest.fixture
def real(tmp_path: Path) -> Iterator[RealBed]:
    tag = f"vdpasimt-{uuid.uuid4().hex[:8]}"
    names = [f"{tag}-node"]
    try:
        node = create_netns(names[0])
        kernel = SimKernel.create(tmp_path / "host", node_netns=node, real_netdevs=True)
        host = sim_host(kernel)
        host.modules.load("virtio_vdpa")
        to_switchdev(host)
        yield RealBed(kernel, host, node, names)
    finally:
        for name in reversed(names):
            remove_netns(name)


def real_links(netns: str) -> dict[str, Any]:
    with IPRoute(netns=netns, flags=0) as ipr:
        return {msg.get_attr("IFLA_IFNAME"): msg for msg in ipr.link("dump")}


def test_virtio_binding_makes_a_real_veth_pair_with_the_representor(real: RealBed) -> None:
    real.host.vdpa.create(NAME, VdpaMgmtDev("pci", "0000:65:00.4"), VdpaConfig(mac=MAC))
    links = real_links(real.node)
    assert {"eth0", "ens1f0_2"} <= set(links)
    assert links["eth0"].get_attr("IFLA_ADDRESS") == MAC
    assert links["eth0"].get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_KIND") == "veth"
    assert "ens1f0_1" not in links  # only representors with a virtio peer are real
    real.host.links.set_mtu("eth0", 1400)
    real.host.links.set_up("ens1f0_2")
    links = real_links(real.node)
    assert links["eth0"].get_attr("IFLA_MTU") == 1400 and links["ens1f0_2"]["flags"] & 1
    real.host.vdpa.delete(NAME)
    assert not {"eth0", "ens1f0_2"} & set(real_links(real.node))
    assert real.host.links.get("ens1f0_2").admin_up  # the representor itself stays (model)


def test_moving_into_a_pod_moves_the_real_link_and_traffic_flows(real: RealBed) -> None:
    real.host.vdpa.create(NAME, VdpaMgmtDev("pci", "0000:65:00.4"), VdpaConfig(mac=MAC))
    pod = real.pod()
    links = real.host.links
    links.move_to_netns("eth0", pod)
    links.rename("eth0", "net1", netns=pod)
    links.add_address("net1", Address("10.9.0.2", 24), netns=pod)
    links.set_up("net1", netns=pod)
    links.add_address("ens1f0_2", Address("10.9.0.1", 24))
    links.set_up("ens1f0_2")
    assert "net1" in real_links(pod) and "eth0" not in real_links(real.node)
    assert real.host.ethtool.driver_info("net1", netns=pod).bus_info == NAME
    receiver = subprocess.Popen(
        ["ip", "netns", "exec", real.netns[0], sys.executable, "-c",
         "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('10.9.0.1', 5555)); "
         "s.settimeout(10); print(s.recvfrom(100)[0].decode(), flush=True)"],
        stdout=subprocess.PIPE, text=True)
    try:
        sender = ("import socket, time\nsock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                  "for _ in range(50):\n"
                  "    sock.sendto(b'through-the-rep', ('10.9.0.1', 5555))\n"
                  "    time.sleep(0.1)\n")
        subprocess.Popen(["ip", "netns", "exec", real.netns[-1], sys.executable, "-c", sender])
        out, _ = receiver.communicate(timeout=20)
    finally:
        receiver.kill()
    assert out.strip() == "through-the-rep"


def test_unbinding_from_a_pod_deletes_the_pair(real: RealBed) -> None:
    real.host.vdpa.create(NAME, VdpaMgmtDev("pci", "0000:65:00.4"))
    pod = real.pod()
    real.host.links.move_to_netns("eth0", pod)
    real.host.vdpa.delete(NAME)
    assert "eth0" not in real_links(pod)
    assert "ens1f0_2" not in real_links(real.node)


def test_a_deleted_pod_netns_gives_the_netdev_back_to_the_node(real: RealBed) -> None:
    real.host.vdpa.create(NAME, VdpaMgmtDev("pci", "0000:65:00.4"))
    pod = real.pod()
    real.host.links.move_to_netns("eth0", pod)
    remove_netns(real.netns.pop())  # the kernel destroys the veth with the netns
    real.kernel.netns_deleted(pod)
    assert {"eth0", "ens1f0_2"} <= set(real_links(real.node))
    assert real.host.links.get("eth0").name == "eth0"


def test_a_netdev_moved_back_from_a_pod_is_a_real_link_of_the_node_again(real: RealBed) -> None:
    real.host.vdpa.create(NAME, VdpaMgmtDev("pci", "0000:65:00.4"))
    pod = real.pod()
    real.host.links.move_to_netns("eth0", pod)
    real.host.links.rename("eth0", "net1", netns=pod)
    real.host.links.move_to_netns("net1", None, netns=pod)
    assert "net1" in real_links(real.node) and "net1" not in real_links(pod)
    assert real.host.links.get("net1").name == "net1"


def test_netns_exists_asks_the_real_kernel(real: RealBed) -> None:
    """What the contract (tests/contract/test_contract_netns.py: a pod's path, /proc/self/ns/net, files that are
    no netns) does not ask: a netns by name, the node's own, and a name no real netns has."""
    real.pod()
    assert real.host.links.netns_exists(real.netns[-1])  # by name
    assert real.host.links.netns_exists(real.node)  # the node's own
    assert not real.host.links.netns_exists(f"{real.netns[0]}-absent")  # a name the model would accept
